//! WRITE_BLOCK, the datanode side of Hadoop's write pipeline
//! (`DataXceiver.writeBlock`, `BlockReceiver`, `PacketResponder`).
//!
//! After the set-up (the local replica opened for the stage, the next
//! datanode in `targets` connected with the op minus itself, the client
//! answered with the mirror's status and its first bad link), three things
//! run at once: the receiver reads packets, checks every chunk against the
//! client's checksum, forwards the raw packet downstream and queues its
//! data for a blocking writer thread; the responder acknowledges each
//! packet upstream once the downstream acknowledgement for it has come, one
//! status per node from here down; the writer thread fills the replica and,
//! on the last packet, finishes it (durable, SHA-256 recorded, reported),
//! which the last packet's acknowledgement waits for.
//!
//! A transfer (`TRANSFER_RBW`/`TRANSFER_FINALIZED`, from another datanode)
//! has no connect answer and no packet acknowledgements: one
//! `BlockOpResponseProto` once the replica is stored.

use super::wire::{read_message, read_packet, send, send_message};
use super::{error_response, join_err, ReplicaSink, Server, IO_TIMEOUT};
use crate::dtp::{self, op_response};
use crate::proto::hdfs::op_write_block_proto::BlockConstructionStage as Stage;
use crate::proto::hdfs::{
    BlockOpResponseProto, ChecksumProto, DatanodeInfoProto, OpWriteBlockProto, PipelineAckProto,
    Status,
};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::AccessMode;
use tdfs_proto::FsError;
use tdfs_rpc::{LinkReadHalf, LinkWriteHalf};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long connecting to the next datanode may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Packets queued for the writer thread (each up to 64 KiB from Hadoop).
const LOCAL_QUEUE: usize = 32;
/// At most this many bytes of acknowledgements go in one write.
const ACK_BATCH: usize = 4096;

/// `host:port` of a datanode's DataTransferProtocol server.
pub(crate) fn xfer_addr(d: &DatanodeInfoProto) -> String {
    format!("{}:{}", d.id.ip_addr, d.id.xfer_port)
}

fn is_transfer(stage: Stage) -> bool {
    matches!(stage, Stage::TransferRbw | Stage::TransferFinalized)
}

/// Opens the local replica the stage asks for.
async fn open_sink(server: &Server, op: &OpWriteBlockProto, stage: Stage) -> SinkResult {
    let b = &op.header.base_header.block;
    let (id, gen) = (b.block_id, b.generation_stamp);
    let new_gen = if op.latest_generation_stamp > 0 {
        op.latest_generation_stamp
    } else {
        gen
    };
    let access = server.access.clone();
    let (keep, expected) = (op.min_bytes_rcvd, b.num_bytes.unwrap_or(0));
    let task = match stage {
        Stage::PipelineSetupCreate | Stage::TransferRbw | Stage::TransferFinalized => {
            tokio::task::spawn_blocking(move || access.create(id, new_gen, expected))
        }
        Stage::PipelineSetupAppend
        | Stage::PipelineSetupAppendRecovery
        | Stage::PipelineSetupStreamingRecovery
        | Stage::PipelineCloseRecovery => {
            tokio::task::spawn_blocking(move || access.reopen(id, gen, new_gen, keep))
        }
        Stage::DataStreaming | Stage::PipelineClose => {
            return Err(FsError::InvalidArgument(format!(
                "block {id}: {} is not a pipeline set-up stage",
                stage.as_str_name()
            )))
        }
    };
    task.await.map_err(join_err)?
}

type SinkResult = Result<Box<dyn ReplicaSink>, FsError>;

/// The connection to the next datanode.
struct Mirror {
    addr: String,
    r: BufReader<LinkReadHalf>,
    w: LinkWriteHalf,
}

/// The op the next datanode receives: the same, without itself in front.
fn downstream_op(op: &OpWriteBlockProto) -> OpWriteBlockProto {
    let mut d = op.clone();
    d.targets.remove(0);
    if !d.target_storage_types.is_empty() {
        d.storage_type = Some(d.target_storage_types.remove(0));
    }
    if !d.target_pinnings.is_empty() {
        d.pinning = Some(d.target_pinnings.remove(0));
    }
    if !d.target_storage_ids.is_empty() {
        d.storage_id = Some(d.target_storage_ids.remove(0));
    }
    d
}

/// Connects to `targets[0]` and sends it the op; unless this is a transfer,
/// reads its connect answer. On failure, the bad link's address. Connects
/// through the server's connector.
async fn connect_mirror(
    server: &Server,
    op: &OpWriteBlockProto,
    transfer: bool,
) -> Result<Mirror, String> {
    let addr = xfer_addr(&op.targets[0]);
    let fail = |why: String| {
        tracing::info!("hdfs pipeline: downstream {addr} failed: {why}");
        addr.clone()
    };
    let s = match server
        .cfg
        .connector
        .connect_stream(&addr, CONNECT_TIMEOUT)
        .await
    {
        Ok(s) => s,
        Err(e) => return Err(fail(e.to_string())),
    };
    let (r, mut w) = s.into_split();
    let mut r = BufReader::new(r);
    let req = dtp::encode_op(&dtp::OpRequest::WriteBlock(Box::new(downstream_op(op))));
    if let Err(e) = send(&mut w, &req, IO_TIMEOUT).await {
        return Err(fail(e.to_string()));
    }
    if !transfer {
        match read_message::<BlockOpResponseProto, _>(&mut r, IO_TIMEOUT, "connect ack").await {
            Ok(a) if a.status == Status::Success as i32 => {}
            Ok(a) => {
                let bad = a.first_bad_link.filter(|l| !l.is_empty());
                return Err(bad.unwrap_or_else(|| fail(a.message.unwrap_or_default())));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Ok(Mirror { addr, r, w })
}

pub(crate) async fn write_block<R, W>(
    server: &Server,
    r: &mut R,
    w: &mut W,
    op: OpWriteBlockProto,
) -> Result<bool, FsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let b = &op.header.base_header.block;
    let (id, gen) = (b.block_id, b.generation_stamp);
    let stage = Stage::try_from(op.stage).unwrap_or(Stage::DataStreaming);
    let transfer = is_transfer(stage);
    let sink = match check_write_token(server, &op, transfer) {
        Ok(()) => open_sink(server, &op, stage).await,
        Err(e) => Err(e),
    };
    let sink = match sink {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("hdfs write of block {id} gen {gen} refused: {e}");
            send_message(w, &error_response(&e), IO_TIMEOUT).await?;
            return Ok(false);
        }
    };
    if stage == Stage::PipelineCloseRecovery {
        return close_recovery(server, w, op, sink).await;
    }
    let mut mirror = None;
    if !op.targets.is_empty() {
        match connect_mirror(server, &op, transfer).await {
            Ok(m) => mirror = Some(m),
            Err(bad) => {
                let mut resp = op_response(Status::Error, Some(format!("cannot reach {bad}")));
                resp.first_bad_link = Some(bad);
                send_message(w, &resp, IO_TIMEOUT).await?;
                return Ok(false);
            }
        }
    }
    if !transfer {
        let mut resp = op_response(Status::Success, None);
        resp.first_bad_link = Some(String::new());
        send_message(w, &resp, IO_TIMEOUT).await?;
    }
    let sum = op.requested_checksum;
    let done = stream(r, w, mirror, sink, sum, transfer).await;
    if let Err(e) = &done {
        tracing::info!("hdfs write of block {id} gen {gen} failed: {e}");
    }
    done
}

/// `PIPELINE_CLOSE_RECOVERY`: the pipeline failed as the block closed, so
/// no packets follow (Hadoop's `recoverClose`): the replica, reopened under
/// the new generation with the bytes the client had acknowledged, is
/// finalized and reported here, then downstream (whose connect answer
/// comes once it did the same), then the client hears success.
async fn close_recovery<W: AsyncWrite + Unpin>(
    server: &Server,
    w: &mut W,
    op: OpWriteBlockProto,
    sink: Box<dyn ReplicaSink>,
) -> Result<bool, FsError> {
    let id = op.header.base_header.block.block_id;
    let done = tokio::task::spawn_blocking(move || sink.finish())
        .await
        .map_err(join_err)
        .and_then(|r| r);
    if let Err(e) = done {
        tracing::info!("hdfs close recovery of block {id} failed: {e}");
        send_message(w, &error_response(&e), IO_TIMEOUT).await?;
        return Ok(false);
    }
    let mut resp = op_response(Status::Success, None);
    resp.first_bad_link = Some(String::new());
    if !op.targets.is_empty() {
        if let Err(bad) = connect_mirror(server, &op, false).await {
            resp = op_response(Status::Error, Some(format!("cannot reach {bad}")));
            resp.first_bad_link = Some(bad);
        }
    }
    tracing::info!(
        "hdfs close recovery: block {id} finalized at gen {}",
        op.latest_generation_stamp
    );
    send_message(w, &resp, IO_TIMEOUT).await?;
    Ok(resp.status == Status::Success as i32)
}

fn check_write_token(
    server: &Server,
    op: &OpWriteBlockProto,
    transfer: bool,
) -> Result<(), FsError> {
    let h = &op.header.base_header;
    let b = &h.block;
    let gens = [op.latest_generation_stamp, b.generation_stamp];
    let token = h.token.as_ref();
    let write = server.check_token(token, b.block_id, &gens, AccessMode::Write);
    match (write, transfer) {
        (Err(_), true) => server.check_token(token, b.block_id, &gens, AccessMode::Read),
        // A write token is bound to its pipeline.
        (Ok(()), _) => server.check_pipeline(token, b.block_id, &op.targets),
        (r, _) => r,
    }
}

/// One packet the responder acknowledges.
struct Pending {
    seqno: i64,
    last: bool,
    /// This node's verdict on the packet's data.
    status: Status,
}

enum Local {
    Data(u64, Bytes),
    Finish,
    /// A packet failed its checksum: nothing received is kept.
    Discard,
}

/// The writer thread: data at its offset (bytes already held, resent after
/// a client's flush or a pipeline recovery, are skipped), then finish. A
/// sink whose write failed, or that received a corrupt packet, is dropped
/// (its partial replica goes) and the failure is the result. A write that
/// broke off (no last packet; every packet received was written) is
/// interrupted when `keep_partial`: the replica stays for a recovery.
fn local_writer(
    mut sink: Box<dyn ReplicaSink>,
    mut rx: mpsc::Receiver<Local>,
    failed: Arc<AtomicBool>,
    keep_partial: bool,
) -> Result<(), FsError> {
    let mut err = None;
    while let Some(m) = rx.blocking_recv() {
        match m {
            Local::Data(off, data) if err.is_none() => {
                let have = sink.len();
                let r = if off > have {
                    Err(FsError::InvalidArgument(format!(
                        "packet at offset {off} leaves a gap after {have} bytes"
                    )))
                } else {
                    let skip = ((have - off) as usize).min(data.len());
                    sink.write(&data[skip..])
                };
                if let Err(e) = r {
                    failed.store(true, Ordering::Relaxed);
                    err = Some(e);
                }
            }
            Local::Data(..) => {}
            Local::Finish => return err.map_or_else(|| sink.finish(), Err),
            Local::Discard => {
                return Err(
                    err.unwrap_or_else(|| FsError::Protocol("a packet failed its checksum".into()))
                )
            }
        }
    }
    if let Some(e) = err {
        return Err(e);
    }
    let held = sink.len();
    if keep_partial {
        sink.interrupt();
    }
    Err(FsError::Protocol(format!(
        "the block ended without its last packet ({held} bytes received{})",
        if keep_partial {
            ", kept for a recovery"
        } else {
            ""
        }
    )))
}

/// Receives, forwards and stores the packets; acknowledges them.
async fn stream<R, W>(
    r: &mut R,
    w: &mut W,
    mirror: Option<Mirror>,
    sink: Box<dyn ReplicaSink>,
    sum: ChecksumProto,
    transfer: bool,
) -> Result<bool, FsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let failed = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel(LOCAL_QUEUE);
    let f = failed.clone();
    let local = tokio::task::spawn_blocking(move || local_writer(sink, rx, f, !transfer));
    let (mirror_r, mirror_w, mirror_addr) = match mirror {
        Some(m) => (Some(m.r), Some(m.w), m.addr),
        None => (None, None, String::new()),
    };
    let (acks, pending) = mpsc::unbounded_channel();
    let recv = receive(r, mirror_w, tx, acks, &sum, &failed);
    if transfer {
        let received = recv.await;
        return finish_transfer(w, received, local, mirror_r).await;
    }
    let respond = respond(w, mirror_r, &mirror_addr, pending, local);
    let (received, responded) = tokio::join!(recv, respond);
    received?;
    responded
}

/// The receiver: packets until the last one, or the first failure.
async fn receive<R: AsyncRead + Unpin>(
    r: &mut R,
    mut mirror: Option<LinkWriteHalf>,
    local: mpsc::Sender<Local>,
    acks: mpsc::UnboundedSender<Pending>,
    sum: &ChecksumProto,
    failed: &AtomicBool,
) -> Result<(), FsError> {
    loop {
        let p = read_packet(r, IO_TIMEOUT).await?;
        let h = &p.packet.header;
        let (seqno, last) = (h.seqno, h.last_packet_in_block);
        if let Err(e) = p.packet.verify(sum) {
            // Nothing of it is forwarded or kept; the client hears why.
            tracing::warn!(fault = "peer", "hdfs write: packet {seqno} refused: {e}");
            let _ = acks.send(Pending {
                seqno,
                last: true,
                status: Status::ErrorChecksum,
            });
            let _ = local.send(Local::Discard).await;
            return Err(super::wire::wire_err(e));
        }
        if let Some(m) = mirror.as_mut() {
            if send(m, &p.raw, IO_TIMEOUT).await.is_err() {
                // The responder sees the mirror fail and says so.
                mirror = None;
            }
        }
        if !p.packet.data.is_empty() {
            let off = h.offset_in_block.max(0) as u64;
            let _ = local.send(Local::Data(off, p.packet.data.clone())).await;
        }
        if last {
            let _ = local.send(Local::Finish).await;
        }
        let status = match failed.load(Ordering::Relaxed) {
            true => Status::Error,
            false => Status::Success,
        };
        let _ = acks.send(Pending {
            seqno,
            last,
            status,
        });
        if last {
            return Ok(());
        }
    }
}

/// The responder: one acknowledgement per packet, this node's status
/// first, then the statuses the next node sent (or an error for it, once
/// it failed).
async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut mirror: Option<BufReader<LinkReadHalf>>,
    mirror_addr: &str,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    local: JoinHandle<Result<(), FsError>>,
) -> Result<bool, FsError> {
    let downstream = mirror.is_some();
    let mut local = Some(local);
    // Acknowledgements not sent yet: several go in one write when more
    // are ready (the next packet received and, downstream, its answer
    // already buffered); none waits for anything but a ready one.
    let mut out = Vec::new();
    while let Some(p) = pending.recv().await {
        let mut statuses = vec![p.status];
        if p.last && !out.is_empty() {
            send(w, &std::mem::take(&mut out), IO_TIMEOUT).await?;
        }
        if p.last && p.status == Status::Success {
            let r = match local.take() {
                Some(h) => h.await.map_err(join_err).and_then(|r| r),
                None => Err(FsError::Internal("local writer gone".into())),
            };
            if let Err(e) = r {
                tracing::warn!(
                    fault = "local",
                    "hdfs write: the replica was not stored: {e}"
                );
                statuses[0] = Status::Error;
            }
        }
        // A packet refused here was not forwarded: no answer will come.
        if downstream && p.status != Status::ErrorChecksum {
            statuses.extend(mirror_statuses(&mut mirror, mirror_addr, p.seqno).await);
        }
        out.extend_from_slice(&dtp::encode_message(&dtp::pipeline_ack(p.seqno, &statuses)));
        let more_ready = !p.last
            && !pending.is_empty()
            && out.len() < ACK_BATCH
            && mirror.as_ref().is_none_or(|m| !m.buffer().is_empty());
        if !more_ready {
            send(w, &std::mem::take(&mut out), IO_TIMEOUT).await?;
        }
        if p.last {
            return Ok(statuses.iter().all(|s| *s == Status::Success));
        }
    }
    Err(FsError::Protocol(
        "the write ended before its last packet".into(),
    ))
}

/// The downstream statuses for packet `seqno`; `[ERROR]` once the next
/// node failed (its connection is then dropped).
async fn mirror_statuses(
    mirror: &mut Option<BufReader<LinkReadHalf>>,
    addr: &str,
    seqno: i64,
) -> Vec<Status> {
    let Some(m) = mirror.as_mut() else {
        return vec![Status::Error];
    };
    match read_message::<PipelineAckProto, _>(m, IO_TIMEOUT, "PipelineAckProto").await {
        Ok(a) if a.seqno == seqno => return dtp::ack_statuses(&a),
        Ok(a) => tracing::warn!(
            fault = "peer",
            "hdfs pipeline: {addr} acknowledged packet {} while {seqno} was due",
            a.seqno
        ),
        Err(e) => tracing::info!("hdfs pipeline: no acknowledgement from {addr}: {e}"),
    }
    *mirror = None;
    vec![Status::Error]
}

/// The end of a transfer: one answer once the replica is stored here (and
/// downstream, when the transfer goes on).
async fn finish_transfer<W: AsyncWrite + Unpin>(
    w: &mut W,
    received: Result<(), FsError>,
    local: JoinHandle<Result<(), FsError>>,
    mirror: Option<BufReader<LinkReadHalf>>,
) -> Result<bool, FsError> {
    let stored = match received {
        Ok(()) => local.await.map_err(join_err).and_then(|r| r),
        Err(e) => {
            local.abort();
            Err(e)
        }
    };
    let down = match (mirror, &stored) {
        (Some(mut m), Ok(())) => {
            read_message::<BlockOpResponseProto, _>(&mut m, IO_TIMEOUT, "transfer answer")
                .await
                .ok()
        }
        _ => None,
    };
    let resp = match (stored, down) {
        (Err(e), _) => error_response(&e),
        (Ok(()), Some(d)) if d.status != Status::Success as i32 => d,
        (Ok(()), _) => op_response(Status::Success, None),
    };
    send_message(w, &resp, IO_TIMEOUT).await?;
    Ok(resp.status == Status::Success as i32)
}
