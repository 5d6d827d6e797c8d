//! The datanode protocol: reports in, commands out.

use super::*;

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
