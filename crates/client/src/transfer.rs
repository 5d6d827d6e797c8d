//! The client side of the data-transfer protocol (see
//! [`tdfs_proto::transfer`]): [`BlockWriter`] sends a block down a pipeline
//! of datanodes, [`read_block`] reads a byte range of a replica and checks
//! every chunk's CRC32C. The datanodes use the same pieces to forward a
//! block downstream.
//!
//! Packet headers are `[u32 len][u32 crc32c]`, big-endian like frame lengths.
//! Every network read and write has a deadline. On a connection where both
//! ends proved the cluster key, control frames are sealed with a MAC (see
//! `tdfs_rpc::session`); a caller without the key shows a block token.

use std::future::Future;
use std::io;
use std::time::Duration;
use tdfs_proto::codec::{decode, encode_frame, frame_len, HEADER_LEN};
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr};
use tdfs_proto::transfer::{
    BlockChecksum, ChecksumReply, Finish, Op, ReadReply, WriteAck, CHUNK, MAX_CONTROL_FRAME,
    MAX_PACKET, PACKET_HEADER,
};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::frame::read_frame;
use tdfs_rpc::session::{max_with_mac, open as open_frame, seal};
use tdfs_rpc::{handshake, Channel, ClusterKey, FrameMac, SessionKeys};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Connecting and handshaking with a datanode.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One read or write on a data-transfer connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// A [`BlockWriter`] waits this long per pipeline node for a send to go
/// through. A node further down has fewer nodes after it and so a shorter
/// timeout than the writer upstream of it: a stuck node is given up by its
/// upstream neighbour before the writers above time out in turn.
pub const SEND_TIMEOUT_PER_NODE: Duration = Duration::from_secs(10);
/// Likewise for the acknowledgement, which waits for every node of the
/// pipeline to finalize (fsync) the block.
pub const ACK_TIMEOUT_PER_NODE: Duration = Duration::from_secs(40);
/// Send buffer of a [`BlockWriter`].
const WRITE_BUF: usize = 1 << 20;
/// Receive buffer of [`read_block`]: room for many packets per system call.
const READ_BUF: usize = 4 << 20;
/// Receive buffer of a small [`read_block`].
const SMALL_READ_BUF: usize = 256 << 10;

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

/// Opens a data-transfer connection to a datanode (for tests and tools
/// that speak the protocol by hand; without frame keys).
pub async fn connect(addr: &str, key: Option<&ClusterKey>) -> Result<TcpStream, FsError> {
    connect_session(addr, key).await.map(|(s, _)| s)
}

/// Opens a data-transfer connection to a datanode; returns the frame keys
/// when both ends proved the cluster key.
pub async fn connect_session(
    addr: &str,
    key: Option<&ClusterKey>,
) -> Result<(TcpStream, Option<SessionKeys>), FsError> {
    let unreachable =
        |why: String| FsError::Unavailable(format!("datanode {addr} is unreachable: {why}"));
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    stream.set_nodelay(true).ok();
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

/// The first failure in an acknowledgement.
pub fn first_error(ack: &WriteAck) -> Option<FsError> {
    ack.statuses.iter().find_map(|s| s.result.clone().err())
}

/// Sends one block down a pipeline of datanodes: `open`, `send_chunk` for
/// every [`CHUNK`] of data (the last may be shorter), then `finish`.
///
/// When `send_chunk` fails, stop sending and call `finish`: it returns the
/// pipeline's acknowledgement if the head node answered (for instance with
/// `NoSpace` for itself), or the connection error.
pub struct BlockWriter {
    block: BlockInfo,
    head: DatanodeId,
    addr: String,
    rd: OwnedReadHalf,
    wr: BufWriter<OwnedWriteHalf>,
    sent: u64,
    last_short: bool,
    failed: Option<FsError>,
    early: Option<WriteAck>,
    send_timeout: Duration,
    ack_timeout: Duration,
    /// Frame keys of a key-proved connection.
    keys: Option<SessionKeys>,
}

impl std::fmt::Debug for BlockWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWriter")
            .field("block", &self.block.id)
            .field("head", &self.head)
            .field("addr", &self.addr)
            .field("sent", &self.sent)
            .finish()
    }
}

impl BlockWriter {
    /// Connects to `pipeline[0]` and asks it to receive `block` (its `len` is
    /// the expected length, reserved on every node) and forward it to the
    /// rest of the pipeline.
    pub async fn open(
        pipeline: &[DatanodeAddr],
        block: BlockInfo,
        key: Option<&ClusterKey>,
    ) -> Result<BlockWriter, FsError> {
        Self::open_with_token(pipeline, block, key, None).await
    }

    /// Like [`open`](Self::open), showing the head `token` (needed by a
    /// writer without the cluster key on a keyed cluster).
    pub async fn open_with_token(
        pipeline: &[DatanodeAddr],
        block: BlockInfo,
        key: Option<&ClusterKey>,
        token: Option<BlockToken>,
    ) -> Result<BlockWriter, FsError> {
        let Some(head) = pipeline.first() else {
            return Err(FsError::InvalidArgument("empty write pipeline".into()));
        };
        let (stream, mut keys) = connect_session(&head.addr, key).await?;
        let (rd, wr) = stream.into_split();
        let mut wr = BufWriter::with_capacity(WRITE_BUF, wr);
        let op = Op::Write {
            block: block.clone(),
            downstream: pipeline[1..].to_vec(),
            token,
        };
        let mut frame = encode_frame(&op)?;
        seal(keys.as_mut().map(|k| &mut k.send), &mut frame)?;
        timed_io(
            SEND_TIMEOUT_PER_NODE * pipeline.len() as u32,
            wr.write_all(&frame),
        )
        .await?;
        // Let the head open its replica and its downstream connection while
        // the first chunk is being prepared.
        timed_io(IO_TIMEOUT, wr.flush()).await?;
        Ok(BlockWriter {
            block,
            head: head.id.clone(),
            addr: head.addr.clone(),
            rd,
            wr,
            sent: 0,
            last_short: false,
            failed: None,
            early: None,
            send_timeout: SEND_TIMEOUT_PER_NODE * pipeline.len() as u32,
            ack_timeout: ACK_TIMEOUT_PER_NODE * pipeline.len() as u32,
            keys,
        })
    }

    /// The block being written.
    pub fn block(&self) -> &BlockInfo {
        &self.block
    }

    /// The pipeline's first node.
    pub fn head(&self) -> &DatanodeId {
        &self.head
    }

    /// Bytes sent so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// The acknowledgement the head sent before the end of the block, if it
    /// did (it failed).
    pub fn early_ack(&self) -> Option<&WriteAck> {
        self.early.as_ref()
    }

    /// Sends one chunk of 1..=[`CHUNK`] bytes; only the last may be shorter.
    pub async fn send_chunk(&mut self, data: &[u8]) -> Result<(), FsError> {
        let crc = crc32c::crc32c(data);
        self.send_chunk_with_crc(data, crc).await
    }

    /// Like [`send_chunk`](Self::send_chunk) with the chunk's CRC32C already
    /// known (a datanode forwarding a verified packet).
    pub async fn send_chunk_with_crc(&mut self, data: &[u8], crc: u32) -> Result<(), FsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if data.is_empty() || data.len() > CHUNK {
            return Err(FsError::InvalidArgument(format!(
                "chunk of {} bytes (1..={CHUNK} allowed)",
                data.len()
            )));
        }
        if self.last_short {
            return Err(FsError::InvalidArgument(
                "only the last chunk of a block may be shorter than CHUNK".into(),
            ));
        }
        self.check_early().await?;
        let hdr = packet_header(data.len(), crc);
        let wr = &mut self.wr;
        let r = timed_io(self.send_timeout, async {
            wr.write_all(&hdr).await?;
            wr.write_all(data).await
        })
        .await;
        if let Err(e) = r {
            return Err(self.fail(e).await);
        }
        self.sent += data.len() as u64;
        self.last_short = data.len() < CHUNK;
        Ok(())
    }

    /// Notices an acknowledgement sent before the end of the block (the head
    /// failed) without waiting.
    async fn check_early(&mut self) -> Result<(), FsError> {
        let mut first = [0u8; 1];
        match self.rd.try_read(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Ok(0) => {
                let e = FsError::Io(format!(
                    "datanode {} at {} closed the connection",
                    self.head, self.addr
                ));
                self.failed = Some(e.clone());
                Err(e)
            }
            Ok(_) => {
                let mut r = (&first[..]).chain(&mut self.rd);
                let mac = self.keys.as_mut().map(|k| &mut k.recv);
                let e = match read_control_mac::<_, WriteAck>(&mut r, IO_TIMEOUT, mac).await {
                    Ok(ack) => {
                        let e = first_error(&ack).unwrap_or_else(|| {
                            FsError::Protocol("datanode acknowledged before the end".into())
                        });
                        self.early = Some(ack);
                        e
                    }
                    Err(e) => e,
                };
                self.failed = Some(e.clone());
                Err(e)
            }
            Err(e) => {
                let e = FsError::from(e);
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Records a failed send; the head may have answered before closing,
    /// and its reason is better than a broken pipe.
    async fn fail(&mut self, e: FsError) -> FsError {
        let mac = self.keys.as_mut().map(|k| &mut k.recv);
        let e = match read_control_mac::<_, WriteAck>(&mut self.rd, Duration::from_secs(2), mac)
            .await
        {
            Ok(ack) => {
                let why = first_error(&ack).unwrap_or(e);
                self.early = Some(ack);
                why
            }
            Err(_) => e,
        };
        self.failed = Some(e.clone());
        e
    }

    /// Ends the block and waits for the pipeline's acknowledgement: one
    /// status per node that was reached, in pipeline order.
    pub async fn finish(mut self, fin: Finish) -> Result<WriteAck, FsError> {
        if let Some(ack) = self.early.take() {
            return Ok(ack);
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut frame = encode_frame(&fin)?;
        seal(self.keys.as_mut().map(|k| &mut k.send), &mut frame)?;
        let wr = &mut self.wr;
        let r = timed_io(self.send_timeout, async {
            wr.write_all(&packet_header(0, 0)).await?;
            wr.write_all(&frame).await?;
            wr.flush().await
        })
        .await;
        if let Err(e) = r {
            let e = self.fail(e).await;
            return self.early.take().ok_or(e);
        }
        let mac = self.keys.as_mut().map(|k| &mut k.recv);
        let ack: WriteAck = read_control_mac(&mut self.rd, self.ack_timeout, mac).await?;
        if ack.statuses.is_empty() {
            return Err(FsError::Protocol(format!(
                "datanode {} sent an empty acknowledgement",
                self.head
            )));
        }
        Ok(ack)
    }
}

/// A receive buffer parsed in place: one system call brings in many packets.
struct RecvBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl RecvBuf {
    fn new(cap: usize) -> Self {
        RecvBuf {
            buf: vec![0u8; cap],
            start: 0,
            end: 0,
        }
    }

    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Makes at least `need` bytes available (`need` is bounded by the
    /// packet and frame limits).
    async fn fill<R: AsyncRead + Unpin>(&mut self, r: &mut R, need: usize) -> Result<(), FsError> {
        if self.available() >= need {
            return Ok(());
        }
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        if self.buf.len() - self.start < need {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while self.available() < need {
            let n = timed_io(IO_TIMEOUT, r.read(&mut self.buf[self.end..])).await?;
            if n == 0 {
                return Err(FsError::Protocol(
                    "datanode closed the connection in the middle of a block".into(),
                ));
            }
            self.end += n;
        }
        Ok(())
    }

    fn peek(&self, n: usize) -> &[u8] {
        &self.buf[self.start..self.start + n]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }
}

/// Reads `[offset, offset+len)` (clamped to the replica's length) of replica
/// `block`/`gen` from the datanode at `addr` into `out`, checking every
/// packet's CRC32C. Returns the bytes written.
pub async fn read_block(
    addr: &str,
    key: Option<&ClusterKey>,
    block: BlockId,
    gen: u64,
    offset: u64,
    len: u64,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, FsError> {
    read_block_with_token(addr, key, None, (block, gen), (offset, len), out).await
}

/// Like [`read_block`], showing the datanode `token` (needed by a reader
/// without the cluster key on a keyed cluster). `replica` is the block id
/// and generation, `range` the offset and length.
pub async fn read_block_with_token(
    addr: &str,
    key: Option<&ClusterKey>,
    token: Option<BlockToken>,
    replica: (BlockId, u64),
    range: (u64, u64),
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, FsError> {
    let ((block, gen), (offset, len)) = (replica, range);
    let (mut stream, mut keys) = connect_session(addr, key).await?;
    let op = Op::Read {
        block,
        gen,
        offset,
        len,
        token,
    };
    write_control_mac(&mut stream, &op, keys.as_mut().map(|k| &mut k.send)).await?;
    let mut rb = RecvBuf::new(if len <= SMALL_READ_BUF as u64 {
        SMALL_READ_BUF
    } else {
        READ_BUF
    });

    rb.fill(&mut stream, HEADER_LEN).await?;
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(rb.peek(HEADER_LEN));
    let flen = frame_len(h, max_with_mac(MAX_CONTROL_FRAME, keys.is_some()))?;
    rb.fill(&mut stream, HEADER_LEN + flen).await?;
    let body = rb.peek(HEADER_LEN + flen)[HEADER_LEN..].to_vec();
    let reply: ReadReply = decode(&open_frame(keys.as_mut().map(|k| &mut k.recv), body)?)?;
    rb.consume(HEADER_LEN + flen);
    let (start, block_len) = match reply {
        ReadReply::Ok { start, block_len } => (start, block_len),
        ReadReply::Err(e) => return Err(e),
    };
    let want_start = offset.min(block_len);
    let want_end = offset.saturating_add(len).min(block_len);
    if start > want_start || want_start - start >= CHUNK as u64 || start % CHUNK as u64 != 0 {
        return Err(FsError::Protocol(format!(
            "datanode {addr} starts block {block} at {start} for offset {offset}"
        )));
    }

    let mut pos = start;
    let mut written = 0u64;
    loop {
        rb.fill(&mut stream, PACKET_HEADER).await?;
        let mut ph = [0u8; PACKET_HEADER];
        ph.copy_from_slice(rb.peek(PACKET_HEADER));
        let (plen, crc) = parse_packet_header(ph)?;
        rb.consume(PACKET_HEADER);
        if plen == 0 {
            break;
        }
        if pos.saturating_add(plen as u64) > block_len {
            return Err(FsError::Protocol(format!(
                "datanode {addr} sent bytes past the end of block {block}"
            )));
        }
        rb.fill(&mut stream, plen).await?;
        let data = rb.peek(plen);
        if crc32c::crc32c(data) != crc {
            return Err(FsError::ChecksumMismatch {
                block,
                detail: format!("chunk at offset {pos} from datanode {addr} fails its CRC32C"),
            });
        }
        let pend = pos + plen as u64;
        let a = want_start.max(pos);
        let b = want_end.min(pend);
        if a < b {
            let slice = &data[(a - pos) as usize..(b - pos) as usize];
            out.write_all(slice).await?;
            written += slice.len() as u64;
        }
        rb.consume(plen);
        pos = pend;
    }
    if written != want_end - want_start {
        return Err(FsError::Protocol(format!(
            "datanode {addr} sent {written} bytes of block {block}, expected {}",
            want_end - want_start
        )));
    }
    Ok(written)
}

/// Asks the datanode at `addr` for the checksums of replica `block`/`gen`
/// (computed from its stored chunk CRCs; no data moves). `token` as for
/// [`read_block_with_token`].
pub async fn block_checksum(
    addr: &str,
    key: Option<&ClusterKey>,
    token: Option<BlockToken>,
    (block, gen): (BlockId, u64),
) -> Result<BlockChecksum, FsError> {
    let (stream, mut keys) = connect_session(addr, key).await?;
    let (mut rd, mut wr) = stream.into_split();
    let op = Op::BlockChecksum { block, gen, token };
    write_control_mac(&mut wr, &op, keys.as_mut().map(|k| &mut k.send)).await?;
    let reply: ChecksumReply =
        read_control_mac(&mut rd, IO_TIMEOUT, keys.as_mut().map(|k| &mut k.recv)).await?;
    match reply {
        ChecksumReply::Ok(sum) => Ok(sum),
        ChecksumReply::Err(e) => Err(e),
    }
}
