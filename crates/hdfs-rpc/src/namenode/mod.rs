//! `ClientNamenodeProtocol` served by a tdfs metadata node. Each call is
//! decoded, mapped to a `MetaRequest` and executed through
//! [`MetaNode::execute`](tdfs_meta_raft::MetaNode::execute) — the same leader check, read
//! barrier, permissions, leases, placement, retry cache and Raft path as
//! tdfs's own protocol; only the encoding differs.
//!
//! High availability works as in HDFS: a follower is a standby and answers
//! `StandbyException`, so Hadoop's `ConfiguredFailoverProxyProvider` (and
//! hdfs-native's proxy) move on until they reach the leader. A call retried
//! after a failover carries the same client id and call id, which map to
//! the same tdfs `CallId`, so the new leader answers it from the retry
//! cache instead of applying it twice.

mod convert;
mod errors;
mod feature_convert;
mod features;
mod ops;
mod quotas;
mod snapshots;
mod write_ops;

pub use convert::POOL_ID;
pub use errors::java_class;

use crate::ipc::{Call, Outcome, CLIENT_PROTOCOL};
use crate::proto::common::rpc_response_header_proto::RpcErrorCodeProto;
use crate::server::{serve, IpcConfig, IpcHandler, Peer};
use bytes::Bytes;
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tdfs_meta_raft::MetaNode;
use tdfs_proto::ids::CallId;
use tdfs_proto::FsError;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Settings of the HDFS front end of a metadata node.
#[derive(Clone, Debug)]
pub struct NamenodeConfig {
    /// Entries per `getListing` page (HDFS's `dfs.ls.limit`).
    pub list_limit: u32,
    /// Entries per `getSnapshotDiffReportListing` page (HDFS's
    /// `dfs.namenode.snapshotdiff.listing.limit`).
    pub snapshot_diff_limit: usize,
    /// How long a node that knows no leader (an election is running) holds
    /// a call before answering `StandbyException`: long enough for most
    /// elections, so a client that tries each node once still succeeds.
    pub election_wait: Duration,
    pub ipc: IpcConfig,
}

impl Default for NamenodeConfig {
    fn default() -> Self {
        NamenodeConfig {
            list_limit: 1000,
            snapshot_diff_limit: tdfs_proto::snapshot::listing::DEFAULT_LIMIT,
            election_wait: Duration::from_secs(2),
            ipc: IpcConfig::default(),
        }
    }
}

/// Blocks remembered for the pipeline calls, which name a block but not
/// its file (`updateBlockForPipeline`, `updatePipeline`).
const REMEMBERED_BLOCKS: usize = 65_536;

/// The `ClientNamenodeProtocol` service of one metadata node.
pub struct Namenode {
    node: Arc<MetaNode>,
    config: NamenodeConfig,
    /// block id → path, for blocks handed out by this node, oldest first out.
    blocks: Mutex<(HashMap<u64, String>, VecDeque<u64>)>,
}

/// One call's identity: who, and which client call (for the retry cache).
pub(crate) struct Ctx {
    pub user: String,
    rpc_client: u64,
    call_id: i32,
}

/// FNV-1a, 64 bits: a stable hash of client ids and client names.
fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl Ctx {
    /// The tdfs call id of this Hadoop call. The lease holder (`client`)
    /// is the Hadoop client *name* when the call has one — leases belong to
    /// a `DFSClient`, while the 16-byte RPC client id is shared by every
    /// DFSClient of a JVM; `seq` combines the RPC client id with the call
    /// id, which Hadoop keeps across retries.
    pub fn call(&self, holder: Option<&str>) -> CallId {
        CallId {
            client: holder.map_or(self.rpc_client, |h| fnv64(h.as_bytes())),
            seq: (self.rpc_client & 0xffff_ffff_0000_0000) | self.call_id as u32 as u64,
        }
    }
}

impl Namenode {
    pub fn new(node: Arc<MetaNode>, config: NamenodeConfig) -> Self {
        Namenode {
            node,
            config,
            blocks: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    pub(crate) fn node(&self) -> &Arc<MetaNode> {
        &self.node
    }

    pub(crate) fn config(&self) -> &NamenodeConfig {
        &self.config
    }

    pub(crate) fn remember_block(&self, block: u64, path: &str) {
        let mut g = self.blocks.lock().unwrap();
        let (map, order) = &mut *g;
        if map.insert(block, path.to_string()).is_none() {
            order.push_back(block);
        }
        while order.len() > REMEMBERED_BLOCKS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub(crate) fn path_of_block(&self, block: u64) -> Result<String, FsError> {
        self.blocks
            .lock()
            .unwrap()
            .0
            .get(&block)
            .cloned()
            .ok_or_else(|| {
                FsError::Unsupported(format!(
                    "block {block} was not allocated through this metadata node's HDFS port; \
                 pipeline recovery after a failover is not supported yet"
                ))
            })
    }

    /// Followers are standbys. While no leader is known (an election), the
    /// call waits a little for one, and is served if this node wins.
    async fn require_active(&self) -> Result<(), Outcome> {
        let deadline = Instant::now() + self.config.election_wait;
        loop {
            if self.node.is_leader() {
                return Ok(());
            }
            if self.node.leader_hint().is_some() || Instant::now() >= deadline {
                return Err(errors::from_fs(&FsError::NotLeader {
                    leader: self.node.leader_hint(),
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Decodes the request, runs `f`, encodes its response. A request that
/// does not decode is fatal (the connection closes), as in Hadoop.
pub(crate) async fn run<Req, Resp, F, Fut>(body: Bytes, f: F) -> Outcome
where
    Req: Message + Default,
    Resp: Message,
    F: FnOnce(Req) -> Fut,
    Fut: Future<Output = Result<Resp, FsError>>,
{
    let req = match Req::decode_length_delimited(body) {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Failure {
                fatal: true,
                class: "org.apache.hadoop.ipc.RpcServerException".into(),
                message: format!("cannot decode the request: {e}"),
                code: RpcErrorCodeProto::FatalDeserializingRequest,
            }
        }
    };
    match f(req).await {
        Ok(resp) => Outcome::Success(resp.encode_length_delimited_to_vec()),
        Err(e) => errors::from_fs(&e),
    }
}

impl IpcHandler for Namenode {
    async fn call(&self, peer: &Peer, call: Call) -> Outcome {
        let protocol = call.method.declaring_class_protocol_name.as_str();
        if protocol != CLIENT_PROTOCOL {
            return errors::failure(
                errors::NO_SUCH_PROTOCOL,
                format!("Unknown protocol: {protocol}"),
                RpcErrorCodeProto::ErrorNoSuchProtocol,
            );
        }
        let method = call.method.method_name.as_str();
        if method != "getHAServiceState" {
            if let Err(standby) = self.require_active().await {
                return standby;
            }
        }
        let ctx = Ctx {
            user: peer.user.clone(),
            rpc_client: fnv64(&call.header.client_id),
            call_id: call.header.call_id,
        };
        let outcome = self.dispatch(&ctx, method, call.body).await;
        if let Outcome::Failure { class, message, .. } = &outcome {
            tracing::debug!("hdfs {method} by {}: {class}: {message}", ctx.user);
        }
        outcome
    }

    fn state_id(&self) -> i64 {
        self.node.applied_index() as i64
    }
}

/// A running HDFS IPC server; [`stop`](Self::stop) ends it.
pub struct HdfsServer {
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HdfsServer {
    /// Stops accepting; open connections close.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Serves `ClientNamenodeProtocol` for `node` on `listener` (bound by the
/// caller, so tests bind port 0).
pub fn start(
    node: Arc<MetaNode>,
    listener: TcpListener,
    config: NamenodeConfig,
) -> std::io::Result<HdfsServer> {
    let addr = listener.local_addr()?;
    let (stop, shutdown) = tdfs_rpc::Shutdown::new();
    let ipc = config.ipc.clone();
    let service = Arc::new(Namenode::new(node, config));
    let task = tokio::spawn(serve(listener, service, ipc, shutdown));
    Ok(HdfsServer { addr, stop, task })
}
