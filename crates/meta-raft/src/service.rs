//! The RPC handler of a metadata node: a thin dispatcher from requests to
//! the node's operations. Raft traffic, read-index requests, datanode
//! reports and admin mutations need a connection that proved the cluster
//! key.

use crate::network::serve_raft;
use crate::node::MetaNode;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::{AdminRequest, Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{Handler, Peer};

/// Events one `Events` call returns at most.
const EVENTS_PER_CALL: usize = 1000;

/// Serves one metadata node's RPC port.
pub struct MetaService {
    node: Arc<MetaNode>,
}

impl MetaService {
    pub fn new(node: Arc<MetaNode>) -> Self {
        MetaService { node }
    }
}

fn require_peer(peer: &Peer) -> Result<(), FsError> {
    if peer.authenticated {
        Ok(())
    } else {
        Err(FsError::Unauthenticated(
            "this call needs the cluster key".into(),
        ))
    }
}

impl Handler<Request, Response> for MetaService {
    async fn handle(&self, peer: &Peer, req: Request) -> Result<Response, FsError> {
        let node = &self.node;
        match req {
            Request::Ping => Ok(Response::Pong { id: node.id() }),
            Request::Meta { user, call, op } => {
                node.execute(&user, call, op).await.map(Response::Meta)
            }
            Request::Admin(a) => {
                if !matches!(
                    a,
                    AdminRequest::NodeState | AdminRequest::Report | AdminRequest::Health
                ) {
                    require_peer(peer)?;
                }
                node.admin(a).await.map(Response::Admin)
            }
            Request::Raft { kind, payload } => {
                require_peer(peer)?;
                serve_raft(node.raft(), kind, &payload)
                    .await
                    .map(Response::Raft)
            }
            Request::ReadIndex => {
                require_peer(peer)?;
                if !node.is_leader() {
                    return Err(node.not_leader());
                }
                node.batched_read_index().await.map(Response::ReadIndex)
            }
            Request::Datanode(d) => {
                require_peer(peer)?;
                node.metrics().datanode_request(d.kind());
                node.datanode_request(d).await.map(Response::Datanode)
            }
            Request::Events { after, wait_ms } => {
                let wait = Duration::from_millis(wait_ms.min(30_000) as u64);
                Ok(Response::Events(
                    node.events().poll(after, EVENTS_PER_CALL, wait).await,
                ))
            }
        }
    }
}
