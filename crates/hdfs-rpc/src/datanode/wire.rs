//! Async reads and writes of DataTransferProtocol messages over a socket,
//! on top of the sans-IO [`crate::dtp`] codec: every length is checked
//! before anything is allocated, every read has a deadline.

use crate::dtp::{self, DtpError, Op, OpRequest, PacketLengths, MAX_MESSAGE};
use bytes::{Bytes, BytesMut};
use prost::Message;
use std::time::Duration;
use tdfs_proto::FsError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) fn wire_err(e: DtpError) -> FsError {
    FsError::Protocol(e.to_string())
}

fn io_err(what: &str, e: std::io::Error) -> FsError {
    FsError::Io(format!("{what}: {e}"))
}

/// Runs `f` within `t`, naming `what` when it does not finish.
pub(crate) async fn within<T>(
    t: Duration,
    what: &str,
    f: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, FsError> {
    match tokio::time::timeout(t, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(io_err(what, e)),
        Err(_) => Err(FsError::Timeout(t.as_millis() as u64)),
    }
}

/// Reads a varint length prefix (bounded by [`MAX_MESSAGE`]) and the
/// message after it.
async fn read_delimited_bytes<R: AsyncRead + Unpin>(
    r: &mut R,
    t: Duration,
    what: &'static str,
) -> Result<Bytes, FsError> {
    let mut pre = Vec::with_capacity(5);
    let len = loop {
        let b = within(t, what, r.read_u8()).await?;
        pre.push(b);
        if let Some((len, _)) = dtp::varint_prefix(&pre).map_err(wire_err)? {
            break len;
        }
    };
    debug_assert!(len <= MAX_MESSAGE);
    let mut buf = vec![0u8; len];
    within(t, what, r.read_exact(&mut buf)).await?;
    Ok(Bytes::from(buf))
}

/// Reads one varint-delimited message `M`.
pub(crate) async fn read_message<M: Message + Default, R: AsyncRead + Unpin>(
    r: &mut R,
    t: Duration,
    what: &'static str,
) -> Result<M, FsError> {
    let b = read_delimited_bytes(r, t, what).await?;
    dtp::decode_message(b, what).map_err(wire_err)
}

/// Reads an op: `Ok(None)` when the peer closed the connection (or sent
/// nothing within `idle`) before its first byte.
pub(crate) async fn read_op<R: AsyncRead + Unpin>(
    r: &mut R,
    idle: Duration,
    t: Duration,
) -> Result<Option<OpRequest>, FsError> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(idle, r.read(&mut first)).await {
        Err(_) | Ok(Ok(0)) => return Ok(None),
        Ok(Err(e)) => return Err(io_err("reading an op", e)),
        Ok(Ok(_)) => {}
    }
    let mut rest = [0u8; 2];
    within(t, "reading an op", r.read_exact(&mut rest)).await?;
    let op: Op = dtp::parse_op_prefix([first[0], rest[0], rest[1]]).map_err(wire_err)?;
    let msg = read_delimited_bytes(r, t, "an op").await?;
    dtp::decode_op(op, msg).map(Some).map_err(wire_err)
}

/// One packet as received: the raw bytes (forwarded downstream as they
/// are) and its decoded parts, which share them.
pub(crate) struct RawPacket {
    pub raw: Bytes,
    pub packet: dtp::Packet,
}

/// Reads one packet, its lengths checked before the body is allocated.
pub(crate) async fn read_packet<R: AsyncRead + Unpin>(
    r: &mut R,
    t: Duration,
) -> Result<RawPacket, FsError> {
    let mut pre = [0u8; 6];
    within(t, "reading a packet", r.read_exact(&mut pre)).await?;
    let lens: PacketLengths = dtp::packet_lengths(pre).map_err(wire_err)?;
    let total = 6 + lens.rest();
    // Read into the spare capacity: no zeroing first; a large read goes
    // straight from the socket past the connection's small buffer.
    let mut buf = BytesMut::with_capacity(total);
    buf.extend_from_slice(&pre);
    within(t, "reading a packet", async {
        while buf.len() < total {
            let mut rest = (&mut *r).take((total - buf.len()) as u64);
            if rest.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(())
    })
    .await?;
    let raw = buf.freeze();
    let packet = dtp::Packet::decode(lens, raw.slice(6..)).map_err(wire_err)?;
    Ok(RawPacket { raw, packet })
}

/// Writes `bytes` and flushes, within `t`.
pub(crate) async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    t: Duration,
) -> Result<(), FsError> {
    within(t, "sending", async {
        w.write_all(bytes).await?;
        w.flush().await
    })
    .await
}

/// Writes `head` then `data` (a packet's header and its data) in one
/// vectored write where the socket takes both, and flushes, within `t`.
pub(crate) async fn send_parts<W: AsyncWrite + Unpin>(
    w: &mut W,
    head: &[u8],
    data: &[u8],
    t: Duration,
) -> Result<(), FsError> {
    within(t, "sending", async {
        let parts = [std::io::IoSlice::new(head), std::io::IoSlice::new(data)];
        let n = w.write_vectored(&parts).await?;
        if n < head.len() {
            w.write_all(&head[n..]).await?;
            w.write_all(data).await?;
        } else {
            w.write_all(&data[n - head.len()..]).await?;
        }
        w.flush().await
    })
    .await
}

/// Writes one varint-delimited message.
pub(crate) async fn send_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    m: &impl Message,
    t: Duration,
) -> Result<(), FsError> {
    send(w, &dtp::encode_message(m), t).await
}
