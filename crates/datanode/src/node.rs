//! The datanode daemon: serves the data-transfer protocol, and keeps every
//! metadata node informed — registration, a full block report (in pages) at
//! start and whenever a metadata node asks (restart, new leader), and
//! incremental reports after each replica is finalized, deleted or
//! quarantined. Liveness and usage travel by gossip, so there is no
//! heartbeat: a datanode calls when it has something to say, and holds one
//! long poll per metadata node through which the leader hands it commands,
//! fenced by the leader's term.
//!
//! A datanode never deletes a replica on its own: a corrupt one is
//! quarantined and reported, and goes only when the leader's `Delete`
//! names it.

use crate::block_store::BlockStore;
use crate::commands::Exec;
use crate::fence::Fence;
pub use crate::report::REPORT_PAGE;
use crate::report::{fan_out, poller, reporter};
use crate::scanner::ScanConfig;
use crate::transfer::{handle_stream, TransferCtx};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::{ReplicaReport, Request, Response};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{
    serve, Clock, ClusterKey, Connector, EventBus, Handler, Peer, ServerConfig, Shutdown,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

/// Settings of a running datanode.
#[derive(Clone, Debug)]
pub struct DatanodeConfig {
    /// Address clients and peers use to reach this node.
    pub addr: String,
    pub http: Option<String>,
    /// Address of the HDFS DataTransferProtocol server, if one runs.
    pub hdfs: Option<String>,
    /// Every metadata node (reports go to all of them).
    pub meta: Vec<String>,
    pub key: Option<ClusterKey>,
    /// How often usage is refreshed in gossip.
    pub heartbeat: Duration,
    /// How long one command poll waits at a metadata node.
    pub poll_wait: Duration,
    /// Pace of the background integrity scanner.
    pub scan: ScanConfig,
    /// Join the gossip cluster (UDP on the port of `addr`).
    pub gossip: bool,
    /// How it connects to metadata nodes and peers (fault filters in tests).
    pub connector: Connector,
    /// Its clock (skew in tests).
    pub clock: Clock,
    /// Replicas per full-report page ([`REPORT_PAGE`]; smaller in tests).
    pub report_page: usize,
}

impl DatanodeConfig {
    pub fn new(addr: String, meta: Vec<String>) -> Self {
        DatanodeConfig {
            addr,
            http: None,
            hdfs: None,
            meta,
            key: None,
            heartbeat: Duration::from_millis(1000),
            poll_wait: Duration::from_secs(30),
            scan: ScanConfig::default(),
            gossip: true,
            connector: Connector::direct(),
            clock: Clock::real(),
            report_page: REPORT_PAGE,
        }
    }
}

/// A change to report incrementally.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    Added(ReplicaReport),
    /// A replica deleted: id and generation.
    Removed(BlockId, u64),
    /// A replica quarantined as corrupt: id and generation.
    Corrupt(BlockId, u64),
}

/// A running datanode.
pub struct DatanodeHandle {
    pub id: DatanodeId,
    pub store: Arc<BlockStore>,
    /// This datanode's events.
    pub events: Arc<EventBus>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    gossip: Option<tdfs_gossip::GossipHandle>,
}

impl DatanodeHandle {
    /// Stops serving and reporting, closes every connection, and waits
    /// (up to 10 s) until the store is released, so the same directory can
    /// be opened again.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        // Like a crash: peers notice through gossip's failure detection.
        if let Some(g) = self.gossip {
            g.abort().await;
        }
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.store) > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct DnService {
    ctx: Arc<TransferCtx>,
    events: Arc<EventBus>,
}

impl Handler<Request, Response> for DnService {
    async fn handle(&self, _peer: &Peer, req: Request) -> Result<Response, FsError> {
        match req {
            Request::Ping => Ok(Response::Pong { id: 0 }),
            Request::Events { after, wait_ms } => {
                let wait = Duration::from_millis(wait_ms.min(30_000) as u64);
                Ok(Response::Events(self.events.poll(after, 1000, wait).await))
            }
            _ => Err(FsError::Unsupported(
                "a datanode serves the data-transfer protocol only".into(),
            )),
        }
    }

    async fn stream(&self, peer: Peer, stream: TcpStream) {
        handle_stream(self.ctx.clone(), peer, stream).await;
    }
}

/// Starts a datanode on an opened (locked, loaded) store and a bound listener.
pub async fn start(
    cfg: DatanodeConfig,
    store: Arc<BlockStore>,
    listener: TcpListener,
) -> anyhow::Result<DatanodeHandle> {
    start_with_hdfs(cfg, store, listener, None).await
}

/// [`start`], also serving HDFS's DataTransferProtocol on `hdfs` (its
/// address is announced at registration, so Hadoop clients learn it as the
/// datanode's xfer port).
pub async fn start_with_hdfs(
    mut cfg: DatanodeConfig,
    store: Arc<BlockStore>,
    listener: TcpListener,
    hdfs: Option<TcpListener>,
) -> anyhow::Result<DatanodeHandle> {
    if let (Some(l), None) = (&hdfs, &cfg.hdfs) {
        cfg.hdfs = Some(l.local_addr()?.to_string());
    }
    if cfg.meta.is_empty() {
        anyhow::bail!("a datanode needs at least one metadata node (--meta)");
    }
    let fence = Arc::new(Fence::open(
        store.config().disk.clone(),
        &store.config().dir,
    )?);
    let events = Arc::new(EventBus::new(
        store.datanode_id().0.clone(),
        cfg.clock.clone(),
    ));
    let (stop, shutdown) = Shutdown::new();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(TransferCtx {
        store: store.clone(),
        key: cfg.key.clone(),
        connector: cfg.connector.clone(),
        events: ev_tx,
        clock: cfg.clock.clone(),
    });
    let mut tasks = vec![spawn_server(listener, &cfg, &ctx, &events, &shutdown)];
    if let Some(l) = hdfs {
        tasks.push(spawn_hdfs(l, &cfg, &ctx, &shutdown));
    }
    // Fan changes out to one reporter per metadata node.
    let (change_tx, change_rx) = mpsc::unbounded_channel::<Change>();
    let scan_tx = change_tx.clone();
    tasks.push(tokio::spawn(crate::scanner::run(
        store.clone(),
        cfg.scan,
        move |b, gen| {
            // The scanner already quarantined the replica.
            let _ = scan_tx.send(Change::Corrupt(b, gen));
        },
        shutdown.clone(),
    )));
    let exec = Arc::new(Exec {
        ctx: ctx.clone(),
        changes: change_tx.clone(),
        fence,
        events: events.clone(),
    });
    let outs = spawn_reporters(&cfg, &ctx, &exec, &shutdown, &mut tasks);
    tasks.push(tokio::spawn(fan_out(
        ev_rx,
        change_rx,
        outs,
        events.clone(),
    )));
    let gossip = if cfg.gossip {
        let g = start_gossip(&cfg, store.datanode_id()).await?;
        tasks.push(spawn_usage(&g, &store, cfg.heartbeat, &shutdown));
        Some(g)
    } else {
        None
    };
    Ok(DatanodeHandle {
        id: store.datanode_id().clone(),
        store,
        events,
        stop,
        tasks,
        gossip,
    })
}

/// The tdfs RPC server: the datanode protocol and the block streams.
fn spawn_server(
    listener: TcpListener,
    cfg: &DatanodeConfig,
    ctx: &Arc<TransferCtx>,
    events: &Arc<EventBus>,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let server_config = ServerConfig {
        key: cfg.key.clone(),
        ..Default::default()
    };
    tokio::spawn(serve::<Request, Response, _>(
        listener,
        Arc::new(DnService {
            ctx: ctx.clone(),
            events: events.clone(),
        }),
        server_config,
        shutdown.clone(),
    ))
}

/// HDFS's DataTransferProtocol on `l`, over the same store.
fn spawn_hdfs(
    l: TcpListener,
    cfg: &DatanodeConfig,
    ctx: &Arc<TransferCtx>,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let access = Arc::new(crate::hdfs::HdfsStore::new(ctx.clone()));
    let dtp = tdfs_hdfs_rpc::datanode::DtpConfig {
        key: cfg.key.clone(),
        datanode_uuid: ctx.store.datanode_id().0.clone(),
        connector: cfg.connector.clone(),
    };
    let mut sd = shutdown.clone();
    tokio::spawn(tdfs_hdfs_rpc::datanode::run(l, access, dtp, async move {
        sd.wait().await
    }))
}

/// A reporter and a poller per metadata node (into `tasks`); returns the
/// senders the fan out feeds the reporters through.
fn spawn_reporters(
    cfg: &DatanodeConfig,
    ctx: &Arc<TransferCtx>,
    exec: &Arc<Exec>,
    shutdown: &Shutdown,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Vec<mpsc::UnboundedSender<Change>> {
    let mut outs = Vec::new();
    for addr in &cfg.meta {
        let (tx, rx) = mpsc::unbounded_channel();
        outs.push(tx);
        let resync = Arc::new(Notify::new());
        tasks.push(tokio::spawn(reporter(
            addr.clone(),
            cfg.clone(),
            ctx.clone(),
            rx,
            resync.clone(),
            shutdown.clone(),
        )));
        tasks.push(tokio::spawn(poller(
            addr.clone(),
            cfg.clone(),
            exec.clone(),
            resync,
            shutdown.clone(),
        )));
    }
    outs
}

/// Spreads this node's usage by gossip every `every`.
fn spawn_usage(
    g: &tdfs_gossip::GossipHandle,
    store: &Arc<BlockStore>,
    every: Duration,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let usage_of = store.clone();
    let g2 = g.usage_setter();
    let mut sd = shutdown.clone();
    tokio::spawn(async move {
        loop {
            g2.set(usage_of.usage());
            tokio::select! {
                _ = sd.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

/// Joins the gossip cluster on UDP at this node's port, seeded with the
/// metadata nodes; spreads this node's usage.
async fn start_gossip(
    cfg: &DatanodeConfig,
    id: &DatanodeId,
) -> anyhow::Result<tdfs_gossip::GossipHandle> {
    use tdfs_gossip::{GossipConfig, NodeIdentity, Role};
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&cfg.addr)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", cfg.addr))?;
    let mut seeds = Vec::new();
    for m in &cfg.meta {
        if let Some(s) = tokio::net::lookup_host(m).await?.next() {
            seeds.push(s);
        }
    }
    let mut gc = GossipConfig::new(NodeIdentity::new(id.0.clone(), Role::Datanode, addr), seeds);
    gc.key = cfg.key.clone();
    gc.data_addr = Some(addr);
    gc.connector = cfg.connector.clone();
    Ok(tdfs_gossip::start(gc).await?)
}
