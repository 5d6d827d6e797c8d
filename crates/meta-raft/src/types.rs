//! The openraft type configuration: log entries carry the namespace's
//! [`Batch`] of log operations, never a wire request.

use tdfs_namespace::{Batch, Outcome};
use tdfs_proto::FsError;

/// The state machine's answer to a batch: one result per operation.
pub type BatchResult = Vec<Result<Outcome, FsError>>;

openraft::declare_raft_types!(
    /// Raft types of the metadata service.
    pub TypeConfig:
        D = Batch,
        R = BatchResult,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::snap_file::SnapFile,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
