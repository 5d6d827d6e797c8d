//! Typed events every metadata node and datanode publishes: what tests wait
//! on, what `tdfs events` shows operators, and what the metrics count.

use crate::ids::{BlockId, DatanodeId, MetaId};
use serde::{Deserialize, Serialize};

/// One event as a node recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Increases by one per event on the publishing node.
    pub seq: u64,
    /// The publisher's wall clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `meta-<id>` or the datanode's id.
    pub node: String,
    pub kind: EventKind,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// This metadata node became the Raft leader.
    LeaderElected {
        term: u64,
    },
    /// This metadata node stopped leading.
    SteppedDown {
        term: u64,
    },
    DatanodeRegistered {
        datanode: DatanodeId,
    },
    DatanodeLive {
        datanode: DatanodeId,
    },
    DatanodeStale {
        datanode: DatanodeId,
    },
    DatanodeDead {
        datanode: DatanodeId,
    },
    DatanodeDecommissioned {
        datanode: DatanodeId,
    },
    /// A replica was finalized (on the datanode) or first reported (on a
    /// metadata node).
    ReplicaFinalized {
        datanode: DatanodeId,
        block: BlockId,
        gen: u64,
    },
    ReplicaDeleted {
        datanode: DatanodeId,
        block: BlockId,
        gen: u64,
    },
    /// A replica failed verification and was moved aside.
    ReplicaQuarantined {
        datanode: DatanodeId,
        block: BlockId,
        gen: u64,
    },
    /// A block has fewer counted replicas than its factor.
    BlockUnderReplicated {
        block: BlockId,
        replicas: u32,
        replication: u32,
    },
    /// No readable replica is left (missing, or only corrupt ones).
    BlockMissing {
        block: BlockId,
        corrupt: bool,
    },
    /// A block is back at its replication factor.
    BlockHealthy {
        block: BlockId,
    },
    CopyScheduled {
        block: BlockId,
        source: DatanodeId,
        targets: Vec<DatanodeId>,
    },
    /// A copy reached `datanode`.
    CopyDone {
        block: BlockId,
        datanode: DatanodeId,
    },
    /// The leader closed a file whose writer went away.
    LeaseRecovered {
        path: String,
    },
    /// The balancer moves a block from `source` to `target`.
    BalancerMove {
        block: BlockId,
        source: DatanodeId,
        target: DatanodeId,
    },
    /// A datanode refused a command from a deposed leader.
    CommandFenced {
        datanode: DatanodeId,
        term: u64,
        seen: u64,
    },
    /// Metadata nodes disagree on the namespace at the same applied index.
    ConsistencyAlarm {
        index: u64,
        members: Vec<(MetaId, String)>,
    },
    /// A background task of this node failed (a bug).
    TaskFailed {
        task: String,
        reason: String,
    },
}

impl EventKind {
    /// The `type` name shown by `tdfs events --json`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::LeaderElected { .. } => "leader_elected",
            EventKind::SteppedDown { .. } => "stepped_down",
            EventKind::DatanodeRegistered { .. } => "datanode_registered",
            EventKind::DatanodeLive { .. } => "datanode_live",
            EventKind::DatanodeStale { .. } => "datanode_stale",
            EventKind::DatanodeDead { .. } => "datanode_dead",
            EventKind::DatanodeDecommissioned { .. } => "datanode_decommissioned",
            EventKind::ReplicaFinalized { .. } => "replica_finalized",
            EventKind::ReplicaDeleted { .. } => "replica_deleted",
            EventKind::ReplicaQuarantined { .. } => "replica_quarantined",
            EventKind::BlockUnderReplicated { .. } => "block_under_replicated",
            EventKind::BlockMissing { .. } => "block_missing",
            EventKind::BlockHealthy { .. } => "block_healthy",
            EventKind::CopyScheduled { .. } => "copy_scheduled",
            EventKind::CopyDone { .. } => "copy_done",
            EventKind::LeaseRecovered { .. } => "lease_recovered",
            EventKind::BalancerMove { .. } => "balancer_move",
            EventKind::CommandFenced { .. } => "command_fenced",
            EventKind::ConsistencyAlarm { .. } => "consistency_alarm",
            EventKind::TaskFailed { .. } => "task_failed",
        }
    }

    /// The datanode an event is about, if any.
    pub fn datanode(&self) -> Option<&DatanodeId> {
        match self {
            EventKind::DatanodeRegistered { datanode }
            | EventKind::DatanodeLive { datanode }
            | EventKind::DatanodeStale { datanode }
            | EventKind::DatanodeDead { datanode }
            | EventKind::DatanodeDecommissioned { datanode }
            | EventKind::ReplicaFinalized { datanode, .. }
            | EventKind::ReplicaDeleted { datanode, .. }
            | EventKind::ReplicaQuarantined { datanode, .. }
            | EventKind::CopyDone { datanode, .. }
            | EventKind::CommandFenced { datanode, .. } => Some(datanode),
            EventKind::CopyScheduled { source, .. } | EventKind::BalancerMove { source, .. } => {
                Some(source)
            }
            _ => None,
        }
    }

    /// The block an event is about, if any.
    pub fn block(&self) -> Option<BlockId> {
        match self {
            EventKind::ReplicaFinalized { block, .. }
            | EventKind::ReplicaDeleted { block, .. }
            | EventKind::ReplicaQuarantined { block, .. }
            | EventKind::BlockUnderReplicated { block, .. }
            | EventKind::BlockMissing { block, .. }
            | EventKind::BlockHealthy { block }
            | EventKind::CopyScheduled { block, .. }
            | EventKind::CopyDone { block, .. }
            | EventKind::BalancerMove { block, .. } => Some(*block),
            _ => None,
        }
    }
}
