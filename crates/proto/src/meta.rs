//! Requests and responses of the metadata service (clients, admins, peers
//! and datanodes all speak to a metadata node through these).

use crate::acl::{AclChange, AclStatus};
use crate::ids::{BlockId, CallId, DatanodeId, MetaId};
use crate::quota::{QuotaChange, QuotaUsage, ServerDefaults};
use crate::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir};
use crate::xattr::{XAttr, XAttrFlags};
use serde::{Deserialize, Serialize};

/// Everything a metadata node answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness probe; answered by every node.
    Ping,
    /// A namespace operation on behalf of `user`. Mutations carry a `call`
    /// id so that a retry is answered from the retry cache.
    Meta {
        user: String,
        call: Option<CallId>,
        op: MetaRequest,
    },
    /// Cluster administration (`haadmin`, `dfsadmin`).
    Admin(AdminRequest),
    /// A Raft message between metadata nodes, encoded by the Raft layer.
    /// Only accepted from authenticated peers.
    Raft { kind: RaftKind, payload: Vec<u8> },
    /// A follower asks the leader for a read index (the commit index at a
    /// moment the leader confirmed its leadership with a quorum).
    ReadIndex,
    /// Datanode to metadata node.
    Datanode(DatanodeRequest),
    /// Events this node recorded after `after`; with `wait_ms`, waits that
    /// long for the next one when there is none yet (`tdfs events --follow`).
    Events { after: u64, wait_ms: u32 },
}

/// Which Raft RPC a `Request::Raft` payload holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftKind {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Answers to [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Pong { id: MetaId },
    Meta(MetaResponse),
    Admin(AdminResponse),
    Raft(Vec<u8>),
    ReadIndex(u64),
    Datanode(DatanodeResponse),
    Events(Vec<crate::event::Event>),
}

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

/// Cluster administration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminRequest {
    /// This node's view of itself: role, term, log and leader.
    NodeState,
    /// Adds a metadata node: as a learner first, then as a voter.
    AddMeta {
        id: MetaId,
        addr: String,
    },
    RemoveMeta {
        id: MetaId,
    },
    TransferLeader {
        id: MetaId,
    },
    /// Sent by the leader to the transfer target: start an election now.
    StartElection,
    /// Datanodes, capacity and usage (`dfsadmin -report`).
    Report,
    /// Block health counts, kept incrementally (status page, metrics).
    Health,
    /// This node's namespace hash at applied index `index` (the
    /// consistency check), if it computed one.
    StateHash {
        index: u64,
    },
    Decommission {
        id: DatanodeId,
    },
    Recommission {
        id: DatanodeId,
    },
    /// Balance until every datanode is within `threshold_bp` basis points
    /// (1/100 of a percent) of the average utilization, waiting at most
    /// `wait_secs`.
    Balance {
        threshold_bp: u32,
        wait_secs: u32,
    },
}

/// Answers to [`AdminRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AdminResponse {
    Done,
    /// The balancer's outcome: whether the cluster is within the threshold,
    /// and the moves it scheduled while waiting.
    Balanced {
        balanced: bool,
        moves: u64,
    },
    NodeState(NodeState),
    Report(ClusterReport),
    Health(HealthReport),
    StateHash(Option<[u8; 32]>),
}

/// A metadata node's own state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub id: MetaId,
    pub addr: String,
    pub http: Option<String>,
    /// `leader`, `follower`, `candidate` or `learner`.
    pub role: String,
    pub term: u64,
    pub leader: Option<MetaId>,
    pub last_log_index: u64,
    pub applied_index: u64,
    /// Voters and learners of the current membership, with addresses.
    pub voters: Vec<(MetaId, String)>,
    pub learners: Vec<(MetaId, String)>,
    /// The consistency check's alarm, if this node raised one.
    pub alarm: Option<String>,
    /// This process's resident memory (`/proc/self/statm`), 0 where unknown.
    pub rss_bytes: u64,
}

/// `dfsadmin -report`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReport {
    pub leader: Option<MetaId>,
    pub datanodes: Vec<DatanodeReport>,
}

/// One datanode in a [`ClusterReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeReport {
    pub id: DatanodeId,
    pub addr: String,
    pub http: Option<String>,
    /// The DataTransferProtocol address (`--hdfs-addr`), if served. Soft
    /// state from registration, so it lives here rather than in
    /// [`DatanodeAddr`], which the Raft log records.
    pub hdfs: Option<String>,
    /// `live`, `stale` or `dead`.
    pub state: String,
    /// `normal`, `decommissioning` or `decommissioned`.
    pub admin_state: String,
    pub capacity: u64,
    pub used: u64,
    pub remaining: u64,
    pub blocks: u64,
    /// Milliseconds since the last report or heartbeat.
    pub last_contact_ms: u64,
}

/// Datanode to metadata node. Liveness and usage travel by gossip; a
/// datanode calls when it has something to report, and holds one long
/// poll per metadata node through which the leader hands it commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeRequest {
    /// Announces (or re-announces) a datanode; recorded through Raft.
    Register {
        id: DatanodeId,
        addr: String,
        http: Option<String>,
        /// Address of its HDFS DataTransferProtocol server, if any.
        hdfs: Option<String>,
    },
    /// One page of a full block report: the finalized replicas with ids in
    /// `(previous page's hi, hi]`, sorted by id. Page 0 starts a report,
    /// the last page has `last` and `hi = u64::MAX`; pages keep a report of
    /// millions of replicas within the frame limit and let the metadata
    /// node apply it in bounded steps.
    FullReport {
        id: DatanodeId,
        usage: DatanodeUsage,
        /// Identifies one report (its pages share it).
        report: u64,
        page: u32,
        hi: BlockId,
        last: bool,
        blocks: Vec<ReplicaReport>,
        /// Replicas quarantined as corrupt (id, generation) in this range:
        /// never served, not in `blocks`, kept until the leader's `Delete`.
        quarantined: Vec<(BlockId, u64)>,
    },
    /// Replicas finalized, deleted or quarantined since the last report.
    IncrementalReport {
        id: DatanodeId,
        added: Vec<ReplicaReport>,
        /// Replicas deleted (id, generation): a finalized one, or a
        /// quarantined one the leader's `Delete` named.
        removed: Vec<(BlockId, u64)>,
        /// Replicas found corrupt and quarantined (id, generation): no
        /// longer held or served, kept until the leader deletes them.
        corrupt: Vec<(BlockId, u64)>,
    },
    /// Waits up to `wait_ms` for commands (answered at once when some are
    /// queued). `usage` keeps a node without gossip known.
    Poll {
        id: DatanodeId,
        usage: DatanodeUsage,
        wait_ms: u32,
    },
}

impl DatanodeRequest {
    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            DatanodeRequest::Register { .. } => "register",
            DatanodeRequest::FullReport { .. } => "full_report",
            DatanodeRequest::IncrementalReport { .. } => "incremental_report",
            DatanodeRequest::Poll { .. } => "poll",
        }
    }
}

/// Capacity figures of one datanode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeUsage {
    pub capacity: u64,
    pub used: u64,
    /// Bytes promised to blocks being received.
    pub pending: u64,
    pub blocks: u64,
}

/// One finalized replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    pub id: BlockId,
    pub gen: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// Metadata node to datanode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeResponse {
    Ok,
    /// Commands from the leader of `term`. A datanode that has seen a
    /// higher term refuses them (fencing a deposed leader); it records the
    /// highest term it saw durably before acting on it.
    Commands {
        term: u64,
        commands: Vec<DatanodeCommand>,
    },
    /// The metadata node does not know this datanode (or, as a new leader,
    /// has no full report from it yet): register and send a full report.
    Reregister,
}

/// Work the leader hands a datanode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DatanodeCommand {
    /// Copy a replica to other datanodes.
    Replicate {
        block: BlockInfo,
        targets: Vec<DatanodeAddr>,
        /// On a keyed cluster, the leader's write token for the copy, bound
        /// to `targets`; every target checks it. Added when the command is
        /// sent.
        token: Option<BlockToken>,
    },
    /// Delete replicas: each `(block, gen)` removes the local finalized or
    /// quarantined replicas of `block` whose generation is at most `gen`, so
    /// a deletion aimed at a stale or corrupt copy never removes a newer one
    /// written since.
    Delete { blocks: Vec<(BlockId, u64)> },
    /// Re-verify replicas (SHA-256 and chunk CRCs); quarantine and report
    /// the corrupt ones.
    Verify { blocks: Vec<BlockId> },
    /// Finalize a replica at a length (lease recovery).
    Recover { block: BlockInfo },
    /// Block recovery after a truncate: write the first `len` bytes of the
    /// local replica `source` as replica `target` at generation `gen`, and
    /// report it. With `target == source.id` the replica is cut in place
    /// (the new generation replaces the old one); otherwise the old replica
    /// stays (a snapshot still reads it) beside the new one
    /// (copy-on-truncate). A node that already holds `target` at `gen`
    /// reports it again, so the command can be repeated safely.
    Truncate {
        source: BlockInfo,
        target: BlockId,
        gen: u64,
        len: u64,
    },
}
