//! What the replicated log carries: state-machine mutations only, each
//! stamped by the leader with the caller, the call id and the time so that
//! applying it is deterministic on every replica. These types are the log
//! and snapshot format, separate from the wire protocol: a new RPC field
//! does not change the log, and a new operation is appended at the end of
//! [`LogOp`] so older records still decode.

use serde::{Deserialize, Serialize};
use tdfs_proto::acl::AclChange;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{BlockInfo, FileStatus};
use tdfs_proto::quota::QuotaChange;
use tdfs_proto::xattr::XAttrFlags;
use tdfs_proto::{BlockId, DatanodeId};

/// Version of the log record and snapshot formats built from these types.
/// Version 2 added [`Stamp::tick`]. A node reads this version and
/// [`PREVIOUS_FORMAT_VERSION`] (see [`crate::compat`] for how a version-1
/// stamp gets its tick) and refuses any other, with an error naming the
/// versions.
pub const FORMAT_VERSION: u16 = 2;
/// The version before [`FORMAT_VERSION`], still read (never written).
pub const PREVIOUS_FORMAT_VERSION: u16 = 1;

/// Who asked for an operation, and when, as the leader stamped it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub user: String,
    /// Present for client mutations; keys the retry cache.
    pub call: Option<CallId>,
    /// The leader's wall clock, milliseconds since the Unix epoch: the
    /// time files record (mtime, atime, snapshot names). It may step either
    /// way; nothing expires by it.
    pub now: u64,
    /// Log time in milliseconds, for expiry (the retry cache): the leader
    /// advances it with its monotonic clock only, from the namespace's
    /// applied tick when it took office, so no wall-clock step moves it and
    /// it never goes back across leaders (`tdfs_meta_raft::log_clock`).
    pub tick: u64,
}

/// One operation with its stamp.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub stamp: Stamp,
    pub op: LogOp,
}

/// One log entry's payload: operations committed together (group commit:
/// one fsync and one AppendEntries for the whole batch).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub ops: Vec<Stamped>,
}

/// A datanode's administrative state, replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AdminState {
    Normal,
    Decommissioning,
    Decommissioned,
}

impl AdminState {
    pub fn as_str(&self) -> &'static str {
        match self {
            AdminState::Normal => "normal",
            AdminState::Decommissioning => "decommissioning",
            AdminState::Decommissioned => "decommissioned",
        }
    }
}

/// The state-machine mutations. Modes are final (the service applied the
/// umask, or kept an explicit permission as given); replication and block
/// size are concrete (the leader filled in its defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LogOp {
    /// Creates the root directory, owned by the superuser.
    Init {
        superuser: String,
        supergroup: String,
    },
    /// Does nothing; a new leader commits one to learn its commit index.
    Noop,
    Mkdirs {
        path: String,
        mode: u16,
        parents: bool,
    },
    Create {
        path: String,
        overwrite: bool,
        replication: u16,
        block_size: u64,
        mode: u16,
        create_parents: bool,
    },
    /// Reopens a complete file for appending, under the caller's lease.
    Append {
        path: String,
    },
    /// Commits `previous` (the last block as the client wrote it) and
    /// allocates the next block on `targets`, the leader's placement.
    AddBlock {
        path: String,
        previous: Option<BlockInfo>,
        targets: Vec<DatanodeId>,
    },
    /// A new generation for the last block, written to `targets`.
    UpdatePipeline {
        path: String,
        block: BlockId,
        targets: Vec<DatanodeId>,
    },
    AbandonBlock {
        path: String,
        block: BlockId,
    },
    /// Commits the last block and closes the file.
    Complete {
        path: String,
        last: Option<BlockInfo>,
    },
    Delete {
        path: String,
        recursive: bool,
    },
    /// With `into_dir`, an existing directory `dst` receives `src` under
    /// its own name (the `mv` semantics).
    Rename {
        src: String,
        dst: String,
        into_dir: bool,
    },
    SetReplication {
        path: String,
        replication: u16,
    },
    SetPermission {
        path: String,
        mode: u16,
    },
    SetOwner {
        path: String,
        owner: Option<String>,
        group: Option<String>,
    },
    SetTimes {
        path: String,
        mtime: Option<u64>,
        atime: Option<u64>,
    },
    /// Records (or updates) a datanode in the registry.
    RegisterDatanode {
        id: DatanodeId,
        addr: String,
        http: Option<String>,
        hdfs: Option<String>,
    },
    SetAdminState {
        id: DatanodeId,
        state: AdminState,
    },
    /// Lease recovery: closes a file whose writer went away. Applies only
    /// if the file is still under construction by `holder` with the last
    /// block the leader decided on (`expect`: id and generation, `None`
    /// when the file had no open block) — a compare-and-set, so a decision
    /// taken on an older state never clobbers a newer one. Keeps `last`'s
    /// length and digest, or drops the open block.
    RecoverLease {
        path: String,
        holder: u64,
        expect: Option<(BlockId, u64)>,
        last: Option<BlockInfo>,
        drop_last: bool,
    },
    /// Frees up to `budget` inodes of deleted subtrees (the work behind a
    /// large delete, done in bounded steps).
    Reclaim {
        budget: u32,
    },
    /// Sets or clears a directory's name and space quotas.
    SetQuota {
        path: String,
        namespace: QuotaChange,
        space: QuotaChange,
    },
    /// Sets or clears a directory's quota on one storage type.
    SetTypeQuota {
        path: String,
        storage_type: String,
        quota: QuotaChange,
    },
    AllowSnapshot {
        path: String,
    },
    DisallowSnapshot {
        path: String,
    },
    /// Takes a snapshot; without a name, HDFS's default name from the stamp.
    CreateSnapshot {
        path: String,
        name: Option<String>,
    },
    DeleteSnapshot {
        path: String,
        name: String,
    },
    RenameSnapshot {
        path: String,
        old: String,
        new: String,
    },
    ChangeAcl {
        path: String,
        change: AclChange,
    },
    SetXAttr {
        path: String,
        name: String,
        value: Vec<u8>,
        flags: XAttrFlags,
    },
    RemoveXAttr {
        path: String,
        name: String,
    },
    /// Cuts a file to `length`. Inside a block, the kept part of the last
    /// block goes to `new_block` (a fresh id when a snapshot keeps the old
    /// block, else the same id) at a new generation, which the datanodes
    /// produce; the file is under recovery until `CommitTruncate`.
    Truncate {
        path: String,
        length: u64,
    },
    /// Appends the blocks of `sources` to `target`; the sources go.
    Concat {
        target: String,
        sources: Vec<String>,
    },
    /// The leader saw the truncated block `block` (id and new generation)
    /// stored: the file closes with that length and digest. A
    /// compare-and-set on the block under recovery.
    CommitTruncate {
        /// The file's inode id (it may have been renamed, or deleted and
        /// kept by a snapshot, meanwhile).
        file: u64,
        block: BlockInfo,
    },
}

impl LogOp {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            LogOp::Init { .. } => "init",
            LogOp::Noop => "noop",
            LogOp::Mkdirs { .. } => "mkdirs",
            LogOp::Create { .. } => "create",
            LogOp::Append { .. } => "append",
            LogOp::AddBlock { .. } => "add_block",
            LogOp::UpdatePipeline { .. } => "update_pipeline",
            LogOp::AbandonBlock { .. } => "abandon_block",
            LogOp::Complete { .. } => "complete",
            LogOp::Delete { .. } => "delete",
            LogOp::Rename { .. } => "rename",
            LogOp::SetReplication { .. } => "set_replication",
            LogOp::SetPermission { .. } => "set_permission",
            LogOp::SetOwner { .. } => "set_owner",
            LogOp::SetTimes { .. } => "set_times",
            LogOp::RegisterDatanode { .. } => "register_datanode",
            LogOp::SetAdminState { .. } => "set_admin_state",
            LogOp::RecoverLease { .. } => "recover_lease",
            LogOp::Reclaim { .. } => "reclaim",
            LogOp::SetQuota { .. } => "set_quota",
            LogOp::SetTypeQuota { .. } => "set_type_quota",
            LogOp::AllowSnapshot { .. } => "allow_snapshot",
            LogOp::DisallowSnapshot { .. } => "disallow_snapshot",
            LogOp::CreateSnapshot { .. } => "create_snapshot",
            LogOp::DeleteSnapshot { .. } => "delete_snapshot",
            LogOp::RenameSnapshot { .. } => "rename_snapshot",
            LogOp::ChangeAcl { .. } => "change_acl",
            LogOp::SetXAttr { .. } => "set_xattr",
            LogOp::RemoveXAttr { .. } => "remove_xattr",
            LogOp::Truncate { .. } => "truncate",
            LogOp::Concat { .. } => "concat",
            LogOp::CommitTruncate { .. } => "commit_truncate",
        }
    }

    /// The paths a mutation writes under (a path inside a snapshot is
    /// refused before anything else).
    pub fn written_paths(&self) -> Vec<&str> {
        match self {
            LogOp::Mkdirs { path, .. }
            | LogOp::Create { path, .. }
            | LogOp::Append { path }
            | LogOp::Delete { path, .. }
            | LogOp::SetReplication { path, .. }
            | LogOp::SetPermission { path, .. }
            | LogOp::SetOwner { path, .. }
            | LogOp::SetTimes { path, .. }
            | LogOp::ChangeAcl { path, .. }
            | LogOp::SetXAttr { path, .. }
            | LogOp::RemoveXAttr { path, .. }
            | LogOp::Truncate { path, .. } => vec![path],
            LogOp::Rename { src, dst, .. } => vec![src, dst],
            LogOp::Concat { target, sources } => {
                let mut v = vec![target.as_str()];
                v.extend(sources.iter().map(String::as_str));
                v
            }
            _ => Vec::new(),
        }
    }
}

/// What a mutation answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Bool(bool),
    Status(FileStatus),
    /// A new block (or a new generation of one) and where to write it.
    Block {
        block: BlockInfo,
        /// Offset of the block's first byte in the file.
        offset: u64,
        targets: Vec<DatanodeId>,
    },
    /// A path (a new snapshot's).
    Path(String),
}

/// Changes to blocks and leases that the leader's policies track
/// incrementally, emitted by [`crate::Namespace::apply`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsEvent {
    /// A block was allocated, or got a new generation, and is being written.
    BlockOpen {
        id: BlockId,
        gen: u64,
        replication: u16,
        block_size: u64,
    },
    /// A block's length and digest are final.
    BlockCommitted {
        id: BlockId,
        gen: u64,
        len: u64,
        replication: u16,
    },
    /// A block left the namespace: its replicas are orphans.
    BlockRemoved { id: BlockId },
    /// A block's file changed its replication factor.
    Replication { id: BlockId, replication: u16 },
    /// `holder` opened the file for writing.
    LeaseOpened { holder: u64, file: u64 },
    /// The file is closed (completed, recovered or deleted).
    LeaseClosed { holder: u64, file: u64 },
    /// A datanode was registered or its admin state changed.
    AdminState { id: DatanodeId, state: AdminState },
}
