//! The metadata client.

use rand::Rng;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{
    AdminRequest, AdminResponse, ContentSummary, FileStatus, FsckReport, LocatedBlocks,
    MetaRequest, MetaResponse, NodeState, Request, Response,
};
use tdfs_proto::FsError;
use tdfs_rpc::{ClusterKey, RpcClient, RpcError};

/// How a client reaches the cluster and who it acts as.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Any metadata nodes; the client finds the leader itself.
    pub meta: Vec<String>,
    pub user: String,
    /// Cluster key, for admin calls on a keyed cluster.
    pub key: Option<ClusterKey>,
    /// How long one logical call may take, retries across a failover included.
    pub deadline: Duration,
    /// How long one attempt waits for its reply.
    pub attempt_timeout: Duration,
    /// How often open files' leases are renewed.
    pub lease_renew: Duration,
    /// How it connects (fault filters in tests).
    pub connector: tdfs_rpc::Connector,
}

impl ClientConfig {
    pub fn new(meta: Vec<String>, user: impl Into<String>) -> Self {
        ClientConfig {
            meta,
            user: user.into(),
            key: None,
            deadline: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            lease_renew: Duration::from_secs(5),
            connector: tdfs_rpc::Connector::direct(),
        }
    }
}

type Conn = RpcClient<Request, Response>;

/// Longest pause between two attempts: short enough that a client notices a
/// new leader within a fraction of an election timeout.
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// A client of the metadata service; share it (it is `Sync`) across tasks.
pub struct MetaClient {
    cfg: ClientConfig,
    /// Random per client; with `seq`, keys the retry cache.
    client_id: u64,
    seq: AtomicU64,
    /// The node that last answered a mutation (the leader, probably).
    leader: Mutex<Option<String>>,
    conns: tokio::sync::Mutex<HashMap<String, Conn>>,
    /// Files this client has open for writing; while non-zero a background
    /// task renews the client's lease.
    open_writers: Arc<AtomicUsize>,
}

/// Keeps the client's lease renewed while alive (one per open file).
pub struct LeaseGuard {
    open: Arc<AtomicUsize>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MetaClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, FsError> {
        if cfg.meta.is_empty() {
            return Err(FsError::InvalidArgument(
                "no metadata node address given (--meta, TDFS_META or --cluster)".into(),
            ));
        }
        Ok(MetaClient {
            client_id: rand::thread_rng().gen(),
            seq: AtomicU64::new(1),
            leader: Mutex::new(None),
            conns: tokio::sync::Mutex::new(HashMap::new()),
            open_writers: Arc::new(AtomicUsize::new(0)),
            cfg,
        })
    }

    /// Registers an open file; the first one starts the lease renewer.
    pub fn hold_lease(self: &Arc<Self>) -> LeaseGuard {
        if self.open_writers.fetch_add(1, Ordering::Relaxed) == 0 {
            let me = Arc::downgrade(self);
            let open = self.open_writers.clone();
            let every = self.cfg.lease_renew;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(c) = me.upgrade() else { return };
                    if open.load(Ordering::Relaxed) == 0 {
                        return;
                    }
                    if let Err(e) = c.meta(MetaRequest::RenewLease).await {
                        tracing::warn!(fault = "peer", "lease renewal failed: {e}");
                    }
                }
            });
        }
        LeaseGuard {
            open: self.open_writers.clone(),
        }
    }

    /// Tells the leader a replica failed verification; it has the datanode
    /// re-check the replica (and drop it if corrupt). Best effort.
    pub async fn report_bad_replica(&self, block: u64, node: &tdfs_proto::DatanodeId) {
        let op = MetaRequest::ReportBadReplica {
            block,
            node: node.clone(),
        };
        if let Err(e) = self.meta(op).await {
            tracing::warn!(
                fault = "peer",
                "could not report bad replica of block {block}: {e}"
            );
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// This client's id (the lease holder of files it writes).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// A fresh call id for a logical mutation.
    pub fn next_call(&self) -> CallId {
        CallId {
            client: self.client_id,
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    async fn conn(&self, addr: &str) -> Result<Conn, RpcError> {
        {
            let conns = self.conns.lock().await;
            if let Some(c) = conns.get(addr) {
                if !c.is_closed() {
                    return Ok(c.clone());
                }
            }
        }
        let c = RpcClient::connect_via(
            &self.cfg.connector,
            addr,
            self.cfg.key.as_ref(),
            Duration::from_secs(2),
        )
        .await?;
        self.conns.lock().await.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Sends `req` to one node, once.
    pub async fn call_node(&self, addr: &str, req: Request) -> Result<Response, RpcError> {
        let c = self.conn(addr).await?;
        c.call(req, self.cfg.attempt_timeout).await
    }

    /// Sends `req` to the leader, following hints and retrying with
    /// exponential backoff and jitter until the deadline.
    pub async fn call(&self, req: Request) -> Result<Response, FsError> {
        let deadline = Instant::now() + self.cfg.deadline;
        let mut next_rr = 0usize;
        let mut target = self
            .leader
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| self.cfg.meta[0].clone());
        let mut backoff = Duration::from_millis(10);
        loop {
            let err = match self.call_node(&target, req.clone()).await {
                Ok(r) => {
                    *self.leader.lock().unwrap() = Some(target);
                    return Ok(r);
                }
                Err(RpcError::Remote(FsError::NotLeader {
                    leader: Some((_, addr)),
                })) if addr != target => {
                    // Follow the hint at once.
                    target = addr;
                    continue;
                }
                Err(RpcError::Remote(e)) if !e.is_retriable() => return Err(e),
                Err(e) => e,
            };
            if Instant::now() + backoff >= deadline {
                return Err(FsError::Unavailable(format!(
                    "no metadata leader answered within {} s (last error: {err})",
                    self.cfg.deadline.as_secs()
                )));
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            target = self.cfg.meta[next_rr % self.cfg.meta.len()].clone();
            next_rr += 1;
        }
    }

    /// A namespace operation; mutations get a call id kept across retries.
    pub async fn meta(&self, op: MetaRequest) -> Result<MetaResponse, FsError> {
        let call = op.is_mutation().then(|| self.next_call());
        self.meta_with_call(op, call).await
    }

    /// Like [`meta`](Self::meta) with an explicit call id.
    pub async fn meta_with_call(
        &self,
        op: MetaRequest,
        call: Option<CallId>,
    ) -> Result<MetaResponse, FsError> {
        let req = Request::Meta {
            user: self.cfg.user.clone(),
            call,
            op,
        };
        match self.call(req).await? {
            Response::Meta(m) => Ok(m),
            other => Err(unexpected(other)),
        }
    }

    pub async fn admin(&self, req: AdminRequest) -> Result<AdminResponse, FsError> {
        match self.call(Request::Admin(req)).await? {
            Response::Admin(a) => Ok(a),
            other => Err(unexpected(other)),
        }
    }

    /// The state of one specific metadata node.
    pub async fn node_state(&self, addr: &str) -> Result<NodeState, FsError> {
        match self
            .call_node(addr, Request::Admin(AdminRequest::NodeState))
            .await
        {
            Ok(Response::Admin(AdminResponse::NodeState(s))) => Ok(s),
            Ok(other) => Err(unexpected(other)),
            Err(e) => Err(e.into_fs()),
        }
    }

    // ---- namespace conveniences ----

    pub async fn stat(&self, path: &str) -> Result<FileStatus, FsError> {
        match self
            .meta(MetaRequest::GetFileInfo {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Status(s) => Ok(s),
            other => Err(unexpected_meta(other)),
        }
    }

    /// Whether `path` exists.
    pub async fn exists(&self, path: &str) -> Result<Option<FileStatus>, FsError> {
        match self.stat(path).await {
            Ok(s) => Ok(Some(s)),
            Err(FsError::FileNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists a directory completely (paging through large ones).
    pub async fn list(&self, path: &str) -> Result<Vec<FileStatus>, FsError> {
        let mut out = Vec::new();
        let mut start_after = None;
        loop {
            match self
                .meta(MetaRequest::ListStatus {
                    path: path.to_string(),
                    start_after: start_after.clone(),
                    limit: 1000,
                })
                .await?
            {
                MetaResponse::Listing { entries, remaining } => {
                    start_after = entries.last().map(|e| e.name.clone());
                    out.extend(entries);
                    if remaining == 0 || start_after.is_none() {
                        return Ok(out);
                    }
                }
                other => return Err(unexpected_meta(other)),
            }
        }
    }

    pub async fn mkdirs(&self, path: &str, parents: bool) -> Result<(), FsError> {
        self.meta(MetaRequest::Mkdirs {
            path: path.to_string(),
            mode: None,
            parents,
        })
        .await
        .map(|_| ())
    }

    pub async fn delete(&self, path: &str, recursive: bool) -> Result<(), FsError> {
        self.meta(MetaRequest::Delete {
            path: path.to_string(),
            recursive,
        })
        .await
        .map(|_| ())
    }

    pub async fn rename(&self, src: &str, dst: &str) -> Result<(), FsError> {
        self.meta(MetaRequest::Rename {
            src: src.to_string(),
            dst: dst.to_string(),
            into_dir: true,
        })
        .await
        .map(|_| ())
    }

    pub async fn content_summary(&self, path: &str) -> Result<ContentSummary, FsError> {
        match self
            .meta(MetaRequest::ContentSummary {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Summary(s) => Ok(s),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn block_locations(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<LocatedBlocks, FsError> {
        match self
            .meta(MetaRequest::GetBlockLocations {
                path: path.to_string(),
                offset,
                len,
            })
            .await?
        {
            MetaResponse::Blocks(b) => Ok(b),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn fsck(&self, path: &str) -> Result<FsckReport, FsError> {
        match self
            .meta(MetaRequest::Fsck {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Fsck(r) => Ok(r),
            other => Err(unexpected_meta(other)),
        }
    }

    /// Creates an empty, closed file (`touchz`).
    pub async fn touchz(&self, path: &str) -> Result<(), FsError> {
        if let Some(s) = self.exists(path).await? {
            if s.is_dir() {
                return Err(FsError::IsADirectory(path.to_string()));
            }
            if s.length > 0 {
                return Err(FsError::InvalidArgument(format!(
                    "{path} is not a zero-length file"
                )));
            }
            // An existing empty file gets a fresh modification time.
            return self
                .meta(MetaRequest::SetTimes {
                    path: path.to_string(),
                    mtime: Some(now_ms()),
                    atime: None,
                })
                .await
                .map(|_| ());
        }
        self.create_empty(path).await
    }

    /// Creates a new, empty, closed file (create then complete).
    pub async fn create_empty(&self, path: &str) -> Result<(), FsError> {
        self.meta(MetaRequest::Create {
            path: path.to_string(),
            overwrite: false,
            replication: None,
            block_size: None,
            mode: None,
            create_parents: false,
        })
        .await?;
        self.meta(MetaRequest::Complete {
            path: path.to_string(),
            last: None,
        })
        .await
        .map(|_| ())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn unexpected(r: Response) -> FsError {
    FsError::Internal(format!("unexpected reply {r:?}"))
}

pub(crate) fn unexpected_meta(r: MetaResponse) -> FsError {
    FsError::Internal(format!("unexpected reply {r:?}"))
}
