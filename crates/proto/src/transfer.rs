//! The data-transfer protocol between clients and datanodes and between
//! datanodes: a connection opened with `Channel::Stream` carries one
//! operation. Control messages are ordinary frames (length-prefixed bincode,
//! capped at [`MAX_CONTROL_FRAME`]); block bytes travel as raw packets,
//! never as one giant bincode value.
//!
//! ```text
//! write:  C -> D1  frame(Op::Write{block, downstream})       D1 -> D2 -> D3 likewise
//!         C -> D1  packet* ; packet with len 0 ends the data
//!         C -> D1  frame(Finish{len, sha256})
//!         D1 -> C  frame(WriteAck{statuses})   one status per pipeline node, in order
//! read:   C -> D   frame(Op::Read{block, gen, offset, len})
//!         D -> C   frame(ReadReply{..})  then packets covering [offset, offset+len), then a 0-length packet
//! sum:    C -> D   frame(Op::BlockChecksum{block, gen})
//!         D -> C   frame(ChecksumReply{..})
//! ```
//!
//! On a connection where both ends proved the cluster key, every control
//! frame carries a MAC trailer (see `tdfs_rpc::session`); packets do not:
//! a write's data is authenticated by the SHA-256 in its MACed `Finish`,
//! which every datanode checks before finalizing.
//!
//! A packet is `[u32 len][u32 crc32c(data)][data]`, `len <= MAX_PACKET`.
//! Writes send packets of exactly [`CHUNK`] bytes (the last may be shorter),
//! and datanodes keep each chunk's CRC32C beside the block, so a read
//! serves every chunk with the checksum computed when it was written: the
//! reader detects corruption on disk as well as on the wire.

use crate::meta::{BlockInfo, BlockToken, DatanodeAddr};
use crate::{BlockId, DatanodeId, FsError};
use serde::{Deserialize, Serialize};

/// Bytes per packet and per stored checksum chunk.
pub const CHUNK: usize = 64 << 10;
/// Largest packet accepted.
pub const MAX_PACKET: usize = 1 << 20;
/// Largest control frame on a data-transfer connection.
pub const MAX_CONTROL_FRAME: usize = 1 << 20;
/// Packet header size: length and CRC32C.
pub const PACKET_HEADER: usize = 8;

/// The one operation of a data-transfer connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Receive a block and forward it to `downstream` (in order). `block.len`
    /// is the expected length, used to reserve space.
    Write {
        block: BlockInfo,
        downstream: Vec<DatanodeAddr>,
        /// Required from a caller without the cluster key on a keyed cluster.
        token: Option<BlockToken>,
    },
    /// Send `[offset, offset+len)` of a finalized replica (clamped to its length).
    Read {
        block: BlockId,
        gen: u64,
        offset: u64,
        len: u64,
        /// Required from a caller without the cluster key on a keyed cluster.
        token: Option<BlockToken>,
    },
    /// Report the checksums of a finalized replica, computed from the CRC32C
    /// the datanode stored for every chunk when it was written: no data is
    /// read, so a file's checksum costs one small exchange per block (as
    /// HDFS's `OP_BLOCK_CHECKSUM`). Needs a read token like `Read`.
    BlockChecksum {
        block: BlockId,
        gen: u64,
        token: Option<BlockToken>,
    },
}

/// Sent by the writer after the last packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    pub len: u64,
    pub sha256: [u8; 32],
}

/// The outcome of a write on one pipeline node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: DatanodeId,
    pub result: Result<(), FsError>,
}

/// Sent upstream once the block is finalized (or failed) on this node and
/// its downstream answered: this node's status, then downstream's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    pub statuses: Vec<NodeStatus>,
}

/// The datanode's answer to `Op::Read`, before the packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadReply {
    /// Packets follow; the first starts at `start` (a chunk boundary at or
    /// before the requested offset), the replica is `block_len` long.
    Ok {
        start: u64,
        block_len: u64,
    },
    Err(FsError),
}

/// The datanode's answer to `Op::BlockChecksum`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumReply {
    Ok(BlockChecksum),
    Err(FsError),
}

/// A replica's checksums, in the two forms HDFS combines into a file
/// checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockChecksum {
    /// The replica's length.
    pub len: u64,
    /// Bytes covered by each stored CRC ([`CHUNK`]; the last may cover fewer).
    pub bytes_per_crc: u32,
    /// How many chunk CRCs the replica has.
    pub crcs: u64,
    /// The CRC32C of the replica's bytes (its chunk CRCs combined): HDFS's
    /// composite block CRC, independent of the chunk size.
    pub crc32c: u32,
    /// MD5 over the chunk CRCs, each as 4 big-endian bytes: HDFS's
    /// MD5-of-CRC32C block checksum.
    pub crc_md5: [u8; 16],
}
