//! READ_BLOCK and BLOCK_CHECKSUM (Hadoop's `BlockSender` and
//! `BlockChecksumHelper`, datanode side).
//!
//! A read starts at the chunk boundary at or before the requested offset
//! and ends at the chunk boundary at or after its end (or the replica's
//! end), in 64 KiB packets with one CRC32C per 512-byte chunk, then an
//! empty last packet; the reader answers with its `ClientReadStatusProto`.
//! Stored data is checked against the store's own chunk CRCs before it is
//! sent.

use super::wire::{read_message, send, send_message, send_parts};
use super::{error_response, join_err, ReplicaSource, Server, IO_TIMEOUT};
use crate::dtp::{self, op_response};
use crate::proto::hdfs::{
    BlockChecksumTypeProto, ChecksumProto, ChecksumTypeProto, ClientReadStatusProto,
    OpBlockChecksumProto, OpBlockChecksumResponseProto, OpReadBlockProto, PacketHeaderProto,
    ReadOpChecksumInfoProto, Status,
};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::AccessMode;
use tdfs_proto::FsError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;

/// Bytes per checksum of what this server sends (Hadoop's default).
pub const BYTES_PER_CHECKSUM: u32 = 512;
/// Data bytes per read packet (Hadoop's `BlockSender` sends about 64 KiB).
const PACKET_DATA: usize = 64 << 10;
/// Bytes read from the store per blocking call.
const BATCH: usize = 1 << 20;
/// How long a reader may take to send its read status after the last packet.
const STATUS_WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn open(
    server: &Server,
    block: u64,
    gen: u64,
) -> Result<Arc<dyn ReplicaSource>, FsError> {
    let access = server.access.clone();
    tokio::task::spawn_blocking(move || access.open(block, gen))
        .await
        .map_err(join_err)?
}

/// The chunk-aligned range `[start, end)` a read of `len` bytes at
/// `offset` sends, or why it cannot be served.
pub(crate) fn read_range(offset: u64, len: u64, block_len: u64) -> Result<(u64, u64), String> {
    let bpc = BYTES_PER_CHECKSUM as u64;
    let Some(want_end) = offset.checked_add(len).filter(|e| *e <= block_len) else {
        return Err(format!(
            "Offset {offset} and length {len} don't match block (blockLen {block_len})"
        ));
    };
    let start = offset - offset % bpc;
    let end = want_end.div_ceil(bpc).saturating_mul(bpc).min(block_len);
    Ok((start, end))
}

pub(crate) async fn read_block<R, W>(
    server: &Server,
    r: &mut R,
    w: &mut W,
    op: OpReadBlockProto,
) -> Result<bool, FsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let b = &op.header.base_header.block;
    let (id, gen) = (b.block_id, b.generation_stamp);
    let opened = match server.check_token(
        op.header.base_header.token.as_ref(),
        id,
        &[gen],
        AccessMode::Read,
    ) {
        Ok(()) => open(server, id, gen).await,
        Err(e) => Err(e),
    };
    let src = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("hdfs read of block {id} gen {gen} refused: {e}");
            send_message(w, &error_response(&e), IO_TIMEOUT).await?;
            return Ok(false);
        }
    };
    let (start, end) = match read_range(op.offset, op.len, src.len()) {
        Ok(r) => r,
        Err(why) => {
            let e = FsError::InvalidArgument(format!("block {id}: {why}"));
            send_message(w, &error_response(&e), IO_TIMEOUT).await?;
            return Ok(false);
        }
    };
    let sum = ChecksumProto {
        r#type: match op.send_checksums.unwrap_or(true) {
            true => ChecksumTypeProto::ChecksumCrc32c as i32,
            false => ChecksumTypeProto::ChecksumNull as i32,
        },
        bytes_per_checksum: BYTES_PER_CHECKSUM,
    };
    let mut resp = op_response(Status::Success, None);
    resp.read_op_checksum_info = Some(ReadOpChecksumInfoProto {
        checksum: sum,
        chunk_offset: start,
    });
    send_message(w, &resp, IO_TIMEOUT).await?;
    send_packets(&src, w, &sum, start, end).await?;
    // The reader's verdict; a reader that stopped early just closes.
    match read_message::<ClientReadStatusProto, _>(r, STATUS_WAIT, "ClientReadStatusProto").await {
        Ok(s) if s.status == Status::ErrorChecksum as i32 => {
            tracing::warn!(
                fault = "peer",
                "block {id}: the reader reports a checksum error"
            );
            Ok(false)
        }
        Ok(_) => Ok(true),
        Err(_) => Ok(false),
    }
}

/// The 6-byte lengths, the header and the checksums of a packet whose
/// data (`data_len` bytes) follows.
fn packet_head(h: &PacketHeaderProto, sums: &[u8], data_len: usize) -> Vec<u8> {
    let hb = h.encode_to_vec();
    let mut out = Vec::with_capacity(6 + hb.len() + sums.len());
    out.extend_from_slice(&((4 + sums.len() + data_len) as u32).to_be_bytes());
    out.extend_from_slice(&(hb.len() as u16).to_be_bytes());
    out.extend_from_slice(&hb);
    out.extend_from_slice(sums);
    out
}

/// Sends `[start, end)` of the replica in packets, then the empty last
/// packet.
pub(crate) async fn send_packets<W: AsyncWrite + Unpin>(
    src: &Arc<dyn ReplicaSource>,
    w: &mut W,
    sum: &ChecksumProto,
    start: u64,
    end: u64,
) -> Result<(), FsError> {
    let seqno = send_range(src, w, sum, start, end).await?;
    let last = PacketHeaderProto {
        offset_in_block: end as i64,
        seqno,
        last_packet_in_block: true,
        data_len: 0,
        sync_block: Some(false),
    };
    send(w, &packet_head(&last, &[], 0), IO_TIMEOUT).await
}

type Batch = JoinHandle<(Vec<u8>, Result<usize, FsError>)>;

/// Reads `[at, at + n)` of the replica on a blocking thread.
fn fetch(src: &Arc<dyn ReplicaSource>, at: u64, n: usize, mut buf: Vec<u8>) -> Batch {
    let src = src.clone();
    tokio::task::spawn_blocking(move || {
        buf.resize(n, 0);
        let r = src.read(at, &mut buf).map(|()| n);
        (buf, r)
    })
}

/// Sends `[start, end)` in packets (the next batch is read while one is
/// sent); returns the next sequence number.
async fn send_range<W: AsyncWrite + Unpin>(
    src: &Arc<dyn ReplicaSource>,
    w: &mut W,
    sum: &ChecksumProto,
    start: u64,
    end: u64,
) -> Result<i64, FsError> {
    let cs = src.chunk_size().max(1) as u64;
    let store_end = end.div_ceil(cs).saturating_mul(cs).min(src.len());
    let mut at = start - start % cs;
    let mut seqno = 0i64;
    let batch = |at: u64| (store_end - at).min(BATCH as u64) as usize;
    let mut next: Option<(u64, Batch)> =
        (at < store_end).then(|| (at, fetch(src, at, batch(at), Vec::new())));
    let mut spare = Vec::new();
    while let Some((base, h)) = next.take() {
        let (buf, got) = h.await.map_err(join_err)?;
        let n = got?;
        at = base + n as u64;
        if at < store_end {
            next = Some((at, fetch(src, at, batch(at), std::mem::take(&mut spare))));
        }
        let from = start.max(base);
        let to = end.min(at);
        let mut off = from;
        while off < to {
            let k = ((to - off) as usize).min(PACKET_DATA);
            let data = &buf[(off - base) as usize..(off - base) as usize + k];
            let sums = dtp::checksums(sum, data).map_err(super::wire::wire_err)?;
            let h = PacketHeaderProto {
                offset_in_block: off as i64,
                seqno,
                last_packet_in_block: false,
                data_len: k as i32,
                sync_block: Some(false),
            };
            send_parts(w, &packet_head(&h, &sums, k), data, IO_TIMEOUT).await?;
            seqno += 1;
            off += k as u64;
        }
        spare = buf;
    }
    Ok(seqno)
}

/// The checksum of a replica from its stored chunk CRCs: the MD5 of the
/// CRCs (big-endian), or their composition into the CRC32C of its bytes.
pub(crate) fn replica_checksum(
    src: &dyn ReplicaSource,
    mode: BlockChecksumTypeProto,
) -> OpBlockChecksumResponseProto {
    use md5::{Digest, Md5};
    let cs = src.chunk_size();
    let crcs = src.chunk_crcs();
    let block_checksum = match mode {
        BlockChecksumTypeProto::Md5crc => {
            let mut m = Md5::new();
            for c in &crcs {
                m.update(c.to_be_bytes());
            }
            m.finalize().to_vec()
        }
        BlockChecksumTypeProto::CompositeCrc => {
            let len = src.len();
            let mut crc = 0u32;
            for (i, c) in crcs.iter().enumerate() {
                let n = len.saturating_sub(i as u64 * cs as u64).min(cs as u64);
                crc = crc32c::crc32c_combine(crc, *c, n as usize);
            }
            crc.to_be_bytes().to_vec()
        }
    };
    OpBlockChecksumResponseProto {
        bytes_per_crc: cs as u32,
        crc_per_block: crcs.len() as u64,
        block_checksum,
        crc_type: Some(ChecksumTypeProto::ChecksumCrc32c as i32),
        block_checksum_options: None,
    }
}

pub(crate) async fn block_checksum<W: AsyncWrite + Unpin>(
    server: &Server,
    w: &mut W,
    op: OpBlockChecksumProto,
) -> Result<bool, FsError> {
    let b = &op.header.block;
    let (id, gen) = (b.block_id, b.generation_stamp);
    let opts = op.block_checksum_options;
    let mode = opts
        .as_ref()
        .and_then(|o| o.block_checksum_type)
        .and_then(|t| BlockChecksumTypeProto::try_from(t).ok())
        .unwrap_or(BlockChecksumTypeProto::Md5crc);
    let checked = server.check_token(op.header.token.as_ref(), id, &[gen], AccessMode::Read);
    let opened = match checked {
        Ok(()) => open(server, id, gen).await,
        Err(e) => Err(e),
    };
    let resp = match opened {
        Ok(src) => {
            let mut sum = replica_checksum(src.as_ref(), mode);
            sum.block_checksum_options = opts;
            let mut resp = op_response(Status::Success, None);
            resp.checksum_response = Some(sum);
            resp
        }
        Err(e) => {
            tracing::info!("hdfs checksum of block {id} gen {gen} refused: {e}");
            error_response(&e)
        }
    };
    send_message(w, &resp, IO_TIMEOUT).await?;
    Ok(resp.status == Status::Success as i32)
}
