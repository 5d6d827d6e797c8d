//! What goes into the Raft log: batches of operations, each stamped by the
//! leader with the caller, the call id and the time, so that applying them is
//! deterministic on every replica.

use serde::{Deserialize, Serialize};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{DatanodeAddr, MetaRequest, MetaResponse};
use tdfs_proto::{DatanodeId, FsError};

/// One log entry's payload: many operations, committed together (group
/// commit: one fsync and one AppendEntries for the whole batch).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub ops: Vec<Op>,
}

/// One operation with everything needed to apply it deterministically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub user: String,
    /// Present for client mutations; keys the retry cache.
    pub call: Option<CallId>,
    /// Leader's wall clock, milliseconds since the epoch.
    pub now: u64,
    pub kind: OpKind,
}

/// The operations the state machine knows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OpKind {
    /// Creates the root directory, owned by the superuser.
    Init {
        superuser: String,
        supergroup: String,
    },
    /// A namespace mutation. `targets` carries the leader's placement for
    /// operations that allocate a block.
    Meta {
        req: MetaRequest,
        targets: Vec<DatanodeAddr>,
    },
    /// Records (or updates) a datanode in the registry.
    RegisterDatanode {
        id: DatanodeId,
        addr: String,
        http: Option<String>,
    },
    /// Sets a datanode's admin state (`normal`, `decommissioning`, `decommissioned`).
    SetAdminState { id: DatanodeId, state: AdminState },
    /// Lease recovery: closes a file whose writer went away, keeping the
    /// given last-block length and digest, or dropping the last block.
    RecoverLease {
        path: String,
        last: Option<tdfs_proto::meta::BlockInfo>,
        drop_last: bool,
    },
    /// Does nothing; a new leader commits one to learn its commit index.
    Noop,
}

/// A datanode's administrative state, replicated through Raft.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// The state machine's answer to a [`Command`]: one result per op, in order.
pub type CommandResult = Vec<Result<MetaResponse, FsError>>;
