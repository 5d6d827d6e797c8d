//! A metadata node: Raft, the state machine, the group-commit proposer, the
//! batched read-index gate, leader duties and the RPC server, wired together.

use crate::cluster::{ClusterView, LivenessConfig};
use crate::command::{Command, Op, OpKind};
use crate::config::{defaults, MetaConfig};
use crate::log_store::LogStore;
use crate::network::{pooled, Faults, Network, Pool};
use crate::service::MetaService;
use crate::state_machine::{SmShared, StateMachine};
use crate::types::{NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState, SnapshotPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tdfs_proto::meta::{MetaResponse, Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{serve, ServerConfig, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

type Reply = oneshot::Sender<Result<MetaResponse, FsError>>;

/// A running metadata node.
pub struct MetaNode {
    pub config: MetaConfig,
    pub raft: Raft,
    /// The state machine's state, read by the RPC server.
    pub sm: Arc<SmShared>,
    /// Cut links for fault-injection tests.
    pub faults: Arc<Faults>,
    /// Connections to the other metadata nodes.
    pub pool: Pool,
    /// Replica locations, datanode liveness, intents and leases (soft state).
    pub view: Mutex<ClusterView>,
    pub liveness: LivenessConfig,
    /// A threshold asked for by `tdfs balancer` (percent), overriding the
    /// configured one while it runs.
    pub balance_override: Mutex<Option<f64>>,
    /// Prometheus metrics of this node.
    pub metrics: Arc<crate::metrics::MetaMetrics>,
    proposals: mpsc::Sender<(Op, Reply)>,
    reads: mpsc::Sender<oneshot::Sender<Result<u64, FsError>>>,
}

/// Owns a node's tasks; dropping it does not stop them, `shutdown` does.
pub struct MetaHandle {
    pub node: Arc<MetaNode>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    gossip: Option<tdfs_gossip::GossipHandle>,
}

impl MetaHandle {
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Starts a metadata node serving on `listener` (bound by the caller).
pub async fn start(
    config: MetaConfig,
    listener: TcpListener,
    faults: Arc<Faults>,
) -> anyhow::Result<MetaHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    let raft_config = openraft::Config {
        cluster_name: "tdfs".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        max_payload_entries: 64,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs),
        snapshot_max_chunk_size: 4 << 20,
        max_in_snapshot_log_to_keep: 1000,
        install_snapshot_timeout: 5000,
        ..Default::default()
    }
    .validate()?;
    let log = LogStore::open(&config.data_dir.join("raft"), config.fsync)?;
    let metrics = crate::metrics::MetaMetrics::new(log.committed_index());
    let sm = StateMachine::open(&config.data_dir.join("sm"), config.defaults.clone())?;
    let shared = sm.shared.clone();
    let pool: Pool = Arc::new(Mutex::new(HashMap::new()));
    let network = Network {
        id: config.id,
        key: config.key.clone(),
        faults: faults.clone(),
        pool: pool.clone(),
    };
    let raft = Raft::new(config.id, Arc::new(raft_config), network, log, sm).await?;

    let (stop, shutdown) = Shutdown::new();
    let (ptx, prx) = mpsc::channel(8192);
    let (rtx, rrx) = mpsc::channel(8192);
    let node = Arc::new(MetaNode {
        config: config.clone(),
        raft: raft.clone(),
        sm: shared,
        faults,
        pool,
        view: Mutex::new(ClusterView::default()),
        liveness: LivenessConfig {
            stale_after: Duration::from_millis(config.stale_after_ms),
            dead_after: Duration::from_millis(config.dead_after_ms),
        },
        balance_override: Mutex::new(None),
        metrics: Arc::new(metrics),
        proposals: ptx,
        reads: rtx,
    });
    let mut tasks = vec![
        tokio::spawn(proposer(raft.clone(), prx, shutdown.clone())),
        tokio::spawn(read_gate(node.clone(), rrx, shutdown.clone())),
        tokio::spawn(leader_duties(node.clone(), shutdown.clone())),
        tokio::spawn(crate::policy::run(node.clone(), shutdown.clone())),
    ];
    let server_config = ServerConfig {
        key: config.key.clone(),
        ..Default::default()
    };
    let service = Arc::new(MetaService::new(node.clone()));
    tasks.push(tokio::spawn(serve::<Request, Response, _>(
        listener,
        service,
        server_config,
        shutdown.clone(),
    )));

    let gossip = if config.gossip {
        let g = start_gossip(&config).await?;
        tasks.push(tokio::spawn(follow_gossip(
            node.clone(),
            g.subscribe(),
            shutdown.clone(),
        )));
        Some(g)
    } else {
        None
    };

    if config.peers.contains_key(&config.id) && !raft.is_initialized().await? {
        let members: BTreeMap<NodeId, BasicNode> = config
            .peers
            .iter()
            .map(|(id, a)| (*id, BasicNode::new(a.clone())))
            .collect();
        // Every founding member initializes with the same membership; openraft
        // accepts identical initial logs, and a node that already received
        // logs from a peer answers NotAllowed, which is fine.
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!("initialize: {e}");
        }
    }
    Ok(MetaHandle {
        node,
        stop,
        tasks,
        gossip,
    })
}

/// Joins the gossip cluster on UDP at this node's port, seeded with the
/// other metadata nodes.
async fn start_gossip(config: &MetaConfig) -> anyhow::Result<tdfs_gossip::GossipHandle> {
    use tdfs_gossip::{GossipConfig, NodeIdentity, Role};
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&config.addr)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", config.addr))?;
    let mut seeds = Vec::new();
    for (id, a) in &config.peers {
        if *id != config.id {
            if let Some(s) = tokio::net::lookup_host(a).await?.next() {
                seeds.push(s);
            }
        }
    }
    let ident = NodeIdentity::new(format!("meta-{}", config.id), Role::Meta, addr);
    let mut gc = GossipConfig::new(ident, seeds);
    gc.key = config.key.clone();
    Ok(tdfs_gossip::start(gc).await?)
}

/// Feeds gossip's view of the datanodes into the soft cluster view.
async fn follow_gossip(
    node: Arc<MetaNode>,
    mut events: tokio::sync::broadcast::Receiver<tdfs_gossip::MemberEvent>,
    mut shutdown: Shutdown,
) {
    use tdfs_gossip::{MemberEvent, Role};
    loop {
        let ev = tokio::select! {
            _ = shutdown.wait() => return,
            e = events.recv() => e,
        };
        let now = std::time::Instant::now();
        match ev {
            Ok(MemberEvent::Down(m)) if m.role == Role::Datanode => {
                tracing::info!("gossip: datanode {} is down", m.id);
                node.view
                    .lock()
                    .unwrap()
                    .gossip(&tdfs_proto::DatanodeId(m.id), true, now);
            }
            Ok(MemberEvent::Up(m)) if m.role == Role::Datanode => {
                node.view
                    .lock()
                    .unwrap()
                    .gossip(&tdfs_proto::DatanodeId(m.id), false, now);
            }
            Ok(MemberEvent::Usage(id, u)) => {
                node.view
                    .lock()
                    .unwrap()
                    .gossip_usage(&tdfs_proto::DatanodeId(id), u);
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("gossip: {n} membership events were missed");
            }
            Err(_) => return,
        }
    }
}

impl MetaNode {
    /// Proposes a mutation through Raft and waits for its result.
    pub async fn propose(&self, op: Op) -> Result<MetaResponse, FsError> {
        let (tx, rx) = oneshot::channel();
        self.proposals
            .send((op, tx))
            .await
            .map_err(|_| FsError::Unavailable("node is shutting down".into()))?;
        rx.await
            .map_err(|_| FsError::Unavailable("node is shutting down".into()))?
    }

    /// Waits until a linearizable read may be served from the local state:
    /// obtains a read index (batched with concurrent readers) and waits for
    /// the state machine to reach it.
    pub async fn read_barrier(&self) -> Result<(), FsError> {
        let index = self.batched_read_index().await?;
        self.wait_applied(index).await
    }

    /// A read index obtained together with every concurrent reader's.
    pub async fn batched_read_index(&self) -> Result<u64, FsError> {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send(tx)
            .await
            .map_err(|_| FsError::Unavailable("node is shutting down".into()))?;
        rx.await
            .map_err(|_| FsError::Unavailable("node is shutting down".into()))?
    }

    /// Waits until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<(), FsError> {
        let applied = self.sm.state.read().unwrap().last_applied.map(|l| l.index);
        if applied.is_some_and(|a| a >= index) {
            return Ok(());
        }
        self.raft
            .wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(Some(index), "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| FsError::Unavailable(format!("state machine is behind: {e}")))
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

    /// Obtains a read index: the leader confirms its leadership with a quorum;
    /// a follower asks the leader.
    async fn obtain_read_index(&self) -> Result<u64, FsError> {
        if self.is_leader() {
            return self.leader_read_index().await;
        }
        let Some((_, addr)) = self.leader_hint() else {
            return Err(FsError::NotLeader { leader: None });
        };
        let conn = pooled(
            &self.pool,
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

    /// Leader side of a read index: confirm leadership with a quorum and
    /// return the index the state machine must reach.
    pub async fn leader_read_index(&self) -> Result<u64, FsError> {
        match self.raft.get_read_log_id().await {
            Ok((read, _)) => Ok(read.map(|l| l.index).unwrap_or(0)),
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
        self.balance_override
            .lock()
            .unwrap()
            .or(self.config.balance_threshold_pct)
            .map(|p| p / 100.0)
    }

    /// A stamped operation on behalf of the node itself.
    pub fn system_op(&self, kind: OpKind) -> Op {
        Op {
            user: self.config.superuser.clone(),
            call: None,
            now: now_ms(),
            kind,
        }
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
async fn proposer(raft: Raft, mut rx: mpsc::Receiver<(Op, Reply)>, mut shutdown: Shutdown) {
    let inflight = Arc::new(Semaphore::new(defaults::MAX_INFLIGHT_BATCHES));
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < defaults::MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().unzip();
            match raft.client_write(Command { ops }).await {
                Ok(resp) => {
                    for (tx, r) in replies.into_iter().zip(resp.data) {
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

/// Work only the leader does: initialize the namespace on a fresh cluster,
/// and commit an entry of its own term at once so reads are served promptly.
async fn leader_duties(node: Arc<MetaNode>, mut shutdown: Shutdown) {
    let mut metrics = node.raft.metrics();
    let mut led_term = None;
    loop {
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        if state == ServerState::Leader && led_term != Some(term) {
            led_term = Some(term);
            node.view.lock().unwrap().new_term();
            let initialized = node.sm.state.read().unwrap().ns.is_initialized();
            if !initialized {
                let op = node.system_op(OpKind::Init {
                    superuser: node.config.superuser.clone(),
                    supergroup: "supergroup".into(),
                });
                match node.propose(op).await {
                    Ok(_) => {
                        tracing::info!("namespace initialized, superuser {}", node.config.superuser)
                    }
                    Err(e) => tracing::warn!("namespace initialization failed: {e}"),
                }
            }
            tracing::info!("node {} is the leader in term {term}", node.config.id);
        } else if state != ServerState::Leader {
            led_term = None;
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
    }
}
