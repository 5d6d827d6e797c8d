//! A metadata node: Raft, the state machine, the group-commit proposer, the
//! batched read-index gate, the leadership watcher, the leader driver and
//! the RPC server, wired together. Its state is private: callers go
//! through its methods, and both locks are taken in one place
//! ([`crate::core`]).

use crate::config::{defaults, MetaConfig};
use crate::core::Core;
use crate::log_store::LogStore;
use crate::metrics::MetaMetrics;
use crate::network::{pooled, Network, Pool};
use crate::service::MetaService;
use crate::state_machine::{reload_view, StateMachine};
use crate::types::{BatchResult, NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tdfs_namespace::{Batch, LogOp, Namespace, Outcome, Stamp, Stamped};
use tdfs_policy::ClusterState;
use tdfs_proto::event::EventKind;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{serve, Clock, Connector, EventBus, Random, ServerConfig, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

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

/// Starts a metadata node serving on `listener` (bound by the caller).
pub async fn start(
    config: MetaConfig,
    listener: TcpListener,
    seams: Seams,
) -> anyhow::Result<MetaHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    crate::failpoints::from_env();
    let raft_config = openraft::Config {
        cluster_name: "tdfs".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        // With entries of at most MAX_BATCH_BYTES (plus one operation),
        // an AppendEntries stays small enough to beat its deadline.
        max_payload_entries: defaults::MAX_PAYLOAD_ENTRIES,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        snapshot_max_chunk_size: 4 << 20,
        max_in_snapshot_log_to_keep: 1000,
        install_snapshot_timeout: defaults::INSTALL_SNAPSHOT_TIMEOUT_MS,
        ..Default::default()
    }
    .validate()?;
    let disk = seams.disk.clone();
    let log = LogStore::open(disk.clone(), &config.data_dir.join("raft"), config.fsync)?;
    let metrics = Arc::new(MetaMetrics::new(log.committed_index()));
    let sm_dir = config.data_dir.join("sm");
    let rep = crate::state_machine::load(disk.as_ref(), &sm_dir)?;
    let events = EventBus::new(format!("meta-{}", config.id), seams.clock.clone());
    let mut view = ClusterState::new(config.policy());
    reload_view(&rep, &mut view, seams.clock.now());
    let core = Arc::new(Core::new(
        rep,
        view,
        events,
        seams.clock.clone(),
        config.hash_every,
    ));
    let sm = StateMachine::new(core.clone(), disk, &sm_dir);
    let pool: Pool = Arc::new(Mutex::new(HashMap::new()));
    let network = Network {
        id: config.id,
        key: config.key.clone(),
        connector: seams.connector.clone(),
        pool: pool.clone(),
    };
    let raft = Raft::new(config.id, Arc::new(raft_config), network, log.clone(), sm).await?;
    let (stop, shutdown) = Shutdown::new();
    let (ptx, prx) = mpsc::channel(8192);
    let (rtx, rrx) = mpsc::channel(8192);
    let node = Arc::new(MetaNode {
        config: config.clone(),
        raft: raft.clone(),
        core,
        seams,
        pool,
        metrics,
        proposals: ptx,
        reads: rtx,
        ready_term: watch::channel(0).0,
        balance_override: AtomicU64::new(0),
        read_floor: std::sync::Mutex::new((0, 0)),
        rounds: watch::channel(0).0,
        failed: watch::channel(None).0,
    });
    let mut tasks = vec![
        supervise(
            &node,
            "proposer",
            proposer(raft.clone(), prx, shutdown.clone()),
        ),
        supervise(
            &node,
            "read gate",
            read_gate(node.clone(), rrx, shutdown.clone()),
        ),
        supervise(
            &node,
            "leadership watcher",
            crate::leader::watch_leadership(node.clone(), shutdown.clone()),
        ),
        supervise(
            &node,
            "leader driver",
            crate::leader::drive(node.clone(), shutdown.clone()),
        ),
        supervise(
            &node,
            "snapshot policy",
            crate::snap_policy::by_log_bytes(
                raft.clone(),
                log,
                config.snapshot_log_bytes,
                shutdown.clone(),
            ),
        ),
    ];
    let server_config = ServerConfig {
        key: config.key.clone(),
        ..Default::default()
    };
    let service = Arc::new(MetaService::new(node.clone()));
    tasks.push(supervise(
        &node,
        "rpc server",
        serve::<Request, Response, _>(listener, service, server_config, shutdown.clone()),
    ));
    let gossip = if config.gossip {
        let g = crate::gossip::start(&config).await?;
        tasks.push(supervise(
            &node,
            "gossip follower",
            crate::gossip::follow(node.clone(), g.subscribe(), shutdown.clone()),
        ));
        Some(g)
    } else {
        None
    };
    initialize(&config, &raft).await?;
    Ok(MetaHandle {
        node,
        stop,
        tasks,
        gossip,
    })
}

/// Runs one of the node's tasks. If it panics (a bug), the node stops
/// leading and serving rather than go on half-working — a leader that
/// heartbeats but cannot run its duties would keep the cluster from
/// electing one that can: Raft is shut down (the others elect a new
/// leader), the failure is logged and published, and [`MetaHandle::failed`]
/// resolves (the daemon exits non-zero).
fn supervise<F>(node: &Arc<MetaNode>, name: &'static str, task: F) -> JoinHandle<()>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let node = Arc::downgrade(node);
    tokio::spawn(async move {
        let r = tokio::spawn(task).await;
        let Err(e) = r else { return };
        if !e.is_panic() {
            return;
        }
        let reason = match e.into_panic().downcast::<String>() {
            Ok(s) => *s,
            Err(p) => p
                .downcast::<&str>()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        };
        let Some(node) = node.upgrade() else { return };
        let what = format!(
            "the {name} task of metadata node {} panicked: {reason}",
            node.id()
        );
        tracing::error!(fault = "local", "{what}; the node stops serving");
        node.publish(EventKind::TaskFailed {
            task: name.to_string(),
            reason: reason.clone(),
        });
        let _ = node.raft.shutdown().await;
        node.failed.send_replace(Some(what));
    })
}

/// Founding members initialize the group with the same membership;
/// openraft accepts identical initial logs, and a node that already
/// received logs from a peer answers NotAllowed, which is fine.
async fn initialize(config: &MetaConfig, raft: &Raft) -> anyhow::Result<()> {
    if config.peers.contains_key(&config.id) && !raft.is_initialized().await? {
        let members: BTreeMap<NodeId, BasicNode> = config
            .peers
            .iter()
            .map(|(id, a)| (*id, BasicNode::new(a.clone())))
            .collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!("initialize: {e}");
        }
    }
    Ok(())
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

    /// A stamp for an operation by `user`, on this node's clock.
    pub fn stamp(&self, user: &str, call: Option<CallId>) -> Stamp {
        Stamp {
            user: user.to_string(),
            call,
            now: self.core.wall_ms(),
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
        let m = self.raft.metrics().borrow().clone();
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
        let m = self.raft.metrics().borrow().clone();
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
            let m = self.raft.metrics().borrow().clone();
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

/// Maps a failed `client_write` to a wire error.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> FsError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => FsError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            FsError::InvalidArgument(c.to_string())
        }
        RaftError::Fatal(f) => FsError::Unavailable(format!("raft stopped: {f}")),
    }
}

/// Group commit: drains whatever proposals are queued into one Raft entry,
/// keeping up to `MAX_INFLIGHT_BATCHES` entries in flight; while they are,
/// new proposals pile up and go out together in the next entry.
///
/// An entry is capped by count (`MAX_BATCH`) and by its operations' encoded
/// bytes (`MAX_BATCH_BYTES`), so that `max_payload_entries` of them always
/// fit in one AppendEntries frame: a follower that lags behind large
/// entries (long names, xattr values) can always catch up.
async fn proposer(raft: Raft, mut rx: mpsc::Receiver<(Stamped, Reply)>, mut shutdown: Shutdown) {
    let inflight = Arc::new(Semaphore::new(defaults::MAX_INFLIGHT_BATCHES));
    let mut held: Option<(Stamped, Reply)> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => tokio::select! {
                _ = shutdown.wait() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            },
        };
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = op_bytes(&first.0);
        let mut batch = vec![first];
        while batch.len() < defaults::MAX_BATCH {
            let Ok(p) = rx.try_recv() else { break };
            let b = op_bytes(&p.0);
            if bytes + b > defaults::MAX_BATCH_BYTES {
                held = Some(p);
                break;
            }
            bytes += b;
            batch.push(p);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (ops, replies): (Vec<Stamped>, Vec<Reply>) = batch.into_iter().unzip();
            match raft.client_write(Batch { ops }).await {
                Ok(resp) => {
                    let results: BatchResult = resp.data;
                    for (tx, r) in replies.into_iter().zip(results) {
                        let _ = tx.send(r);
                    }
                }
                Err(e) => {
                    let e = write_error(e);
                    for tx in replies {
                        let _ = tx.send(Err(e.clone()));
                    }
                }
            }
        });
    }
}

/// The encoded size of one operation in a log entry.
fn op_bytes(op: &Stamped) -> usize {
    let mut w = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(op, &mut w, bincode::config::standard()) {
        Ok(()) => w.bytes_written,
        // Cannot be encoded: it fails alone, in an entry of its own.
        Err(_) => defaults::MAX_BATCH_BYTES,
    }
}

/// Batches read-index requests: one leadership confirmation serves every
/// reader that arrived before it started.
async fn read_gate(
    node: Arc<MetaNode>,
    mut rx: mpsc::Receiver<oneshot::Sender<Result<u64, FsError>>>,
    mut shutdown: Shutdown,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            w = rx.recv() => match w { Some(w) => w, None => return },
        };
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let r = node.obtain_read_index().await;
        for w in waiters {
            let _ = w.send(r.clone());
        }
    }
}
