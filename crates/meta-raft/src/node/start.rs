//! Starting a node: Raft on its log and state machine, and its tasks,
//! each supervised.

use super::propose::{proposer, read_gate};
use super::{MetaHandle, MetaNode, Reply, Seams};
use crate::config::{defaults, MetaConfig};
use crate::core::Core;
use crate::log_store::LogStore;
use crate::metrics::MetaMetrics;
use crate::network::{Network, Pool};
use crate::service::MetaService;
use crate::state_machine::{reload_view, StateMachine};
use crate::types::{NodeId, Raft};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tdfs_namespace::Stamped;
use tdfs_policy::ClusterState;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{serve, EventBus, ServerConfig, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Starts a metadata node serving on `listener` (bound by the caller).
pub async fn start(
    config: MetaConfig,
    listener: TcpListener,
    seams: Seams,
) -> anyhow::Result<MetaHandle> {
    config.validate().map_err(anyhow::Error::msg)?;
    crate::failpoints::from_env();
    let raft_config = raft_config(&config)?;
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
    let mut tasks = spawn_tasks(&node, log, prx, rrx, listener, &shutdown);
    let gossip = if config.gossip {
        let g = crate::gossip::start(&config, node.connector()).await?;
        tasks.push(supervise(
            &node,
            "gossip follower",
            crate::gossip::follow(node.clone(), g.subscribe(), g.watch(), shutdown.clone()),
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

/// Raft's settings from the node's.
fn raft_config(config: &MetaConfig) -> anyhow::Result<openraft::Config> {
    let c = openraft::Config {
        cluster_name: "tdfs".into(),
        heartbeat_interval: config.heartbeat_ms,
        election_timeout_min: config.election_min_ms,
        election_timeout_max: config.election_max_ms,
        // With entries of at most MAX_BATCH_BYTES (plus one operation),
        // an AppendEntries stays small enough to beat its deadline.
        max_payload_entries: defaults::MAX_PAYLOAD_ENTRIES,
        // Entries, bytes and the snapshot's own size: `snap_policy` decides.
        snapshot_policy: SnapshotPolicy::Never,
        snapshot_max_chunk_size: 4 << 20,
        max_in_snapshot_log_to_keep: 1000,
        install_snapshot_timeout: defaults::INSTALL_SNAPSHOT_TIMEOUT_MS,
        ..Default::default()
    }
    .validate()?;
    Ok(c)
}

/// Spawns the node's tasks, each under [`supervise`]: the proposer, the
/// read gate, the leadership watcher, the leader driver, the snapshot
/// policy and the RPC server.
fn spawn_tasks(
    node: &Arc<MetaNode>,
    log: LogStore,
    prx: mpsc::Receiver<(Stamped, Reply)>,
    rrx: mpsc::Receiver<oneshot::Sender<Result<u64, FsError>>>,
    listener: TcpListener,
    shutdown: &Shutdown,
) -> Vec<JoinHandle<()>> {
    let raft = node.raft.clone();
    let config = &node.config;
    let snapshot_bytes = {
        let disk = node.seams.disk.clone();
        let path = crate::snapshot::snapshot_path(&config.data_dir.join("sm"));
        move || disk.metadata(&path).map(|m| m.len).unwrap_or(0)
    };
    let mut tasks = vec![
        supervise(
            node,
            "proposer",
            proposer(raft.clone(), prx, shutdown.clone()),
        ),
        supervise(
            node,
            "read gate",
            read_gate(node.clone(), rrx, shutdown.clone()),
        ),
        supervise(
            node,
            "leadership watcher",
            crate::leader::watch_leadership(node.clone(), shutdown.clone()),
        ),
        supervise(
            node,
            "leader driver",
            crate::leader::drive(node.clone(), shutdown.clone()),
        ),
        supervise(
            node,
            "snapshot policy",
            crate::snap_policy::run(
                raft.clone(),
                log,
                crate::snap_policy::Limits {
                    entries: config.snapshot_logs,
                    bytes: config.snapshot_log_bytes,
                },
                snapshot_bytes,
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
        node,
        "rpc server",
        serve::<Request, Response, _>(listener, service, server_config, shutdown.clone()),
    ));
    tasks
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
