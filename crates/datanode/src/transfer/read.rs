//! Serving a read: batches of chunks filled on a blocking thread while the
//! previous batch is being sent.

use super::{join_err, send_mac, Macs, TransferCtx, READ_BATCH};
use crate::block_store::ReplicaReader;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::{
    packet_header, timed_io, write_control_mac, ReadReply, CHUNK, IO_TIMEOUT, PACKET_HEADER,
};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::task::JoinHandle;

/// How long a reader may leave a batch of its block unread (it may be
/// piping into a paused consumer) before the connection is given up.
const READER_STALL: Duration = Duration::from_secs(300);

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

pub(super) async fn handle_read(
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
