//! The datanode side of the data-transfer protocol (see
//! [`tdfs_transfer`]): receiving a block and forwarding it down the
//! pipeline, serving reads, and copying a replica to other nodes.
//!
//! A write runs three things at once: this task reads packets from upstream,
//! verifies them and forwards them downstream; a blocking thread writes them
//! to the local replica (buffers are recycled, at most `LOCAL_QUEUE + 2` in
//! flight); the downstream node does the same. A read fills a large buffer
//! with several chunks and their packet headers per blocking call while the
//! previous buffer is being sent.

mod read;
mod replicate;
mod write;

pub use replicate::replicate;

use crate::block_store::{BlockStore, ReplicaReader};
use std::sync::Arc;
use tdfs_proto::meta::{AccessMode, BlockInfo, BlockToken, DatanodeAddr, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{ClusterKey, Connector, FrameMac, Peer, SessionKeys};
use tdfs_transfer::{
    read_control_mac, timed_io, write_control_mac, BlockChecksum, ChecksumReply, Op, ReadReply,
    CHUNK, IO_TIMEOUT,
};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Receive buffer of an incoming write: headers and small pieces go through
/// it, packet data mostly lands in the chunk buffers directly.
const RECV_BUF: usize = 64 << 10;
/// Chunks read per blocking call when serving a read or replicating.
const READ_BATCH: u64 = 16;

/// What the store did, for the daemon's incremental block reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreEvent {
    /// A replica was published (received through a pipeline or a copy).
    Finalized(ReplicaReport),
    /// A replica was found corrupt (its own stored data failed a checksum
    /// while being copied) and quarantined.
    Quarantined {
        /// The block.
        id: BlockId,
        /// The generation quarantined.
        gen: u64,
    },
}

/// What the transfer handlers need from the daemon.
pub struct TransferCtx {
    /// The replicas received and served.
    pub store: Arc<BlockStore>,
    /// Used to connect to downstream datanodes.
    pub key: Option<ClusterKey>,
    /// How this node connects to other datanodes (pipeline forwards and
    /// copies): its fault rules apply to those streams.
    pub connector: Connector,
    /// Where finalized and quarantined replicas are announced (for the
    /// incremental reports).
    pub events: mpsc::UnboundedSender<StoreEvent>,
    /// The node's clock: block tokens expire by its wall time.
    pub clock: tdfs_rpc::Clock,
}

impl std::fmt::Debug for TransferCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferCtx")
            .field("store", &self.store)
            .finish()
    }
}

pub(crate) fn join_err(e: tokio::task::JoinError) -> FsError {
    FsError::Internal(format!("blocking task failed: {e}"))
}

/// Serves one data-transfer connection (after its handshake): reads its
/// `Op` and carries it out. Errors end the connection; they are logged.
///
/// On a keyed cluster, a caller that did not prove the key (a client) must
/// show a valid block token for the block and the operation; key-proved
/// callers (datanodes forwarding or copying, keyed clients) need none. On a
/// key-proved connection every control frame is sealed with a MAC.
pub async fn handle_stream(ctx: Arc<TransferCtx>, peer: Peer, stream: TcpStream) {
    let addr = peer.addr;
    if let Err(e) = serve(ctx, peer, stream).await {
        tracing::debug!(%addr, "data transfer ended: {e}");
    }
}

/// Frame keys of the connection, one per direction.
pub(crate) type Macs = Option<SessionKeys>;

pub(crate) fn send_mac(keys: &mut Macs) -> Option<&mut FrameMac> {
    keys.as_mut().map(|k| &mut k.send)
}

pub(crate) fn recv_mac(keys: &mut Macs) -> Option<&mut FrameMac> {
    keys.as_mut().map(|k| &mut k.recv)
}

async fn serve(ctx: Arc<TransferCtx>, peer: Peer, stream: TcpStream) -> Result<(), FsError> {
    stream.set_nodelay(true).ok();
    let mut keys = peer.session.clone();
    let (rd, wr) = stream.into_split();
    let mut r = BufReader::with_capacity(RECV_BUF, rd);
    let op: Op = read_control_mac(&mut r, IO_TIMEOUT, recv_mac(&mut keys)).await?;
    // A reader without the key needs the metadata node's word for this block.
    let check = |token, block, gen, mode| match (&ctx.key, peer.authenticated) {
        (Some(k), false) => k.check_block_token(token, block, gen, mode, ctx.clock.wall_ms()),
        _ => Ok(()),
    };
    match op {
        Op::Write {
            block,
            downstream,
            token,
        } => {
            let mut w = wr;
            let me = ctx.store.datanode_id().clone();
            if let Err(e) = check_write(&ctx, token.as_ref(), &block, &me, &downstream) {
                tracing::info!(addr = %peer.addr, "refusing a write: {e}");
                return write::refuse(&mut r, &mut w, me, e, &mut keys).await;
            }
            write::handle_write(ctx, r, w, block, downstream, token, keys).await
        }
        Op::Read {
            block,
            gen,
            offset,
            len,
            token,
        } => {
            let mut w = wr;
            if let Err(e) = check(token.as_ref(), block, gen, AccessMode::Read) {
                tracing::info!(addr = %peer.addr, "refusing a read: {e}");
                write_control_mac(&mut w, &ReadReply::Err(e), send_mac(&mut keys)).await?;
                let _ = timed_io(IO_TIMEOUT, w.shutdown()).await;
                return Ok(());
            }
            read::handle_read(ctx, w, (block, gen), offset, len, keys).await
        }
        Op::BlockChecksum { block, gen, token } => {
            let mut w = wr;
            let reply = match check(token.as_ref(), block, gen, AccessMode::Read) {
                Err(e) => {
                    tracing::info!(addr = %peer.addr, "refusing a block checksum: {e}");
                    ChecksumReply::Err(e)
                }
                Ok(()) => {
                    let store = ctx.store.clone();
                    let sum = tokio::task::spawn_blocking(move || {
                        store.open_read(block, gen).map(|r| replica_checksum(&r))
                    });
                    match sum.await.map_err(join_err).and_then(|r| r) {
                        Ok(s) => ChecksumReply::Ok(s),
                        Err(e) => ChecksumReply::Err(e),
                    }
                }
            };
            write_control_mac(&mut w, &reply, send_mac(&mut keys)).await?;
            let _ = timed_io(IO_TIMEOUT, w.shutdown()).await;
            Ok(())
        }
    }
}

/// On a keyed cluster every write, at every hop and from key holders too
/// (an upstream datanode, a replication source), carries a write token the
/// metadata node bound to the pipeline: this node must be in it and
/// `downstream` must follow it there. A datanode thus stores and forwards a
/// block only where the metadata node said.
fn check_write(
    ctx: &TransferCtx,
    token: Option<&BlockToken>,
    block: &BlockInfo,
    me: &DatanodeId,
    downstream: &[DatanodeAddr],
) -> Result<(), FsError> {
    let Some(k) = &ctx.key else {
        return Ok(());
    };
    let down: Vec<DatanodeId> = downstream.iter().map(|a| a.id.clone()).collect();
    k.check_write_hop(token, block.id, block.gen, me, &down, ctx.clock.wall_ms())
}

/// A replica's checksums from the chunk CRCs stored beside it: the CRC32C
/// of its bytes (`crc32c_combine` folds each chunk's CRC in with its
/// length) and the MD5 of the CRCs. Reads the meta file only, never the data.
pub fn replica_checksum(r: &ReplicaReader) -> BlockChecksum {
    use md5::{Digest, Md5};
    let mut crc = 0u32;
    let mut md5 = Md5::new();
    for i in 0..r.chunks() {
        let c = r.chunk_crc(i).unwrap_or_default();
        crc = crc32c::crc32c_combine(crc, c, r.chunk_len(i));
        md5.update(c.to_be_bytes());
    }
    BlockChecksum {
        len: r.len(),
        bytes_per_crc: CHUNK as u32,
        crcs: r.chunks(),
        crc32c: crc,
        crc_md5: md5.finalize().into(),
    }
}
