//! What namespace answers are made of: statuses, blocks and their
//! locations, tokens, health reports.

use super::*;

/// Whether an inode is a file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
}

/// What `stat`/`ls` show about one inode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStatus {
    /// The last path component ("" for the root).
    pub name: String,
    pub inode: u64,
    pub kind: FileKind,
    pub length: u64,
    pub replication: u16,
    pub block_size: u64,
    /// Milliseconds since the Unix epoch.
    pub mtime: u64,
    pub atime: u64,
    pub owner: String,
    pub group: String,
    pub mode: u16,
    /// Number of entries of a directory.
    pub children: u64,
    /// A file open for writing.
    pub under_construction: bool,
    /// The inode has an ACL beyond its permission bits (`ls` shows `+`).
    pub has_acl: bool,
    /// A directory that allows snapshots.
    pub snapshot_enabled: bool,
}

impl FileStatus {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// `du`/`count`/GETCONTENTSUMMARY.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentSummary {
    pub length: u64,
    pub file_count: u64,
    pub directory_count: u64,
    /// Bytes times replication.
    pub space_consumed: u64,
}

/// A block as the namespace records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub id: BlockId,
    /// Bumped when a pipeline is rebuilt, so stale replicas can be told apart.
    pub gen: u64,
    pub len: u64,
    /// SHA-256 of the block's bytes, once the block is committed.
    pub sha256: Option<[u8; 32]>,
}

/// Where a datanode can be reached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeAddr {
    pub id: DatanodeId,
    pub addr: String,
    pub http: Option<String>,
}

/// A block with its place in the file and its replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlock {
    pub block: BlockInfo,
    /// Offset of the block's first byte in the file.
    pub offset: u64,
    /// Replicas, best first (for reads) or the pipeline in order (for writes).
    pub locations: Vec<DatanodeAddr>,
    /// On a keyed cluster, the access token a client without the key shows
    /// a datanode to read (located for reading) or write (a new block or
    /// pipeline) this block. Added by the answering metadata node, never
    /// recorded in the namespace.
    pub token: Option<BlockToken>,
}

/// What a [`BlockToken`] allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessMode {
    Read,
    Write,
}

/// An HDFS-style block access token: the metadata node's word, checkable by
/// any datanode holding the cluster key, that `user` may read or write one
/// generation of one block until `expires_ms`, and — for a write — store it
/// only on the datanodes of `pipeline`, in that order.
/// `mac = HMAC(k, "blocktoken" | block | gen | mode | expires_ms | user |
/// pipeline)` (lengths prefixed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockToken {
    pub block: BlockId,
    pub gen: u64,
    pub mode: AccessMode,
    pub user: String,
    /// Milliseconds since the Unix epoch.
    pub expires_ms: u64,
    /// The write pipeline the metadata node chose, in order (empty for a
    /// read token). Every datanode that receives the block checks that it
    /// is in it and that the nodes it is asked to forward to follow it
    /// there, so the token cannot push the block anywhere else.
    pub pipeline: Vec<DatanodeId>,
    pub mac: [u8; 32],
}

/// Answer to `GetBlockLocations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedBlocks {
    pub file_length: u64,
    pub blocks: Vec<LocatedBlock>,
    pub under_construction: bool,
}

/// Namespace and block health, as `fsck` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckReport {
    pub files: u64,
    pub directories: u64,
    pub blocks: u64,
    pub total_size: u64,
    pub under_replicated: u64,
    pub over_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
    /// Files with a missing or corrupt block (paths, bounded).
    pub bad_files: Vec<String>,
    /// Blocks whose only replicas are corrupt, with their file and the
    /// datanodes holding the corrupt copies (bounded).
    pub corrupt_blocks: Vec<CorruptBlock>,
}

/// A block every replica of which failed verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptBlock {
    pub path: String,
    pub block: BlockId,
    /// Datanodes holding the (quarantined) corrupt replicas.
    pub locations: Vec<DatanodeId>,
}

/// Block health of the whole cluster, kept by the leader as it changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    pub blocks: u64,
    pub under_replicated: u64,
    pub over_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
    pub files: u64,
    pub directories: u64,
    pub datanodes_live: u64,
    pub datanodes_stale: u64,
    pub datanodes_dead: u64,
}
