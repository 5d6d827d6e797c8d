//! Cluster administration: membership changes, leadership transfer, the
//! datanode report, block health, decommissioning and the on-demand
//! balancer.

use crate::node::MetaNode;
use openraft::{BasicNode, ServerState};
use std::collections::BTreeSet;
use std::time::Duration;
use tdfs_namespace::{AdminState, LogOp};
use tdfs_proto::meta::{
    AdminRequest, AdminResponse, ClusterReport, HealthReport, NodeState, Request,
};
use tdfs_proto::FsError;

impl MetaNode {
    /// Serves one administration request.
    pub async fn admin(&self, req: AdminRequest) -> Result<AdminResponse, FsError> {
        let decommission = matches!(req, AdminRequest::Decommission { .. });
        match req {
            AdminRequest::NodeState => Ok(AdminResponse::NodeState(self.node_state())),
            AdminRequest::AddMeta { id, addr } => {
                self.require_leader()?;
                self.raft()
                    .add_learner(id, BasicNode::new(addr), true)
                    .await
                    .map_err(|e| FsError::Unavailable(format!("add learner {id}: {e}")))?;
                let mut voters = self.voters();
                voters.insert(id);
                self.change_voters(voters).await
            }
            AdminRequest::RemoveMeta { id } => {
                self.require_leader()?;
                let mut voters = self.voters();
                if !voters.remove(&id) {
                    return Err(FsError::InvalidArgument(format!(
                        "metadata node {id} is not a voter"
                    )));
                }
                if voters.is_empty() {
                    return Err(FsError::InvalidArgument(
                        "cannot remove the last metadata node".into(),
                    ));
                }
                self.change_voters(voters).await
            }
            AdminRequest::TransferLeader { id } => self.transfer_leader(id).await,
            AdminRequest::StartElection => {
                self.raft()
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| FsError::Unavailable(e.to_string()))?;
                Ok(AdminResponse::Done)
            }
            AdminRequest::Report => {
                self.read_barrier().await?;
                Ok(AdminResponse::Report(self.report()))
            }
            AdminRequest::StateHash { index } => {
                Ok(AdminResponse::StateHash(self.hashes().get(index)))
            }
            AdminRequest::Health => {
                self.read_barrier().await?;
                Ok(AdminResponse::Health(self.health()))
            }
            AdminRequest::Balance {
                threshold_bp,
                wait_secs,
            } => self.balance(threshold_bp, wait_secs).await,
            AdminRequest::Decommission { id } | AdminRequest::Recommission { id } => {
                self.require_leader()?;
                let state = if decommission {
                    AdminState::Decommissioning
                } else {
                    AdminState::Normal
                };
                self.propose_system(LogOp::SetAdminState { id, state })
                    .await?;
                Ok(AdminResponse::Done)
            }
        }
    }

    fn require_leader(&self) -> Result<(), FsError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(self.not_leader())
        }
    }

    async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<AdminResponse, FsError> {
        self.raft()
            .change_membership(voters, false)
            .await
            .map_err(|e| FsError::Unavailable(format!("change membership: {e}")))?;
        Ok(AdminResponse::Done)
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// The datanode table for `dfsadmin -report`.
    pub fn report(&self) -> ClusterReport {
        let now = self.core().now();
        ClusterReport {
            leader: self.raft().metrics().borrow().current_leader,
            datanodes: self.core().view(|v| v.report(now)),
        }
    }

    /// Block health and namespace counts, kept incrementally.
    pub fn health(&self) -> HealthReport {
        let (files, dirs) = self
            .core()
            .ns(|r| match r.ns.summary(r.ns.superuser(), "/") {
                Ok(s) => (s.file_count, s.directory_count),
                Err(_) => (0, 0),
            });
        self.core().view(|v| {
            let h = v.blocks.health();
            let (live, stale, dead) = v.liveness_counts();
            HealthReport {
                blocks: h.blocks,
                under_replicated: h.under_replicated,
                over_replicated: h.over_replicated,
                missing: h.missing,
                corrupt: h.corrupt,
                files,
                directories: dirs,
                datanodes_live: live,
                datanodes_stale: stale,
                datanodes_dead: dead,
            }
        })
    }

    pub fn node_state(&self) -> NodeState {
        let m = self.raft().metrics().borrow().clone();
        let mem = m.membership_config.membership();
        let addr_of = |id: &u64| mem.get_node(id).map(|n| n.addr.clone()).unwrap_or_default();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Follower => "follower",
            ServerState::Shutdown => "shutdown",
        };
        NodeState {
            id: self.id(),
            addr: self.config().addr.clone(),
            http: self.config().http.clone(),
            role: role.into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            voters: mem.voter_ids().map(|id| (id, addr_of(&id))).collect(),
            learners: mem.learner_ids().map(|id| (id, addr_of(&id))).collect(),
            alarm: self.hashes().alarm(),
            rss_bytes: crate::metrics::resident_bytes(),
        }
    }

    /// Balances until every datanode is within the threshold, waiting on
    /// the policy rounds (at most `wait_secs`).
    async fn balance(&self, threshold_bp: u32, wait_secs: u32) -> Result<AdminResponse, FsError> {
        self.require_leader()?;
        let pct = threshold_bp as f64 / 100.0;
        self.set_balance_override(Some(pct));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_secs as u64);
        let mut rounds = self.rounds().subscribe();
        let mut moves = 0u64;
        let balanced = loop {
            let (done, in_flight) = self.core().view(|v| {
                let views = v.node_views();
                (
                    tdfs_policy::balancer::balanced(&views, pct / 100.0),
                    v.moves_in_flight() as u64,
                )
            });
            moves = moves.max(in_flight);
            if done && in_flight == 0 {
                break true;
            }
            if !self.is_leader() {
                break false;
            }
            match tokio::time::timeout_at(deadline, rounds.changed()).await {
                Ok(Ok(())) => {}
                _ => break false,
            }
        };
        self.set_balance_override(None);
        Ok(AdminResponse::Balanced { balanced, moves })
    }

    /// Hands leadership to `target`: stop heartbeats so the followers'
    /// leader lease runs out, then have the target start an election.
    /// Retried, since another follower may time out first.
    async fn transfer_leader(&self, target: u64) -> Result<AdminResponse, FsError> {
        self.require_leader()?;
        if target == self.id() {
            return Ok(AdminResponse::Done);
        }
        if !self.voters().contains(&target) {
            return Err(FsError::InvalidArgument(format!(
                "metadata node {target} is not a voter"
            )));
        }
        let addr = self
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&target)
            .map(|n| n.addr.clone())
            .ok_or_else(|| FsError::InvalidArgument(format!("no address for {target}")))?;
        let lease = Duration::from_millis(self.config().election_max_ms + 50);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        self.raft().runtime_config().heartbeat(false);
        let result = async {
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(lease).await;
                let conn = crate::network::pooled(
                    self.pool(),
                    self.connector(),
                    &addr,
                    self.config().key.as_ref(),
                    Duration::from_secs(1),
                )
                .await
                .map_err(|e| e.into_fs())?;
                let _ = conn
                    .call(
                        Request::Admin(AdminRequest::StartElection),
                        Duration::from_secs(2),
                    )
                    .await;
                let moved = self
                    .raft()
                    .wait(Some(Duration::from_millis(1500)))
                    .metrics(|m| m.current_leader == Some(target), "leadership moved")
                    .await;
                if moved.is_ok() {
                    return Ok(AdminResponse::Done);
                }
            }
            Err(FsError::Unavailable(format!(
                "leadership did not move to {target} in time"
            )))
        }
        .await;
        self.raft().runtime_config().heartbeat(true);
        result
    }
}
