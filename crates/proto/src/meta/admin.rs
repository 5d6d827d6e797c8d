//! Cluster administration: requests, answers, node and cluster reports.

use super::*;

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
