//! Namespace operations ([`MetaRequest`]) and their answers.

use super::*;

/// Namespace operations. Reads are served linearizably by any metadata node;
/// mutations go through Raft on the leader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaRequest {
    // ---- mutations ----
    Mkdirs {
        path: String,
        /// Permission bits before the umask; `None` means 0777 & !umask.
        /// With `perm::AS_GIVEN` set, applied as given (no umask).
        mode: Option<u16>,
        /// Create missing parents (`mkdir -p`); without it the parent must exist.
        parents: bool,
    },
    Create {
        path: String,
        overwrite: bool,
        replication: Option<u16>,
        block_size: Option<u64>,
        /// As for `Mkdirs` (0666 & !umask by default).
        mode: Option<u16>,
        create_parents: bool,
    },
    /// Reopens a complete file for appending, under a lease.
    Append {
        path: String,
    },
    /// Allocates the next block of a file under construction. `previous` is
    /// the last block as the client wrote it (length and digest), committed
    /// with this call. `excluded` datanodes are not chosen.
    AddBlock {
        path: String,
        previous: Option<BlockInfo>,
        excluded: Vec<DatanodeId>,
    },
    /// Replaces a block's pipeline after a datanode failed: new generation
    /// stamp, the surviving nodes kept, new targets added when too few remain.
    UpdatePipeline {
        path: String,
        block: BlockId,
        keep: Vec<DatanodeId>,
        excluded: Vec<DatanodeId>,
    },
    /// Gives up a block the client could not write to any datanode.
    AbandonBlock {
        path: String,
        block: BlockId,
    },
    /// Closes a file: commits the last block and releases the lease.
    Complete {
        path: String,
        last: Option<BlockInfo>,
    },
    /// Keeps the caller's leases alive while it writes.
    RenewLease,
    /// A reader found a replica whose checksum does not match; the leader
    /// has the datanode verify it (and drop it if corrupt).
    ReportBadReplica {
        block: BlockId,
        node: DatanodeId,
    },
    Delete {
        path: String,
        recursive: bool,
    },
    /// Renames `src` to `dst`. With `into_dir`, an existing directory `dst`
    /// receives `src` under its own name (the `mv`/WebHDFS semantics).
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
    // ---- reads ----
    GetFileInfo {
        path: String,
    },
    /// Lists a directory (or a file, which lists as itself) in name order,
    /// starting after `start_after`, at most `limit` entries.
    ListStatus {
        path: String,
        start_after: Option<String>,
        limit: u32,
    },
    ContentSummary {
        path: String,
    },
    GetBlockLocations {
        path: String,
        offset: u64,
        len: u64,
    },
    /// Namespace and block health under `path`.
    Fsck {
        path: String,
    },
    // ---- quotas, snapshots, ACLs, xattrs, truncate, concat, trash ----
    /// Sets or clears a directory's name and space quotas (superuser).
    SetQuota {
        path: String,
        namespace: QuotaChange,
        space: QuotaChange,
    },
    /// Sets or clears a directory's quota on one storage type (superuser).
    SetTypeQuota {
        path: String,
        storage_type: String,
        quota: QuotaChange,
    },
    /// Quotas and their usage (read).
    GetQuotaUsage {
        path: String,
    },
    /// Lets a directory take snapshots (superuser; `dfsadmin -allowSnapshot`).
    AllowSnapshot {
        path: String,
    },
    DisallowSnapshot {
        path: String,
    },
    /// Takes a snapshot (`None`: HDFS's `sYYYYMMDD-HHMMSS.mmm` name);
    /// answers the snapshot's path.
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
    /// The snapshottable directories the caller may see (read).
    ListSnapshottableDirs,
    /// The snapshots of a directory, oldest first (read).
    ListSnapshots {
        path: String,
    },
    /// What changed under `path` from snapshot `from` to `to` ("" or ".":
    /// the current state) (read).
    SnapshotDiff {
        path: String,
        from: String,
        to: String,
    },
    /// Changes an inode's ACL (owner or superuser).
    ChangeAcl {
        path: String,
        change: AclChange,
    },
    /// The ACL of an inode (read).
    GetAclStatus {
        path: String,
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
    /// The named extended attributes (all visible ones when `names` is
    /// empty) (read).
    GetXAttrs {
        path: String,
        names: Vec<String>,
    },
    /// The names of the visible extended attributes (read).
    ListXAttrs {
        path: String,
    },
    /// Cuts a file to `length` bytes: `Bool(true)` when done at once (a
    /// block boundary), `Bool(false)` when the last block is being
    /// recovered to the new length (the file stays under construction
    /// until the datanodes have cut their replicas).
    Truncate {
        path: String,
        length: u64,
    },
    /// Moves the blocks of `sources` onto the end of `target`, in order;
    /// the sources disappear.
    Concat {
        target: String,
        sources: Vec<String>,
    },
    /// Block size, replication and trash interval (read).
    GetServerDefaults,
}

impl MetaRequest {
    /// Whether the operation changes state (and so goes through Raft).
    pub fn is_mutation(&self) -> bool {
        !matches!(
            self,
            MetaRequest::GetFileInfo { .. }
                | MetaRequest::ListStatus { .. }
                | MetaRequest::ContentSummary { .. }
                | MetaRequest::GetBlockLocations { .. }
                | MetaRequest::Fsck { .. }
                | MetaRequest::GetQuotaUsage { .. }
                | MetaRequest::ListSnapshottableDirs
                | MetaRequest::ListSnapshots { .. }
                | MetaRequest::SnapshotDiff { .. }
                | MetaRequest::GetAclStatus { .. }
                | MetaRequest::GetXAttrs { .. }
                | MetaRequest::ListXAttrs { .. }
                | MetaRequest::GetServerDefaults
        )
    }

    /// A short name for metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            MetaRequest::Mkdirs { .. } => "mkdirs",
            MetaRequest::Create { .. } => "create",
            MetaRequest::Append { .. } => "append",
            MetaRequest::AddBlock { .. } => "add_block",
            MetaRequest::UpdatePipeline { .. } => "update_pipeline",
            MetaRequest::AbandonBlock { .. } => "abandon_block",
            MetaRequest::Complete { .. } => "complete",
            MetaRequest::RenewLease => "renew_lease",
            MetaRequest::ReportBadReplica { .. } => "report_bad_replica",
            MetaRequest::Delete { .. } => "delete",
            MetaRequest::Rename { .. } => "rename",
            MetaRequest::SetReplication { .. } => "set_replication",
            MetaRequest::SetPermission { .. } => "set_permission",
            MetaRequest::SetOwner { .. } => "set_owner",
            MetaRequest::SetTimes { .. } => "set_times",
            MetaRequest::GetFileInfo { .. } => "get_file_info",
            MetaRequest::ListStatus { .. } => "list_status",
            MetaRequest::ContentSummary { .. } => "content_summary",
            MetaRequest::GetBlockLocations { .. } => "get_block_locations",
            MetaRequest::Fsck { .. } => "fsck",
            MetaRequest::SetQuota { .. } => "set_quota",
            MetaRequest::SetTypeQuota { .. } => "set_type_quota",
            MetaRequest::GetQuotaUsage { .. } => "get_quota_usage",
            MetaRequest::AllowSnapshot { .. } => "allow_snapshot",
            MetaRequest::DisallowSnapshot { .. } => "disallow_snapshot",
            MetaRequest::CreateSnapshot { .. } => "create_snapshot",
            MetaRequest::DeleteSnapshot { .. } => "delete_snapshot",
            MetaRequest::RenameSnapshot { .. } => "rename_snapshot",
            MetaRequest::ListSnapshottableDirs => "list_snapshottable_dirs",
            MetaRequest::ListSnapshots { .. } => "list_snapshots",
            MetaRequest::SnapshotDiff { .. } => "snapshot_diff",
            MetaRequest::ChangeAcl { .. } => "change_acl",
            MetaRequest::GetAclStatus { .. } => "get_acl_status",
            MetaRequest::SetXAttr { .. } => "set_xattr",
            MetaRequest::RemoveXAttr { .. } => "remove_xattr",
            MetaRequest::GetXAttrs { .. } => "get_xattrs",
            MetaRequest::ListXAttrs { .. } => "list_xattrs",
            MetaRequest::Truncate { .. } => "truncate",
            MetaRequest::Concat { .. } => "concat",
            MetaRequest::GetServerDefaults => "get_server_defaults",
        }
    }
}

/// Answers to [`MetaRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MetaResponse {
    Done,
    Bool(bool),
    Status(FileStatus),
    Listing {
        entries: Vec<FileStatus>,
        /// Entries left after this page.
        remaining: u64,
    },
    Summary(ContentSummary),
    Blocks(LocatedBlocks),
    Block(LocatedBlock),
    /// Answer to `Append`: the file, and its last block when that block is
    /// partial and the client must continue writing it.
    Appended {
        status: FileStatus,
        last: Option<LocatedBlock>,
    },
    Fsck(FsckReport),
    /// A path (a new snapshot's).
    Path(String),
    Quota(QuotaUsage),
    Snapshots(Vec<SnapshotInfo>),
    SnapshottableDirs(Vec<SnapshottableDir>),
    SnapshotDiff(SnapshotDiffReport),
    Acl(AclStatus),
    XAttrs(Vec<XAttr>),
    XAttrNames(Vec<String>),
    ServerDefaults(ServerDefaults),
}
