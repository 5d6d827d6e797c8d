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

use crate::block_store::{BlockStore, ReplicaReader, ReplicaWriter};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::{AccessMode, BlockInfo, BlockToken, DatanodeAddr, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{ClusterKey, FrameMac, Peer, SessionKeys};
use tdfs_transfer::{
    packet_header, read_control_mac, read_packet_header, timed_io, write_control_mac,
    BlockChecksum, BlockWriter, ChecksumReply, Finish, NodeStatus, Op, ReadReply, WriteAck, CHUNK,
    IO_TIMEOUT, PACKET_HEADER,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Receive buffer of an incoming write: headers and small pieces go through
/// it, packet data mostly lands in the chunk buffers directly.
const RECV_BUF: usize = 64 << 10;
/// Chunks queued for the local writer thread.
const LOCAL_QUEUE: usize = 16;
/// Chunks read per blocking call when serving a read or replicating.
const READ_BATCH: u64 = 16;
/// How long a node that refused a write keeps draining what upstream still
/// sends, so that its answer is not lost to a connection reset.
const LINGER: Duration = Duration::from_secs(30);
/// How long a reader may leave a batch of its block unread (it may be
/// piping into a paused consumer) before the connection is given up.
const READER_STALL: Duration = Duration::from_secs(300);

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

fn join_err(e: tokio::task::JoinError) -> FsError {
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
type Macs = Option<SessionKeys>;

fn send_mac(keys: &mut Macs) -> Option<&mut FrameMac> {
    keys.as_mut().map(|k| &mut k.send)
}

fn recv_mac(keys: &mut Macs) -> Option<&mut FrameMac> {
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
                return refuse(&mut r, &mut w, me, e, &mut keys).await;
            }
            handle_write(ctx, r, w, block, downstream, token, keys).await
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
            handle_read(ctx, w, (block, gen), offset, len, keys).await
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

async fn send_ack(w: &mut OwnedWriteHalf, ack: &WriteAck, keys: &mut Macs) -> Result<(), FsError> {
    write_control_mac(w, ack, send_mac(keys)).await?;
    let _ = timed_io(IO_TIMEOUT, w.shutdown()).await;
    Ok(())
}

/// Reads and discards until upstream closes (or `LINGER` passes).
async fn linger<R: AsyncRead + Unpin>(r: &mut R) {
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut sink = vec![0u8; 64 << 10];
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, r.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

enum LocalMsg {
    Chunk(Vec<u8>, usize, u32),
    Finish(Finish),
}

/// The local writer thread: writes chunks as they come, returns the buffers,
/// publishes on `Finish`. After a failure it keeps draining (upstream and
/// downstream go on) and reports the failure at the end.
fn local_writer(
    w: ReplicaWriter,
    mut rx: mpsc::Receiver<LocalMsg>,
    free: mpsc::UnboundedSender<Vec<u8>>,
) -> Result<ReplicaReport, FsError> {
    let mut w = Some(w);
    let mut err: Option<FsError> = None;
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            LocalMsg::Chunk(buf, n, crc) => {
                if let Some(wr) = w.as_mut() {
                    if let Err(e) = wr.write_chunk(&buf[..n], crc) {
                        tracing::warn!(
                            fault = "local",
                            "block {}: local write failed: {e}",
                            wr.block()
                        );
                        err = Some(e);
                        // Dropping the writer frees its space at once.
                        w = None;
                    }
                }
                let _ = free.send(buf);
            }
            LocalMsg::Finish(fin) => {
                return match (w, err) {
                    (Some(wr), _) => wr.finish(fin),
                    (None, Some(e)) => Err(e),
                    (None, None) => Err(FsError::Internal("local writer lost".into())),
                };
            }
        }
    }
    Err(err.unwrap_or_else(|| FsError::Protocol("the block ended without its Finish".into())))
}

/// Answers a write this node will not store with its own failed status
/// alone (nodes after it get none), then drains the sender for a while so
/// the answer is not lost to a connection reset.
async fn refuse(
    r: &mut BufReader<OwnedReadHalf>,
    w: &mut OwnedWriteHalf,
    me: DatanodeId,
    e: FsError,
    keys: &mut Macs,
) -> Result<(), FsError> {
    let ack = WriteAck {
        statuses: vec![NodeStatus {
            node: me,
            result: Err(e),
        }],
    };
    send_ack(w, &ack, keys).await?;
    linger(r).await;
    Ok(())
}

async fn handle_write(
    ctx: Arc<TransferCtx>,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    block: BlockInfo,
    downstream: Vec<DatanodeAddr>,
    token: Option<BlockToken>,
    mut keys: Macs,
) -> Result<(), FsError> {
    let me = ctx.store.datanode_id().clone();
    let store = ctx.store.clone();
    let (id, gen, expected) = (block.id, block.gen, block.len);
    let open_local = async {
        tokio::task::spawn_blocking(move || store.begin_write(id, gen, expected))
            .await
            .map_err(join_err)?
    };
    let open_down = async {
        if downstream.is_empty() {
            return None;
        }
        // The token goes along: the next node checks it too.
        let (key, token) = (ctx.key.as_ref(), token.clone());
        Some(BlockWriter::open_with_token(&downstream, block.clone(), key, token).await)
    };
    let (local, down) = tokio::join!(open_local, open_down);
    let writer = match local {
        Ok(wr) => wr,
        Err(e) => {
            tracing::info!("block {id} gen {gen}: refusing the write: {e}");
            drop(down);
            return refuse(&mut r, &mut w, me, e, &mut keys).await;
        }
    };
    // Downstream: the writer while it works, or why it does not.
    let (mut down, mut down_err) = match down {
        None => (None, None),
        Some(Ok(dw)) => (Some(dw), None),
        Some(Err(e)) => {
            tracing::info!(
                "block {id}: downstream {} unreachable: {e}",
                downstream[0].id
            );
            (None, Some(e))
        }
    };

    let (tx, rx) = mpsc::channel::<LocalMsg>(LOCAL_QUEUE);
    let (free_tx, mut free_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let local: JoinHandle<Result<ReplicaReport, FsError>> =
        tokio::task::spawn_blocking(move || local_writer(writer, rx, free_tx));
    let mut down_failed = false;

    loop {
        let (plen, crc) = read_packet_header(&mut r, IO_TIMEOUT).await?;
        if plen == 0 {
            break;
        }
        if plen > CHUNK {
            return Err(FsError::Protocol(format!(
                "block {id}: write packet of {plen} bytes (at most {CHUNK})"
            )));
        }
        let mut buf = free_rx.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        timed_io(IO_TIMEOUT, r.read_exact(&mut buf[..plen])).await?;
        let actual = crc32c::crc32c(&buf[..plen]);
        if actual != crc {
            // Corrupt data from upstream: nothing of it is forwarded or kept.
            let e = FsError::ChecksumMismatch {
                block: id,
                detail: format!("packet from upstream: crc32c {actual:08x}, header {crc:08x}"),
            };
            tracing::warn!(fault = "peer", "{e}");
            drop(down);
            drop(tx);
            let r = refuse(&mut r, &mut w, me, e, &mut keys).await;
            let _ = local.await;
            return r;
        }
        if let (Some(dw), false) = (down.as_mut(), down_failed) {
            if let Err(e) = dw.send_chunk_with_crc(&buf[..plen], crc).await {
                tracing::info!("block {id}: downstream {} failed: {e}", downstream[0].id);
                down_failed = true;
            }
        }
        // A send fails only when the local thread is gone, which it is not
        // before Finish; the failure then shows in its result.
        let _ = tx.send(LocalMsg::Chunk(buf, plen, crc)).await;
    }
    // The digest the data is checked against before finalizing: on a
    // key-proved connection it is MACed, so tampered packets fail here.
    let fin: Finish = read_control_mac(&mut r, IO_TIMEOUT, recv_mac(&mut keys)).await?;

    let local_done = async {
        let _ = tx.send(LocalMsg::Finish(fin.clone())).await;
        drop(tx);
        local.await.map_err(join_err)?
    };
    let down_done = async {
        match down.take() {
            // `finish` also reports an early acknowledgement or a failed send.
            Some(dw) => Some(dw.finish(fin.clone()).await),
            None => down_err.take().map(Err),
        }
    };
    let (local_res, down_res) = tokio::join!(local_done, down_done);

    let mut statuses = Vec::with_capacity(1 + downstream.len());
    match &local_res {
        Ok(report) => {
            let _ = ctx.events.send(StoreEvent::Finalized(report.clone()));
            statuses.push(NodeStatus {
                node: me,
                result: Ok(()),
            });
        }
        Err(e) => {
            tracing::warn!(fault = "local", "block {id} gen {gen}: not stored: {e}");
            statuses.push(NodeStatus {
                node: me,
                result: Err(e.clone()),
            });
        }
    }
    match down_res {
        None => {}
        Some(Ok(ack)) => statuses.extend(ack.statuses),
        Some(Err(e)) => statuses.push(NodeStatus {
            node: downstream[0].id.clone(),
            result: Err(e),
        }),
    }
    send_ack(&mut w, &WriteAck { statuses }, &mut keys).await
}

/// Fills `buf` with packets (header and data) for `count` chunks from
/// `first`; returns the bytes filled.
fn fill_packets(
    reader: &ReplicaReader,
    first: u64,
    count: u64,
    buf: &mut [u8],
) -> Result<usize, FsError> {
    let mut at = 0usize;
    for i in first..first + count {
        let slot = &mut buf[at..];
        let (n, crc) = reader.read_chunk(i, &mut slot[PACKET_HEADER..])?;
        slot[..PACKET_HEADER].copy_from_slice(&packet_header(n, crc));
        at += PACKET_HEADER + n;
    }
    Ok(at)
}

type Filled = (Vec<u8>, Result<usize, FsError>);

fn spawn_fill(
    reader: Arc<ReplicaReader>,
    first: u64,
    count: u64,
    mut buf: Vec<u8>,
) -> JoinHandle<Filled> {
    tokio::task::spawn_blocking(move || {
        let r = fill_packets(&reader, first, count, &mut buf);
        (buf, r)
    })
}

async fn handle_read(
    ctx: Arc<TransferCtx>,
    mut w: OwnedWriteHalf,
    (block, gen): (BlockId, u64),
    offset: u64,
    len: u64,
    mut keys: Macs,
) -> Result<(), FsError> {
    let store = ctx.store.clone();
    let reader = tokio::task::spawn_blocking(move || store.open_read(block, gen))
        .await
        .map_err(join_err)?;
    let reader = match reader {
        Ok(r) => Arc::new(r),
        Err(e) => {
            write_control_mac(&mut w, &ReadReply::Err(e), send_mac(&mut keys)).await?;
            let _ = timed_io(IO_TIMEOUT, w.shutdown()).await;
            return Ok(());
        }
    };
    let block_len = reader.len();
    let want_start = offset.min(block_len);
    let want_end = offset.saturating_add(len).min(block_len);
    let chunk = CHUNK as u64;
    let first = want_start / chunk;
    let end = if want_end > want_start {
        (want_end - 1) / chunk + 1
    } else {
        first
    };
    write_control_mac(
        &mut w,
        &ReadReply::Ok {
            start: first * chunk,
            block_len,
        },
        send_mac(&mut keys),
    )
    .await?;

    let batch_bytes = READ_BATCH as usize * (CHUNK + PACKET_HEADER);
    let mut spare: Option<Vec<u8>> = None;
    let mut next = first;
    let mut inflight: Option<JoinHandle<Filled>> = None;
    // A first small batch gets bytes moving soon; then large ones.
    if next < end {
        let count = (end - next).min(2);
        inflight = Some(spawn_fill(
            reader.clone(),
            next,
            count,
            vec![0u8; batch_bytes],
        ));
        next += count;
    }
    while let Some(h) = inflight.take() {
        let (buf, filled) = h.await.map_err(join_err)?;
        let n = match filled {
            Ok(n) => n,
            Err(e) => {
                // The client sees the stream end early; the replica may be
                // damaged (a short data file), so say so here.
                tracing::warn!(
                    fault = "local",
                    "block {block}: read failed mid-stream: {e}"
                );
                return Err(e);
            }
        };
        if next < end {
            let count = (end - next).min(READ_BATCH);
            let b = spare.take().unwrap_or_else(|| vec![0u8; batch_bytes]);
            inflight = Some(spawn_fill(reader.clone(), next, count, b));
            next += count;
        }
        timed_io(READER_STALL, w.write_all(&buf[..n])).await?;
        spare = Some(buf);
    }
    timed_io(READER_STALL, w.write_all(&packet_header(0, 0))).await?;
    let _ = timed_io(IO_TIMEOUT, w.shutdown()).await;
    Ok(())
}

/// Copies finalized replica `block` (id and gen) to `targets`, a pipeline,
/// as a `Replicate` command asks, showing the leader's `token` for them (on
/// a keyed cluster the targets refuse the copy without it). Every chunk is checked against its stored
/// CRC before it leaves: when this node's own stored data fails a checksum
/// (a chunk CRC, its meta file, a data file shorter than recorded) the
/// replica is quarantined and announced ([`StoreEvent::Quarantined`]) and
/// the copy fails with `ChecksumMismatch` instead of spreading it.
/// Failures downstream (a target down, full or refusing) come back in the
/// acknowledgement or as another error and never touch the source replica.
pub async fn replicate(
    ctx: &TransferCtx,
    block: &BlockInfo,
    targets: &[DatanodeAddr],
    token: Option<BlockToken>,
) -> Result<WriteAck, FsError> {
    let store = ctx.store.clone();
    let (id, gen) = (block.id, block.gen);
    let opened = tokio::task::spawn_blocking(move || store.open_read(id, gen))
        .await
        .map_err(join_err)?;
    let reader = match opened {
        Ok(r) => Arc::new(r),
        Err(e @ FsError::ChecksumMismatch { .. }) => {
            return Err(source_corrupt(ctx, id, gen, e).await)
        }
        Err(e) => return Err(e),
    };
    let info = BlockInfo {
        id,
        gen,
        len: reader.len(),
        sha256: Some(reader.sha256()),
    };
    let mut bw = BlockWriter::open_with_token(targets, info, ctx.key.as_ref(), token).await?;
    let chunks = reader.chunks();
    let mut buf = vec![0u8; READ_BATCH as usize * CHUNK];
    let mut next = 0u64;
    'send: while next < chunks {
        let count = (chunks - next).min(READ_BATCH);
        let rd = reader.clone();
        let (b, got) = tokio::task::spawn_blocking(move || {
            let r = rd.read_chunks(next, count, &mut buf);
            (buf, r)
        })
        .await
        .map_err(join_err)?;
        buf = b;
        let got = match got {
            Ok(n) => n,
            Err(e @ FsError::ChecksumMismatch { .. }) => {
                return Err(source_corrupt(ctx, id, gen, e).await)
            }
            Err(e) => return Err(e),
        };
        for (k, piece) in buf[..got].chunks(CHUNK).enumerate() {
            let i = next + k as u64;
            let crc = reader.chunk_crc(i).unwrap_or_default();
            if crc32c::crc32c(piece) != crc {
                let e = FsError::ChecksumMismatch {
                    block: id,
                    detail: format!("local replica: chunk {i} fails its CRC32C"),
                };
                return Err(source_corrupt(ctx, id, gen, e).await);
            }
            if bw.send_chunk_with_crc(piece, crc).await.is_err() {
                // `finish` returns the pipeline's answer or the failure.
                break 'send;
            }
        }
        next += count;
    }
    bw.finish(Finish {
        len: reader.len(),
        sha256: reader.sha256(),
    })
    .await
}

/// Quarantines this node's replica `id`/`gen`, whose own stored data failed
/// a checksum (`e`) while being copied, announces it, and returns `e`.
async fn source_corrupt(ctx: &TransferCtx, id: BlockId, gen: u64, e: FsError) -> FsError {
    tracing::warn!(fault = "local", "block {id} gen {gen} is corrupt here: {e}");
    let store = ctx.store.clone();
    let why = e.to_string();
    match tokio::task::spawn_blocking(move || store.quarantine(id, gen, &why)).await {
        Ok(Ok(true)) => {
            let _ = ctx.events.send(StoreEvent::Quarantined { id, gen });
        }
        Ok(Ok(false)) => {}
        Ok(Err(q)) => tracing::warn!(fault = "local", "block {id}: cannot quarantine: {q}"),
        Err(j) => tracing::warn!(fault = "local", "block {id}: cannot quarantine: {j}"),
    }
    e
}
