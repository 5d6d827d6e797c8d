//! Receiving a block: storing it through a blocking writer thread while
//! forwarding it down the pipeline, and the acknowledgement.

use super::{join_err, recv_mac, send_mac, Macs, StoreEvent, TransferCtx};
use crate::block_store::ReplicaWriter;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_transfer::{
    read_control_mac, read_packet_header, timed_io, write_control_mac, BlockWriter, Finish,
    NodeStatus, WriteAck, CHUNK, IO_TIMEOUT,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Chunks queued for the local writer thread.
const LOCAL_QUEUE: usize = 16;
/// How long a node that refused a write keeps draining what upstream still
/// sends, so that its answer is not lost to a connection reset.
const LINGER: Duration = Duration::from_secs(30);

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
pub(super) async fn refuse(
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

/// The next node of the pipeline: its writer while it works, or why it
/// does not (reported in the acknowledgement at the end).
struct Downstream {
    writer: Option<BlockWriter>,
    err: Option<FsError>,
}

pub(super) async fn handle_write(
    ctx: Arc<TransferCtx>,
    mut r: BufReader<OwnedReadHalf>,
    mut w: OwnedWriteHalf,
    block: BlockInfo,
    downstream: Vec<DatanodeAddr>,
    token: Option<BlockToken>,
    mut keys: Macs,
) -> Result<(), FsError> {
    let me = ctx.store.datanode_id().clone();
    let (id, gen) = (block.id, block.gen);
    let (writer, mut down) = match open(&ctx, &block, &downstream, token).await {
        Ok(opened) => opened,
        Err(e) => return refuse(&mut r, &mut w, me, e, &mut keys).await,
    };
    let (tx, rx) = mpsc::channel::<LocalMsg>(LOCAL_QUEUE);
    let (free_tx, mut free_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let local: JoinHandle<Result<ReplicaReport, FsError>> =
        tokio::task::spawn_blocking(move || local_writer(writer, rx, free_tx));
    if let Some(e) = relay(&mut r, &mut down, &downstream, &tx, &mut free_rx, id).await? {
        // Corrupt data from upstream: nothing of it is forwarded or kept.
        drop(down);
        drop(tx);
        let r = refuse(&mut r, &mut w, me, e, &mut keys).await;
        let _ = local.await;
        return r;
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
        match down.writer.take() {
            // `finish` also reports an early acknowledgement or a failed send.
            Some(dw) => Some(dw.finish(fin.clone()).await),
            None => down.err.take().map(Err),
        }
    };
    let (local_res, down_res) = tokio::join!(local_done, down_done);
    match &local_res {
        Ok(report) => {
            let _ = ctx.events.send(StoreEvent::Finalized(report.clone()));
        }
        Err(e) => tracing::warn!(fault = "local", "block {id} gen {gen}: not stored: {e}"),
    }
    let statuses = statuses(me, local_res, down_res, &downstream);
    send_ack(&mut w, &WriteAck { statuses }, &mut keys).await
}

/// Opens the local replica and the connection to the next node at once.
/// A local refusal is the error (the downstream connection is dropped);
/// a downstream failure is kept for the acknowledgement.
async fn open(
    ctx: &TransferCtx,
    block: &BlockInfo,
    downstream: &[DatanodeAddr],
    token: Option<BlockToken>,
) -> Result<(ReplicaWriter, Downstream), FsError> {
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
        let key = ctx.key.as_ref();
        Some(
            BlockWriter::open_with_token(&ctx.connector, downstream, block.clone(), key, token)
                .await,
        )
    };
    let (local, down) = tokio::join!(open_local, open_down);
    let writer = match local {
        Ok(wr) => wr,
        Err(e) => {
            tracing::info!("block {id} gen {gen}: refusing the write: {e}");
            drop(down);
            return Err(e);
        }
    };
    let down = match down {
        None => Downstream {
            writer: None,
            err: None,
        },
        Some(Ok(dw)) => Downstream {
            writer: Some(dw),
            err: None,
        },
        Some(Err(e)) => {
            tracing::info!(
                "block {id}: downstream {} unreachable: {e}",
                downstream[0].id
            );
            Downstream {
                writer: None,
                err: Some(e),
            }
        }
    };
    Ok((writer, down))
}

/// Relays the packets from upstream, each checked, to the next node and to
/// the local writer thread, until the empty packet that ends the data.
/// `Ok(Some(e))`: a packet's checksum did not match (`e` says so), and
/// neither it nor anything after it was passed on.
async fn relay(
    r: &mut BufReader<OwnedReadHalf>,
    down: &mut Downstream,
    downstream: &[DatanodeAddr],
    tx: &mpsc::Sender<LocalMsg>,
    free_rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
    id: BlockId,
) -> Result<Option<FsError>, FsError> {
    let mut down_failed = false;
    loop {
        let (plen, crc) = read_packet_header(r, IO_TIMEOUT).await?;
        if plen == 0 {
            return Ok(None);
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
            let e = FsError::ChecksumMismatch {
                block: id,
                detail: format!("packet from upstream: crc32c {actual:08x}, header {crc:08x}"),
            };
            tracing::warn!(fault = "peer", "{e}");
            return Ok(Some(e));
        }
        if let (Some(dw), false) = (down.writer.as_mut(), down_failed) {
            if let Err(e) = dw.send_chunk_with_crc(&buf[..plen], crc).await {
                tracing::info!("block {id}: downstream {} failed: {e}", downstream[0].id);
                down_failed = true;
            }
        }
        // A send fails only when the local thread is gone, which it is not
        // before Finish; the failure then shows in its result.
        let _ = tx.send(LocalMsg::Chunk(buf, plen, crc)).await;
    }
}

/// The acknowledgement's statuses: this node's first, then those the next
/// node reported (or its failure, in its name).
fn statuses(
    me: DatanodeId,
    local: Result<ReplicaReport, FsError>,
    down: Option<Result<WriteAck, FsError>>,
    downstream: &[DatanodeAddr],
) -> Vec<NodeStatus> {
    let mut statuses = Vec::with_capacity(1 + downstream.len());
    statuses.push(NodeStatus {
        node: me,
        result: local.map(|_| ()),
    });
    match down {
        None => {}
        Some(Ok(ack)) => statuses.extend(ack.statuses),
        Some(Err(e)) => statuses.push(NodeStatus {
            node: downstream[0].id.clone(),
            result: Err(e),
        }),
    }
    statuses
}
