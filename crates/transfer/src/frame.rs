//! Framing of a data-transfer connection: deadlines on every network read
//! and write, connecting (with the handshake), packet headers and control
//! frames.
//!
//! Packet headers are `[u32 len][u32 crc32c]`, big-endian like frame lengths.
//! On a connection where both ends proved the cluster key, control frames
//! are sealed with a MAC (see `tdfs_rpc::session`).

use crate::wire::{MAX_CONTROL_FRAME, MAX_PACKET, PACKET_HEADER};
use std::future::Future;
use std::io;
use std::time::Duration;
use tdfs_proto::codec::{decode, encode_frame};
use tdfs_proto::FsError;
use tdfs_rpc::frame::read_frame;
use tdfs_rpc::session::{max_with_mac, open as open_frame, seal};
use tdfs_rpc::{handshake, Channel, ClusterKey, Connector, FrameMac, LinkStream, SessionKeys};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Connecting and handshaking with a datanode.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One read or write on a data-transfer connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

fn timeout_err(d: Duration) -> FsError {
    FsError::Timeout(d.as_millis() as u64)
}

/// Runs `f` within `d`.
pub async fn timed<T>(
    d: Duration,
    f: impl Future<Output = Result<T, FsError>>,
) -> Result<T, FsError> {
    tokio::time::timeout(d, f)
        .await
        .unwrap_or_else(|_| Err(timeout_err(d)))
}

/// Runs an I/O future within `d`.
pub async fn timed_io<T>(
    d: Duration,
    f: impl Future<Output = io::Result<T>>,
) -> Result<T, FsError> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => r.map_err(FsError::from),
        Err(_) => Err(timeout_err(d)),
    }
}

/// Opens a data-transfer connection to a datanode directly (for tests and
/// tools that speak the protocol by hand; without frame keys).
pub async fn connect(addr: &str, key: Option<&ClusterKey>) -> Result<LinkStream, FsError> {
    connect_session(&Connector::direct(), addr, key)
        .await
        .map(|(s, _)| s)
}

/// Opens a data-transfer connection to a datanode through `connector` (its
/// link's fault rules then act on the stream); returns the frame keys when
/// both ends proved the cluster key.
pub async fn connect_session(
    connector: &Connector,
    addr: &str,
    key: Option<&ClusterKey>,
) -> Result<(LinkStream, Option<SessionKeys>), FsError> {
    let unreachable =
        |why: String| FsError::Unavailable(format!("datanode {addr} is unreachable: {why}"));
    let mut stream = connector
        .connect_stream(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let session = handshake::client_session(&mut stream, Channel::Stream, key)
        .await
        .map_err(|e| match e {
            FsError::Unauthenticated(_) => e,
            other => unreachable(format!("handshake: {other}")),
        })?;
    Ok((stream, session.keys))
}

/// A packet header.
pub fn packet_header(len: usize, crc: u32) -> [u8; PACKET_HEADER] {
    let mut h = [0u8; PACKET_HEADER];
    h[..4].copy_from_slice(&(len as u32).to_be_bytes());
    h[4..].copy_from_slice(&crc.to_be_bytes());
    h
}

/// Parses a packet header, refusing lengths over [`MAX_PACKET`].
pub fn parse_packet_header(h: [u8; PACKET_HEADER]) -> Result<(usize, u32), FsError> {
    let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_PACKET {
        return Err(FsError::Protocol(format!(
            "packet of {len} bytes exceeds the limit of {MAX_PACKET} bytes"
        )));
    }
    Ok((len, crc))
}

/// Reads a packet header within `deadline`.
pub async fn read_packet_header<R: AsyncRead + Unpin>(
    r: &mut R,
    deadline: Duration,
) -> Result<(usize, u32), FsError> {
    let mut h = [0u8; PACKET_HEADER];
    timed_io(deadline, r.read_exact(&mut h)).await?;
    parse_packet_header(h)
}

/// Reads one control frame (at most [`MAX_CONTROL_FRAME`]) within `deadline`.
pub async fn read_control<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
    deadline: Duration,
) -> Result<T, FsError> {
    read_control_mac(r, deadline, None).await
}

/// Reads one control frame, checking and stripping its MAC when `mac` is
/// given (a key-proved connection).
pub async fn read_control_mac<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
    deadline: Duration,
    mac: Option<&mut FrameMac>,
) -> Result<T, FsError> {
    let max = max_with_mac(MAX_CONTROL_FRAME, mac.is_some());
    match timed(deadline, read_frame(r, max)).await? {
        Some(body) => decode(&open_frame(mac, body)?),
        None => Err(FsError::Protocol(
            "connection closed where a message was expected".into(),
        )),
    }
}

/// Writes one control frame (not flushed) within [`IO_TIMEOUT`].
pub async fn write_control<W: AsyncWrite + Unpin, T: serde::Serialize>(
    w: &mut W,
    v: &T,
) -> Result<(), FsError> {
    write_control_mac(w, v, None).await
}

/// Writes one control frame, sealed with a MAC when `mac` is given.
pub async fn write_control_mac<W: AsyncWrite + Unpin, T: serde::Serialize>(
    w: &mut W,
    v: &T,
    mac: Option<&mut FrameMac>,
) -> Result<(), FsError> {
    let mut frame = encode_frame(v)?;
    seal(mac, &mut frame)?;
    timed_io(IO_TIMEOUT, w.write_all(&frame)).await
}
