//! Requests and responses of the metadata service (clients, admins, peers
//! and datanodes all speak to a metadata node through these).

use crate::acl::{AclChange, AclStatus};
use crate::ids::{BlockId, CallId, DatanodeId, MetaId};
use crate::quota::{QuotaChange, QuotaUsage, ServerDefaults};
use crate::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir};
use crate::xattr::{XAttr, XAttrFlags};
use serde::{Deserialize, Serialize};

mod admin;
mod datanode;
mod ops;
mod types;

pub use admin::*;
pub use datanode::*;
pub use ops::*;
pub use types::*;

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
