//! [`read_block`]: reads a byte range of a replica from a datanode and
//! checks every chunk's CRC32C as it arrives (the datanode sends the CRC
//! computed when the chunk was written, so corruption on its disk shows
//! here as well as corruption on the wire).

use crate::frame::{
    connect_session, parse_packet_header, read_control_mac, timed_io, write_control_mac, IO_TIMEOUT,
};
use crate::wire::{
    BlockChecksum, ChecksumReply, Op, ReadReply, CHUNK, MAX_CONTROL_FRAME, PACKET_HEADER,
};
use tdfs_proto::codec::{decode, frame_len, HEADER_LEN};
use tdfs_proto::meta::BlockToken;
use tdfs_proto::{BlockId, FsError};
use tdfs_rpc::session::{max_with_mac, open as open_frame};
use tdfs_rpc::{ClusterKey, Connector};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Receive buffer of [`read_block`]: room for many packets per system call.
const READ_BUF: usize = 4 << 20;
/// Receive buffer of a small [`read_block`].
const SMALL_READ_BUF: usize = 256 << 10;

/// A receive buffer parsed in place: one system call brings in many packets.
struct RecvBuf {
    /// The bytes; grows only to the largest packet or frame needed.
    buf: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// End of the bytes received.
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
/// packet's CRC32C. Returns the bytes written. Connects directly (tests
/// and tools; clients and datanodes use [`read_block_with_token`] with
/// their connector).
pub async fn read_block(
    addr: &str,
    key: Option<&ClusterKey>,
    block: BlockId,
    gen: u64,
    offset: u64,
    len: u64,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, FsError> {
    let direct = Connector::direct();
    read_block_with_token(&direct, addr, key, None, (block, gen), (offset, len), out).await
}

/// Like [`read_block`], showing the datanode `token` (needed by a reader
/// without the cluster key on a keyed cluster). `replica` is the block id
/// and generation, `range` the offset and length. Connects through
/// `connector`.
pub async fn read_block_with_token(
    connector: &Connector,
    addr: &str,
    key: Option<&ClusterKey>,
    token: Option<BlockToken>,
    replica: (BlockId, u64),
    range: (u64, u64),
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, FsError> {
    let ((block, gen), (offset, len)) = (replica, range);
    let (mut stream, mut keys) = connect_session(connector, addr, key).await?;
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
/// [`read_block_with_token`]. Connects through `connector`.
pub async fn block_checksum(
    connector: &Connector,
    addr: &str,
    key: Option<&ClusterKey>,
    token: Option<BlockToken>,
    (block, gen): (BlockId, u64),
) -> Result<BlockChecksum, FsError> {
    let (stream, mut keys) = connect_session(connector, addr, key).await?;
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
