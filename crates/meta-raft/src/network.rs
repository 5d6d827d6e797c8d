//! The Raft network: openraft's RPCs as `Request::Raft` frames over the
//! authenticated RPC transport, through the node's connector (whose fault
//! filters let tests partition, isolate, delay and heal links in process).

use crate::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tdfs_proto::codec::{decode, encode};
use tdfs_proto::meta::{RaftKind, Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{ClusterKey, Connector, RpcClient, RpcError};

/// Multiplexed connections to peers, shared by every Raft client of a node
/// (openraft creates a client per replication stream and per leadership
/// check; they all reuse one socket per peer).
pub type Pool = Arc<Mutex<HashMap<String, RpcClient<Request, Response>>>>;

/// Returns a live pooled connection to `addr`, connecting if needed.
pub async fn pooled(
    pool: &Pool,
    connector: &Connector,
    addr: &str,
    key: Option<&ClusterKey>,
    timeout: Duration,
) -> Result<RpcClient<Request, Response>, RpcError> {
    if let Some(c) = pool.lock().unwrap_or_else(|e| e.into_inner()).get(addr) {
        if !c.is_closed() {
            return Ok(c.clone());
        }
    }
    let c = RpcClient::connect_via(connector, addr, key, timeout).await?;
    pool.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(addr.to_string(), c.clone());
    Ok(c)
}

/// Creates a client per Raft peer.
#[derive(Clone)]
pub struct Network {
    pub id: NodeId,
    pub key: Option<ClusterKey>,
    pub connector: Connector,
    pub pool: Pool,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            key: self.key.clone(),
            connector: self.connector.clone(),
            pool: self.pool.clone(),
        }
    }
}

/// One Raft peer, connected lazily and reconnected after failures.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    key: Option<ClusterKey>,
    connector: Connector,
    pool: Pool,
}

type RpcErr<E> = RPCError<NodeId, BasicNode, E>;

impl PeerClient {
    async fn send<Q: Serialize, A: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &mut self,
        kind: RaftKind,
        req: &Q,
        timeout: Duration,
    ) -> Result<A, RpcErr<E>> {
        let conn = pooled(
            &self.pool,
            &self.connector,
            &self.addr,
            self.key.as_ref(),
            timeout.max(Duration::from_millis(500)),
        )
        .await
        .map_err(|e| unreachable(e.to_string()))?;
        if !conn.is_peer() {
            return Err(unreachable(format!(
                "{} did not accept us as a cluster peer (cluster key?)",
                self.addr
            )));
        }
        let payload = encode(req).map_err(|e| network(e.to_string()))?;
        let resp = conn.call(Request::Raft { kind, payload }, timeout).await;
        let bytes = match resp {
            Ok(Response::Raft(b)) => b,
            Ok(other) => return Err(network(format!("unexpected reply {other:?}"))),
            Err(RpcError::Unreachable { reason, .. }) => return Err(unreachable(reason)),
            Err(e) => return Err(network(e.to_string())),
        };
        let r: Result<A, E> = decode(&bytes).map_err(|e| network(e.to_string()))?;
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

fn unreachable<E: std::error::Error>(msg: String) -> RpcErr<E> {
    RPCError::Unreachable(Unreachable::new(&std::io::Error::other(msg)))
}

fn network<E: std::error::Error>(msg: String) -> RpcErr<E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(msg)))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr<RaftError<NodeId>>> {
        self.send(RaftKind::AppendEntries, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.send(RaftKind::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr<RaftError<NodeId>>> {
        self.send(RaftKind::Vote, &rpc, option.hard_ttl()).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}

/// Serves an incoming Raft RPC on this node.
pub async fn serve_raft(
    raft: &crate::types::Raft,
    kind: RaftKind,
    payload: &[u8],
) -> Result<Vec<u8>, FsError> {
    match kind {
        RaftKind::AppendEntries => {
            let req: AppendEntriesRequest<TypeConfig> = decode(payload)?;
            encode(&raft.append_entries(req).await)
        }
        RaftKind::Vote => {
            let req: VoteRequest<NodeId> = decode(payload)?;
            encode(&raft.vote(req).await)
        }
        RaftKind::InstallSnapshot => {
            let req: InstallSnapshotRequest<TypeConfig> = decode(payload)?;
            encode(&raft.install_snapshot(req).await)
        }
    }
}
