//! A metadata node: Raft, the state machine, the group-commit proposer, the
//! batched read-index gate, the leadership watcher, the leader driver and
//! the RPC server, wired together. Its state is private: callers go
//! through its methods, and both locks are taken in one place
//! ([`crate::core`]).

use crate::config::MetaConfig;
use crate::core::Core;
use crate::metrics::MetaMetrics;
use crate::network::{pooled, Pool};
use crate::types::{NodeId, Raft};
use openraft::error::RaftError;
use openraft::ServerState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tdfs_namespace::{LogOp, Namespace, Outcome, Stamp, Stamped};
use tdfs_policy::ClusterState;
use tdfs_proto::event::EventKind;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{Clock, Connector, EventBus, Random};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

mod propose;
mod start;

pub use propose::write_error;
pub use start::start;

type Reply = oneshot::Sender<Result<Outcome, FsError>>;

/// The seams a node runs on: how it connects, what time it is, where
/// its random choices (placement, read order) come from, and the disk its
/// Raft log and snapshots are on.
#[derive(Clone, Debug)]
pub struct Seams {
    pub connector: Connector,
    pub clock: Clock,
    pub random: Random,
    pub disk: Arc<dyn tdfs_disk::Disk>,
}

impl Default for Seams {
    fn default() -> Self {
        Seams {
            connector: Connector::default(),
            clock: Clock::default(),
            random: Random::default(),
            disk: tdfs_disk::real(),
        }
    }
}

/// A running metadata node.
pub struct MetaNode {
    config: MetaConfig,
    raft: Raft,
    core: Arc<Core>,
    seams: Seams,
    /// Connections to the other metadata nodes.
    pool: Pool,
    metrics: Arc<MetaMetrics>,
    proposals: mpsc::Sender<(Stamped, Reply)>,
    reads: mpsc::Sender<oneshot::Sender<Result<u64, FsError>>>,
    /// The term this node leads in and has applied an entry of (0: not
    /// ready to lead): the leader driver and the datanode polls wait on it.
    ready_term: watch::Sender<u64>,
    /// A threshold asked for by `tdfs balancer`, as f64 bits (0: none).
    balance_override: AtomicU64,
    /// `(term, index)`: no read in `term` is served below `index`, the last
    /// log index when this node first answered a read as that term's
    /// leader. A leader restarted with its vote keeps its term, and its
    /// persisted commit index can lag what the group committed before the
    /// crash; openraft's read log id (max of its no-op and the commit index)
    /// can then be too low. Everything in its log at that point may have been
    /// acknowledged, so reads wait until it is applied.
    read_floor: std::sync::Mutex<(u64, u64)>,
    /// Counts the leader's policy rounds (the balancer waits on it).
    rounds: watch::Sender<u64>,
    /// Why the node stopped, when one of its tasks failed.
    failed: watch::Sender<Option<String>>,
}

/// Owns a node's tasks; dropping it does not stop them, `shutdown` does.
pub struct MetaHandle {
    pub node: Arc<MetaNode>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    gossip: Option<tdfs_gossip::GossipHandle>,
}

impl MetaHandle {
    /// Resolves with the reason when a task of the node failed and the
    /// node stopped serving (a daemon then exits non-zero).
    pub async fn failed(&self) -> String {
        let mut rx = self.node.failed.subscribe();
        let why = match rx.wait_for(|f| f.is_some()).await {
            Ok(f) => f.clone(),
            Err(_) => None,
        };
        match why {
            Some(w) => w,
            // The node is gone without failing: never resolve.
            None => std::future::pending().await,
        }
    }
}

impl MetaHandle {
    /// This node's gossip counters (what it received and dropped), if it
    /// gossips.
    pub fn gossip_stats(&self) -> Option<tdfs_gossip::GossipStats> {
        self.gossip.as_ref().map(|g| g.stats())
    }

    /// Stops serving and shuts Raft down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.node.raft.shutdown().await;
        for t in self.tasks {
            t.abort();
        }
        if let Some(g) = self.gossip {
            g.abort().await;
        }
    }
}

impl MetaNode {
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }

    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The Raft handle (metrics, triggers).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn metrics(&self) -> &Arc<MetaMetrics> {
        &self.metrics
    }

    /// This node's events.
    pub fn events(&self) -> &EventBus {
        &self.core.events
    }

    pub fn clock(&self) -> &Clock {
        &self.seams.clock
    }

    pub fn random(&self) -> &Random {
        &self.seams.random
    }

    pub fn connector(&self) -> &Connector {
        &self.seams.connector
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// This node's namespace hashes and the consistency alarm.
    pub fn hashes(&self) -> &Arc<crate::consistency::Hashes> {
        &self.core.hashes
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Looks at the namespace and the soft state together (read-only;
    /// tests and reports).
    pub fn inspect<R>(&self, f: impl FnOnce(&Namespace, &ClusterState) -> R) -> R {
        self.core.both(|r, v| f(&r.ns, v))
    }

    /// The last applied log index.
    pub fn applied_index(&self) -> u64 {
        self.core.applied()
    }

    /// A stamp for an operation by `user`, on this node's clock: wall time
    /// for the files' times, the log tick (monotonic) for expiry.
    pub fn stamp(&self, user: &str, call: Option<CallId>) -> Stamp {
        Stamp {
            user: user.to_string(),
            call,
            now: self.core.wall_ms(),
            tick: self.core.issue_tick(),
        }
    }

    /// Proposes a mutation through Raft and waits for its result.
    pub async fn propose(&self, stamp: Stamp, op: LogOp) -> Result<Outcome, FsError> {
        let (tx, rx) = oneshot::channel();
        let shutting = || FsError::Unavailable("node is shutting down".into());
        self.proposals
            .send((Stamped { stamp, op }, tx))
            .await
            .map_err(|_| shutting())?;
        rx.await.map_err(|_| shutting())?
    }

    /// Proposes an operation on behalf of the node itself.
    pub async fn propose_system(&self, op: LogOp) -> Result<Outcome, FsError> {
        let stamp = self.stamp(&self.config.superuser, None);
        self.propose(stamp, op).await
    }

    /// Waits until a linearizable read may be served from the local state:
    /// obtains a read index (batched with concurrent readers) and waits for
    /// the state machine to reach it.
    pub async fn read_barrier(&self) -> Result<(), FsError> {
        if crate::bugs::on(crate::bugs::Bug::FollowerReadWithoutIndex) && !self.is_leader() {
            return Ok(());
        }
        let index = self.batched_read_index().await?;
        self.wait_applied(index).await
    }

    /// A read index obtained together with every concurrent reader's.
    pub async fn batched_read_index(&self) -> Result<u64, FsError> {
        let (tx, rx) = oneshot::channel();
        let shutting = || FsError::Unavailable("node is shutting down".into());
        self.reads.send(tx).await.map_err(|_| shutting())?;
        rx.await.map_err(|_| shutting())?
    }

    /// Waits until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), FsError> {
        if *self.core.applied.borrow() >= index {
            return Ok(());
        }
        let mut rx = self.core.applied.subscribe();
        let r = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|a| *a >= index)).await;
        match r {
            Ok(Ok(_)) => Ok(()),
            _ => Err(FsError::Unavailable(format!(
                "state machine is behind read index {index}"
            ))),
        }
    }

    /// The leader as this node knows it: id and address.
    pub fn leader_hint(&self) -> Option<(u64, String)> {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.config.id)
    }

    /// Leads, with an entry of its own term applied (so it judges replicas
    /// against a namespace no older than any earlier leader's).
    pub fn leader_ready(&self) -> bool {
        let rx = self.raft.metrics();
        let m = rx.borrow();
        m.state == ServerState::Leader
            && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term)
    }

    /// The count of policy rounds this node ran as leader (tests wait on
    /// it to know the policies have looked at something).
    pub fn policy_rounds(&self) -> watch::Receiver<u64> {
        self.rounds().subscribe()
    }

    /// Counts the leader's policy rounds.
    pub(crate) fn rounds(&self) -> &watch::Sender<u64> {
        &self.rounds
    }

    /// The term this node is ready to lead in (0 when not).
    pub(crate) fn ready_term(&self) -> &watch::Sender<u64> {
        &self.ready_term
    }

    pub fn not_leader(&self) -> FsError {
        FsError::NotLeader {
            leader: self.leader_hint(),
        }
    }

    /// Obtains a read index: the leader confirms its leadership with a
    /// quorum; a follower asks the leader.
    async fn obtain_read_index(&self) -> Result<u64, FsError> {
        if self.is_leader() {
            return self.leader_read_index().await.map(|(i, _)| i);
        }
        let Some((_, addr)) = self.leader_hint() else {
            return Err(FsError::NotLeader { leader: None });
        };
        let conn = pooled(
            &self.pool,
            &self.seams.connector,
            &addr,
            self.config.key.as_ref(),
            Duration::from_secs(1),
        )
        .await
        .map_err(|e| e.into_fs())?;
        match conn.call(Request::ReadIndex, Duration::from_secs(5)).await {
            Ok(Response::ReadIndex(i)) => Ok(i),
            Ok(other) => Err(FsError::Internal(format!("unexpected reply {other:?}"))),
            Err(e) => Err(e.into_fs()),
        }
    }

    /// Leader side of a read index: confirms leadership with a quorum and
    /// returns the index the state machine must reach and the term in
    /// which leadership was confirmed.
    pub async fn leader_read_index(&self) -> Result<(u64, u64), FsError> {
        let (term, last) = {
            let rx = self.raft.metrics();
            let m = rx.borrow();
            (m.current_term, m.last_log_index.unwrap_or(0))
        };
        let floor = {
            let mut f = self.read_floor.lock().unwrap_or_else(|p| p.into_inner());
            if f.0 != term {
                *f = (term, last);
            }
            f.1
        };
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok((read.map(|l| l.index).unwrap_or(0).max(floor), term)),
            Err(RaftError::APIError(e)) => match e {
                openraft::error::CheckIsLeaderError::ForwardToLeader(f) => {
                    Err(FsError::NotLeader {
                        leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                    })
                }
                openraft::error::CheckIsLeaderError::QuorumNotEnough(q) => {
                    Err(FsError::Unavailable(format!("no quorum: {q}")))
                }
            },
            Err(RaftError::Fatal(f)) => Err(FsError::Unavailable(format!("raft stopped: {f}"))),
        }
    }

    /// The balancing threshold in force, as a fraction.
    pub fn balance_threshold(&self) -> Option<f64> {
        let o = self.balance_override.load(Ordering::Relaxed);
        if o != 0 {
            return Some(f64::from_bits(o) / 100.0);
        }
        self.config.balance_threshold_pct.map(|p| p / 100.0)
    }

    /// Sets (or clears) the threshold `tdfs balancer` asked for, percent.
    pub(crate) fn set_balance_override(&self, pct: Option<f64>) {
        self.balance_override
            .store(pct.map_or(0, f64::to_bits), Ordering::Relaxed);
    }

    /// Publishes an event from this node.
    pub(crate) fn publish(&self, e: EventKind) {
        self.core.events.publish(e);
    }
}
