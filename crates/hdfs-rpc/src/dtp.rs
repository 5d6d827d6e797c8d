//! HDFS's DataTransferProtocol, the codec (as Hadoop's `Sender`,
//! `Receiver`, `PacketHeader`, `PacketReceiver` and `PipelineAck` speak
//! it). A client opens a TCP connection to a datanode's xfer port and sends
//!
//! ```text
//! version u16 BE (28) | opcode u8 | varint-delimited Op...Proto
//! ```
//!
//! The datanode answers a varint-delimited `BlockOpResponseProto`; then
//! packets flow (client → datanode for WRITE_BLOCK, the reverse for
//! READ_BLOCK):
//!
//! ```text
//! payload_len u32 BE | header_len u16 BE | PacketHeaderProto | checksums | data
//! payload_len = 4 + len(checksums) + len(data)   (it counts itself)
//! ```
//!
//! with one checksum (4 bytes, big-endian) per `bytes_per_checksum` chunk
//! of data, of the type the writer chose (`CRC32C` usually, 512-byte
//! chunks). Writes are acknowledged by varint-delimited `PipelineAckProto`s,
//! reads by the reader's `ClientReadStatusProto`.
//!
//! Everything here is sans-IO: the server reads fixed-size prefixes, asks
//! this module how many bytes follow (bounded before it allocates) and
//! hands the bytes back for decoding.

use crate::proto::hdfs::{
    BlockOpResponseProto, ChecksumProto, ChecksumTypeProto, ClientReadStatusProto,
    OpBlockChecksumProto, OpReadBlockProto, OpTransferBlockProto, OpWriteBlockProto,
    PacketHeaderProto, PipelineAckProto, Status,
};
use bytes::{Buf, Bytes};
use prost::Message;

/// `DataTransferProtocol.DATA_TRANSFER_VERSION`.
pub const VERSION: u16 = 28;
/// Largest packet accepted (`PacketReceiver.MAX_PACKET_SIZE`, 16 MiB).
pub const MAX_PACKET: usize = 16 << 20;
/// Largest op or control message accepted. Ops hold a block, a token and
/// the pipeline's targets: a few KiB.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Sequence number of a heartbeat packet (`PacketHeader`'s HEART_BEAT_SEQNO).
pub const HEARTBEAT_SEQNO: i64 = -1;
/// Bytes of one chunk checksum.
pub const CHECKSUM_SIZE: usize = 4;

/// Why bytes were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DtpError {
    #[error("Version Mismatch (Expected: {VERSION}, Received: {0} )")]
    Version(u16),
    #[error("unknown or unsupported op code {0}")]
    Op(u8),
    #[error("message of {0} bytes is larger than the {MAX_MESSAGE}-byte limit")]
    MessageTooLarge(u64),
    #[error("bad varint length prefix")]
    Varint,
    #[error("Invalid payload length {0}")]
    PayloadLength(u32),
    #[error("Incorrect value for packet payload size: {0}")]
    PacketTooLarge(usize),
    #[error("invalid packet: {0}")]
    Packet(String),
    #[error("malformed {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("checksum error in chunk {chunk} at offset {offset}")]
    Checksum { chunk: usize, offset: u64 },
    #[error("unsupported checksum type {0}")]
    ChecksumType(i32),
}

/// The operations a datanode serves (`Op.java`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    WriteBlock = 80,
    ReadBlock = 81,
    BlockChecksum = 85,
    TransferBlock = 86,
}

impl Op {
    pub fn from_code(c: u8) -> Result<Op, DtpError> {
        Ok(match c {
            80 => Op::WriteBlock,
            81 => Op::ReadBlock,
            85 => Op::BlockChecksum,
            86 => Op::TransferBlock,
            other => return Err(DtpError::Op(other)),
        })
    }
}

/// Checks the 3-byte op prefix: version 28, then a known op code.
pub fn parse_op_prefix(b: [u8; 3]) -> Result<Op, DtpError> {
    let v = u16::from_be_bytes([b[0], b[1]]);
    if v != VERSION {
        return Err(DtpError::Version(v));
    }
    Op::from_code(b[2])
}

/// Reads a varint length prefix from the front of `b`: `Ok(None)` when
/// more bytes are needed, else `(message length, prefix length)`, the
/// message length already checked against [`MAX_MESSAGE`].
pub fn varint_prefix(b: &[u8]) -> Result<Option<(usize, usize)>, DtpError> {
    let mut v: u64 = 0;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            if v > MAX_MESSAGE as u64 {
                return Err(DtpError::MessageTooLarge(v));
            }
            return Ok(Some((v as usize, i + 1)));
        }
        // Five bytes already exceed any length this codec accepts.
        if i == 4 {
            return Err(DtpError::Varint);
        }
    }
    Ok(None)
}

fn decode<M: Message + Default>(b: Bytes, what: &'static str) -> Result<M, DtpError> {
    M::decode(b).map_err(|e| DtpError::Decode {
        what,
        detail: e.to_string(),
    })
}

/// An operation request with its decoded proto.
#[derive(Clone, Debug, PartialEq)]
pub enum OpRequest {
    /// Boxed: by far the largest op.
    WriteBlock(Box<OpWriteBlockProto>),
    ReadBlock(OpReadBlockProto),
    BlockChecksum(OpBlockChecksumProto),
    TransferBlock(OpTransferBlockProto),
}

/// Decodes an op's message (the bytes after its varint prefix).
pub fn decode_op(op: Op, msg: Bytes) -> Result<OpRequest, DtpError> {
    Ok(match op {
        Op::WriteBlock => OpRequest::WriteBlock(Box::new(decode(msg, "OpWriteBlockProto")?)),
        Op::ReadBlock => OpRequest::ReadBlock(decode(msg, "OpReadBlockProto")?),
        Op::BlockChecksum => OpRequest::BlockChecksum(decode(msg, "OpBlockChecksumProto")?),
        Op::TransferBlock => OpRequest::TransferBlock(decode(msg, "OpTransferBlockProto")?),
    })
}

/// Decodes a whole op from one buffer (prefix, varint, message); trailing
/// bytes (the first packet, pipelined by the client) are left in `b`.
pub fn decode_op_from(b: &mut Bytes) -> Result<Option<OpRequest>, DtpError> {
    if b.len() < 3 {
        return Ok(None);
    }
    let op = parse_op_prefix([b[0], b[1], b[2]])?;
    let Some((len, pre)) = varint_prefix(&b[3..])? else {
        return Ok(None);
    };
    if b.len() < 3 + pre + len {
        return Ok(None);
    }
    b.advance(3 + pre);
    decode_op(op, b.split_to(len)).map(Some)
}

/// What a client sends to start an op (for the client side and tests).
pub fn encode_op(req: &OpRequest) -> Vec<u8> {
    let (op, msg) = match req {
        OpRequest::WriteBlock(m) => (Op::WriteBlock, m.encode_length_delimited_to_vec()),
        OpRequest::ReadBlock(m) => (Op::ReadBlock, m.encode_length_delimited_to_vec()),
        OpRequest::BlockChecksum(m) => (Op::BlockChecksum, m.encode_length_delimited_to_vec()),
        OpRequest::TransferBlock(m) => (Op::TransferBlock, m.encode_length_delimited_to_vec()),
    };
    let mut out = VERSION.to_be_bytes().to_vec();
    out.push(op as u8);
    out.extend_from_slice(&msg);
    out
}

/// Decodes a control message given without its varint prefix:
/// `BlockOpResponseProto`, `ClientReadStatusProto`, `PipelineAckProto`.
pub fn decode_message<M: Message + Default>(b: Bytes, what: &'static str) -> Result<M, DtpError> {
    decode(b, what)
}

/// A control message, varint-delimited as it goes on the wire.
pub fn encode_message(m: &impl Message) -> Vec<u8> {
    m.encode_length_delimited_to_vec()
}

/// The answer to an op: `status`, and a message a client may log.
pub fn op_response(status: Status, message: Option<String>) -> BlockOpResponseProto {
    BlockOpResponseProto {
        status: status as i32,
        message,
        ..Default::default()
    }
}

/// The reader's final word on a read (`CHECKSUM_OK` when it verified).
pub fn read_status(status: Status) -> ClientReadStatusProto {
    ClientReadStatusProto {
        status: status as i32,
    }
}

/// A write's acknowledgement: the packet's sequence number and one status
/// per pipeline node from here down. Hadoop 3 reads the per-node `flag`
/// (status in its low 4 bits; ECN and SLOW bits left 0) and Hadoop 2 the
/// `reply` list: both are sent.
pub fn pipeline_ack(seqno: i64, statuses: &[Status]) -> PipelineAckProto {
    PipelineAckProto {
        seqno,
        reply: statuses.iter().map(|s| *s as i32).collect(),
        downstream_ack_time_nanos: Some(0),
        flag: statuses.iter().map(|s| *s as u32).collect(),
    }
}

/// The statuses of an ack, from `flag` when present (Hadoop 3), else from
/// `reply`.
pub fn ack_statuses(a: &PipelineAckProto) -> Vec<Status> {
    let raw: Vec<i32> = if a.flag.is_empty() {
        a.reply.clone()
    } else {
        a.flag.iter().map(|f| (f & 0x0f) as i32).collect()
    };
    raw.into_iter()
        .map(|s| Status::try_from(s).unwrap_or(Status::Error))
        .collect()
}

/// The two length fields in front of every packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketLengths {
    /// `4 + checksums + data`.
    pub payload: usize,
    pub header: usize,
}

impl PacketLengths {
    /// Bytes that follow the 6-byte prefix: header, checksums and data.
    pub fn rest(&self) -> usize {
        self.header + self.payload - 4
    }
}

/// Checks a packet's 6-byte prefix (as `PacketReceiver` does) before the
/// rest is read.
pub fn packet_lengths(b: [u8; 6]) -> Result<PacketLengths, DtpError> {
    let payload = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let header = u16::from_be_bytes([b[4], b[5]]) as usize;
    if payload < 4 || payload > i32::MAX as u32 {
        return Err(DtpError::PayloadLength(payload));
    }
    let payload = payload as usize;
    if payload + header > MAX_PACKET || header as u64 > i16::MAX as u64 {
        return Err(DtpError::PacketTooLarge(payload));
    }
    Ok(PacketLengths { payload, header })
}

/// One packet: header, the chunk checksums and the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    pub header: PacketHeaderProto,
    pub checksums: Bytes,
    pub data: Bytes,
}

impl Packet {
    /// Decodes the bytes after the 6-byte prefix.
    pub fn decode(lens: PacketLengths, mut rest: Bytes) -> Result<Packet, DtpError> {
        if rest.len() != lens.rest() {
            return Err(DtpError::Packet(format!(
                "{} bytes after the lengths, expected {}",
                rest.len(),
                lens.rest()
            )));
        }
        let header: PacketHeaderProto = decode(rest.split_to(lens.header), "PacketHeaderProto")?;
        if header.data_len < 0 {
            return Err(DtpError::Packet("data length is negative".into()));
        }
        let data_len = header.data_len as usize;
        let Some(sums) = (lens.payload - 4).checked_sub(data_len) else {
            return Err(DtpError::Packet(format!(
                "data length in packet header ({data_len}) exceeds the data received ({})",
                lens.payload - 4
            )));
        };
        let checksums = rest.split_to(sums);
        Ok(Packet {
            header,
            checksums,
            data: rest,
        })
    }

    /// Decodes a packet from a buffer holding at least one whole packet;
    /// `Ok(None)` while more bytes are needed. Consumes what it decodes.
    pub fn decode_from(b: &mut Bytes) -> Result<Option<Packet>, DtpError> {
        if b.len() < 6 {
            return Ok(None);
        }
        let lens = packet_lengths([b[0], b[1], b[2], b[3], b[4], b[5]])?;
        if b.len() < 6 + lens.rest() {
            return Ok(None);
        }
        b.advance(6);
        Packet::decode(lens, b.split_to(lens.rest())).map(Some)
    }

    /// A data packet with its checksums computed.
    pub fn new(
        offset: i64,
        seqno: i64,
        data: Bytes,
        sum: &ChecksumProto,
        last: bool,
    ) -> Result<Packet, DtpError> {
        Ok(Packet {
            header: PacketHeaderProto {
                offset_in_block: offset,
                seqno,
                last_packet_in_block: last,
                data_len: data.len() as i32,
                sync_block: Some(false),
            },
            checksums: Bytes::from(checksums(sum, &data)?),
            data,
        })
    }

    /// The empty packet that ends a block.
    pub fn last(offset: i64, seqno: i64) -> Packet {
        Packet {
            header: PacketHeaderProto {
                offset_in_block: offset,
                seqno,
                last_packet_in_block: true,
                data_len: 0,
                sync_block: Some(false),
            },
            checksums: Bytes::new(),
            data: Bytes::new(),
        }
    }

    pub fn is_heartbeat(&self) -> bool {
        self.header.seqno == HEARTBEAT_SEQNO
    }

    /// The packet on the wire, prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let h = self.header.encode_to_vec();
        let payload = 4 + self.checksums.len() + self.data.len();
        let mut out = Vec::with_capacity(6 + h.len() + payload - 4);
        out.extend_from_slice(&(payload as u32).to_be_bytes());
        out.extend_from_slice(&(h.len() as u16).to_be_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&self.checksums);
        out.extend_from_slice(&self.data);
        out
    }

    /// Verifies every chunk of the data against its checksum.
    pub fn verify(&self, sum: &ChecksumProto) -> Result<(), DtpError> {
        let kind = checksum_kind(sum)?;
        let Some(per) = chunk_size(sum, kind) else {
            return Ok(());
        };
        let want = self.data.len().div_ceil(per) * CHECKSUM_SIZE;
        if self.checksums.len() != want {
            return Err(DtpError::Packet(format!(
                "{} checksum bytes for {} data bytes in {per}-byte chunks",
                self.checksums.len(),
                self.data.len()
            )));
        }
        for (i, (chunk, got)) in self
            .data
            .chunks(per)
            .zip(self.checksums.chunks(4))
            .enumerate()
        {
            if crc(kind, chunk).to_be_bytes() != got {
                return Err(DtpError::Checksum {
                    chunk: i,
                    offset: self.header.offset_in_block as u64 + (i * per) as u64,
                });
            }
        }
        Ok(())
    }
}

fn checksum_kind(sum: &ChecksumProto) -> Result<ChecksumTypeProto, DtpError> {
    ChecksumTypeProto::try_from(sum.r#type).map_err(|_| DtpError::ChecksumType(sum.r#type))
}

/// The chunk size, or `None` when the type is NULL (no checksums).
fn chunk_size(sum: &ChecksumProto, kind: ChecksumTypeProto) -> Option<usize> {
    (kind != ChecksumTypeProto::ChecksumNull && sum.bytes_per_checksum > 0)
        .then_some(sum.bytes_per_checksum as usize)
}

/// The checksums of `data` in the writer's chunks.
pub fn checksums(sum: &ChecksumProto, data: &[u8]) -> Result<Vec<u8>, DtpError> {
    let kind = checksum_kind(sum)?;
    let Some(per) = chunk_size(sum, kind) else {
        return Ok(Vec::new());
    };
    Ok(data
        .chunks(per)
        .flat_map(|c| crc(kind, c).to_be_bytes())
        .collect())
}

fn crc(kind: ChecksumTypeProto, b: &[u8]) -> u32 {
    match kind {
        ChecksumTypeProto::ChecksumCrc32c => crc32c::crc32c(b),
        _ => crc32_ieee(b),
    }
}

/// CRC-32 (IEEE 802.3, zlib's), which older Hadoop clients choose.
pub fn crc32_ieee(b: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !b.iter().fold(!0u32, |c, x| {
        TABLE[((c ^ *x as u32) & 0xff) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
#[path = "dtp_tests.rs"]
mod tests;
