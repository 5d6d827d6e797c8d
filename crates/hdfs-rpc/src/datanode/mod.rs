//! DataTransferProtocol served by a tdfs datanode (`--hdfs-addr`), so that
//! unmodified Hadoop clients read and write blocks: WRITE_BLOCK (pipeline
//! set-up for create, append and recovery, packets checked per chunk with
//! the client's checksum, forwarded down the pipeline, acknowledged with
//! one status per node), READ_BLOCK (checksums per chunk, the reader's
//! status), BLOCK_CHECKSUM (MD5 of the chunk CRCs, or the composite CRC)
//! and TRANSFER_BLOCK.
//!
//! The datanode's store is reached through [`BlockAccess`] only, so this
//! crate knows nothing of its internals: a block written here becomes an
//! ordinary replica of that store (the implementation publishes it, records
//! its SHA-256 and reports it to the metadata nodes).
//!
//! Bytes from the network never crash the server: a malformed op, an
//! oversized length or a bad checksum ends that connection with an error
//! status where the protocol has a place for one, and is logged.

mod read;
mod transfer;
mod wire;
mod write;

use crate::dtp::{op_response, OpRequest};
use crate::proto::common::TokenProto;
use crate::proto::hdfs::{BlockOpResponseProto, DatanodeInfoProto, Status};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::AccessMode;
use tdfs_proto::{DatanodeId, FsError};
use tdfs_rpc::auth::wall_ms;
use tdfs_rpc::{ClusterKey, Connector};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Hadoop's `dfs.datanode.socket.reuse.keepalive`: how long a connection
/// waits for the client's next op after one finished.
pub const KEEPALIVE: Duration = Duration::from_secs(4);
/// Longest wait for bytes a peer owes in the middle of an op (Hadoop's
/// client sends a heartbeat packet every half of its 60 s timeout).
pub const IO_TIMEOUT: Duration = Duration::from_secs(75);
/// The read buffer of a connection.
const CONN_BUFFER: usize = 16 << 10;

/// A replica being received. Blocking calls (the server runs them off the
/// async threads).
pub trait ReplicaSink: Send {
    /// Appends bytes (any size; the sink chunks them as its store needs).
    fn write(&mut self, data: &[u8]) -> Result<(), FsError>;
    /// Bytes held so far, those kept from an earlier generation included.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Makes the replica durable and visible (SHA-256 recorded) and
    /// announces it to the metadata nodes.
    fn finish(self: Box<Self>) -> Result<(), FsError>;
    /// The write broke off before its last packet (the client or a
    /// neighbour in the pipeline went away): keep what was received as a
    /// replica being written, for a recovery stage to reopen under a new
    /// generation ([`BlockAccess::reopen`]), as HDFS keeps an RBW replica.
    /// The implementation decides how long it waits for one; the default
    /// drops it.
    fn interrupt(self: Box<Self>) {}
}

/// A finalized replica being served.
pub trait ReplicaSource: Send + Sync {
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes per stored chunk CRC.
    fn chunk_size(&self) -> usize;
    /// Reads `buf.len()` bytes at `offset` (a multiple of the chunk size),
    /// each stored chunk checked against its CRC first.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError>;
    /// The CRC32C of each stored chunk, as recorded when it was written.
    fn chunk_crcs(&self) -> Vec<u32>;
}

/// What the server needs of a datanode's block store.
pub trait BlockAccess: Send + Sync + 'static {
    /// Starts receiving generation `gen` of `block`, about `expected` bytes.
    fn create(&self, block: u64, gen: u64, expected: u64) -> Result<Box<dyn ReplicaSink>, FsError>;
    /// Starts generation `new_gen` of `block` holding the first `keep`
    /// bytes of the stored generation `old_gen` (append and recovery), or
    /// of the replica an interrupted write left ([`ReplicaSink::interrupt`],
    /// HDFS's `recoverRbw`).
    fn reopen(
        &self,
        block: u64,
        old_gen: u64,
        new_gen: u64,
        keep: u64,
    ) -> Result<Box<dyn ReplicaSink>, FsError>;
    /// Opens finalized generation `gen` of `block` for reading.
    fn open(&self, block: u64, gen: u64) -> Result<Arc<dyn ReplicaSource>, FsError>;
}

/// The server's settings.
#[derive(Clone, Default)]
pub struct DtpConfig {
    /// The cluster key: when set, every op must carry a block token the
    /// metadata nodes issued for its block and access mode.
    pub key: Option<ClusterKey>,
    /// How pipeline forwards and transfers reach the next datanode: its
    /// fault rules apply to those streams.
    pub connector: Connector,
    /// This datanode's id (its `datanodeUuid`): on a keyed cluster a write
    /// token must name it in its pipeline.
    pub datanode_uuid: String,
}

/// What every connection handler shares.
pub(crate) struct Server {
    pub access: Arc<dyn BlockAccess>,
    pub cfg: DtpConfig,
}

impl Server {
    /// Checks an op's block token on a keyed cluster: valid for `block` at
    /// one of `gens` and for `mode`.
    pub fn check_token(
        &self,
        t: Option<&TokenProto>,
        block: u64,
        gens: &[u64],
        mode: AccessMode,
    ) -> Result<(), FsError> {
        let Some(key) = &self.cfg.key else {
            return Ok(());
        };
        let token = t.and_then(crate::token::decode);
        let mut last = Err(FsError::Unauthenticated(format!(
            "block {block}: no block token"
        )));
        for g in gens {
            last = key.check_block_token(token.as_ref(), block, *g, mode, wall_ms());
            if last.is_ok() {
                break;
            }
        }
        last
    }

    /// On a keyed cluster, checks that the write token of an op that
    /// passed [`check_token`](Self::check_token) names this datanode in its
    /// pipeline and that `targets` (where the op is to be forwarded) follow
    /// it there: a Hadoop client forwards the identifier bytes unchanged, so
    /// every datanode of its pipeline checks the metadata node's choice.
    pub fn check_pipeline(
        &self,
        t: Option<&TokenProto>,
        block: u64,
        targets: &[DatanodeInfoProto],
    ) -> Result<(), FsError> {
        if self.cfg.key.is_none() {
            return Ok(());
        }
        let Some(token) = t.and_then(crate::token::decode) else {
            return Err(FsError::Unauthenticated(format!(
                "block {block}: no block token"
            )));
        };
        let me = DatanodeId(self.cfg.datanode_uuid.clone());
        let down: Vec<DatanodeId> = targets
            .iter()
            .map(|d| DatanodeId(d.id.datanode_uuid.clone()))
            .collect();
        tdfs_rpc::auth::check_pipeline(&token.pipeline, &me, &down).map_err(|why| {
            FsError::Unauthenticated(format!("block token refused for block {block}: {why}"))
        })
    }
}

/// The status a failure answers with.
pub(crate) fn status_of(e: &FsError) -> Status {
    match e {
        FsError::Unauthenticated(_) | FsError::PermissionDenied { .. } => Status::ErrorAccessToken,
        FsError::ChecksumMismatch { .. } => Status::ErrorChecksum,
        FsError::AlreadyExists(_) => Status::ErrorExists,
        FsError::InvalidArgument(_) | FsError::Protocol(_) => Status::ErrorInvalid,
        FsError::Unsupported(_) => Status::ErrorUnsupported,
        _ => Status::Error,
    }
}

/// The answer to an op that failed with `e`.
pub(crate) fn error_response(e: &FsError) -> BlockOpResponseProto {
    op_response(status_of(e), Some(e.to_string()))
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> FsError {
    FsError::Internal(format!("blocking task failed: {e}"))
}

/// Serves DataTransferProtocol on `listener` until `shutdown` resolves;
/// then every connection is dropped.
pub async fn run(
    listener: TcpListener,
    access: Arc<dyn BlockAccess>,
    cfg: DtpConfig,
    shutdown: impl Future<Output = ()>,
) {
    let server = Arc::new(Server { access, cfg });
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let s = server.clone();
                    conns.spawn(async move {
                        if let Err(e) = serve(s, stream).await {
                            tracing::info!(%peer, "DataTransferProtocol connection ended: {e}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(fault = "local", "hdfs accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    conns.shutdown().await;
}

/// One connection: ops one after another, as Hadoop's client reuses a
/// connection it keeps in its peer cache.
async fn serve(server: Arc<Server>, stream: TcpStream) -> Result<(), FsError> {
    stream.set_nodelay(true).ok();
    let (rd, mut wr) = stream.into_split();
    // Small: a packet's body (64 KiB from Hadoop) is read past it,
    // straight from the socket into the packet's buffer.
    let mut r = BufReader::with_capacity(CONN_BUFFER, rd);
    let mut idle = IO_TIMEOUT;
    loop {
        let op = match wire::read_op(&mut r, idle, IO_TIMEOUT).await {
            Ok(Some(op)) => op,
            Ok(None) => return Ok(()),
            Err(e) => {
                // A malformed op: say why, then close.
                let _ = wire::send_message(&mut wr, &error_response(&e), IO_TIMEOUT).await;
                return Err(e);
            }
        };
        let keep = match op {
            OpRequest::WriteBlock(op) => write::write_block(&server, &mut r, &mut wr, *op).await?,
            OpRequest::ReadBlock(op) => read::read_block(&server, &mut r, &mut wr, op).await?,
            OpRequest::BlockChecksum(op) => read::block_checksum(&server, &mut wr, op).await?,
            OpRequest::TransferBlock(op) => transfer::transfer_block(&server, &mut wr, op).await?,
        };
        if !keep {
            return Ok(());
        }
        idle = KEEPALIVE;
    }
}

/// A running server (for embedding: the daemon and the in-process cluster).
pub struct DtpServer {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl DtpServer {
    /// Stops accepting and drops every connection.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts [`run`] on its own task.
pub fn start(
    listener: TcpListener,
    access: Arc<dyn BlockAccess>,
    cfg: DtpConfig,
) -> std::io::Result<DtpServer> {
    let addr = listener.local_addr()?;
    let (stop, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run(listener, access, cfg, async {
        let _ = rx.await;
    }));
    Ok(DtpServer { addr, stop, task })
}
