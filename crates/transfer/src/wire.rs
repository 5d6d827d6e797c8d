//! The messages and limits of the data-transfer protocol (see the crate
//! docs for the exchange). Plain serde types, no I/O.

use serde::{Deserialize, Serialize};
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr};
use tdfs_proto::{BlockId, DatanodeId, FsError};

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
        /// The block, with its expected length.
        block: BlockInfo,
        /// The rest of the pipeline, in order.
        downstream: Vec<DatanodeAddr>,
        /// Required from a caller without the cluster key on a keyed cluster.
        token: Option<BlockToken>,
    },
    /// Send `[offset, offset+len)` of a finalized replica (clamped to its length).
    Read {
        /// The block to read.
        block: BlockId,
        /// Its generation: another generation is not served.
        gen: u64,
        /// First byte wanted.
        offset: u64,
        /// Bytes wanted from `offset`.
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
    /// Bytes the writer sent: a node that received another count fails.
    pub len: u64,
    /// SHA-256 of the block as the writer computed it; each node checks its
    /// own before finalizing (on a keyed connection this frame is MACed, so
    /// it also authenticates the unMACed packets).
    pub sha256: [u8; 32],
}

/// The outcome of a write on one pipeline node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The pipeline node this status is about.
    pub node: DatanodeId,
    /// Whether it finalized the replica, or why not.
    pub result: Result<(), FsError>,
}

/// Sent upstream once the block is finalized (or failed) on this node and
/// its downstream answered: this node's status, then downstream's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    /// One status per node that was reached, in pipeline order; nodes past
    /// a failed one are absent.
    pub statuses: Vec<NodeStatus>,
}

/// The datanode's answer to `Op::Read`, before the packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadReply {
    /// Packets follow; the first starts at `start` (a chunk boundary at or
    /// before the requested offset), the replica is `block_len` long.
    Ok {
        /// Offset of the first packet's first byte.
        start: u64,
        /// Length of the whole replica.
        block_len: u64,
    },
    /// The read is refused (no such replica, bad token, ...).
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
