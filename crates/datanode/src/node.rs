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
use crate::scanner::ScanConfig;
use crate::transfer::{handle_stream, StoreEvent, TransferCtx};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{DatanodeRequest, DatanodeResponse, ReplicaReport, Request, Response};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{
    serve, Clock, ClusterKey, Connector, EventBus, Handler, Peer, RpcClient, ServerConfig, Shutdown,
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
    let mut tasks = Vec::new();
    let server_config = ServerConfig {
        key: cfg.key.clone(),
        ..Default::default()
    };
    tasks.push(tokio::spawn(serve::<Request, Response, _>(
        listener,
        Arc::new(DnService {
            ctx: ctx.clone(),
            events: events.clone(),
        }),
        server_config,
        shutdown.clone(),
    )));
    if let Some(l) = hdfs {
        let access = Arc::new(crate::hdfs::HdfsStore::new(ctx.clone()));
        let dtp = tdfs_hdfs_rpc::datanode::DtpConfig {
            key: cfg.key.clone(),
            datanode_uuid: ctx.store.datanode_id().0.clone(),
            connector: cfg.connector.clone(),
        };
        let mut sd = shutdown.clone();
        tasks.push(tokio::spawn(tdfs_hdfs_rpc::datanode::run(
            l,
            access,
            dtp,
            async move { sd.wait().await },
        )));
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
    tasks.push(tokio::spawn(fan_out(
        ev_rx,
        change_rx,
        outs,
        events.clone(),
    )));
    let gossip = if cfg.gossip {
        let g = start_gossip(&cfg, store.datanode_id()).await?;
        let usage_of = store.clone();
        let g2 = g.usage_setter();
        let every = cfg.heartbeat;
        let mut sd = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                g2.set(usage_of.usage());
                tokio::select! {
                    _ = sd.wait() => return,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }));
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
    Ok(tdfs_gossip::start(gc).await?)
}

async fn fan_out(
    mut events: mpsc::UnboundedReceiver<StoreEvent>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    outs: Vec<mpsc::UnboundedSender<Change>>,
    bus: Arc<EventBus>,
) {
    loop {
        let c = tokio::select! {
            e = events.recv() => match e {
                Some(StoreEvent::Finalized(r)) => Change::Added(r),
                Some(StoreEvent::Quarantined { id, gen }) => Change::Corrupt(id, gen),
                None => return,
            },
            c = changes.recv() => match c { Some(c) => c, None => return },
        };
        let datanode = DatanodeId(bus.node().to_string());
        bus.publish(match &c {
            Change::Added(r) => EventKind::ReplicaFinalized {
                datanode,
                block: r.id,
                gen: r.gen,
            },
            Change::Removed(b, gen) => EventKind::ReplicaDeleted {
                datanode,
                block: *b,
                gen: *gen,
            },
            Change::Corrupt(b, gen) => EventKind::ReplicaQuarantined {
                datanode,
                block: *b,
                gen: *gen,
            },
        });
        for o in &outs {
            let _ = o.send(c.clone());
        }
    }
}

type MetaConn = RpcClient<Request, Response>;

async fn call(
    conn: &MetaConn,
    req: DatanodeRequest,
    timeout: Duration,
) -> Result<DatanodeResponse, FsError> {
    match conn.call(Request::Datanode(req), timeout).await {
        Ok(Response::Datanode(r)) => Ok(r),
        Ok(other) => Err(FsError::Protocol(format!("unexpected reply {other:?}"))),
        Err(e) => Err(e.into_fs()),
    }
}

/// Replicas per full-report page: a page stays far below the frame limit
/// (about 70 bytes a replica), and the metadata node applies one under its
/// soft-state lock in a few milliseconds (`tdfs-policy`'s `idle_leader`
/// example: 50,000-replica pages held it 32 ms at the median, 89 ms at most).
pub const REPORT_PAGE: usize = 10_000;

/// Sends the full report in pages of increasing block ids.
async fn full_report(
    conn: &MetaConn,
    id: &DatanodeId,
    store: &BlockStore,
    page_len: usize,
) -> Result<DatanodeResponse, FsError> {
    let mut blocks = store.replicas();
    blocks.sort_unstable_by_key(|r| r.id);
    // Sorted by block; each page carries those in its range.
    let quarantined = store.quarantined();
    let mut lo: BlockId = 0;
    let report: u64 = rand::random();
    let pages: Vec<&[ReplicaReport]> = if blocks.is_empty() {
        vec![&[]]
    } else {
        blocks.chunks(page_len.max(1)).collect()
    };
    let n = pages.len();
    let mut last_reply = DatanodeResponse::Ok;
    for (i, page) in pages.into_iter().enumerate() {
        let last = i + 1 == n;
        let hi = if last {
            u64::MAX
        } else {
            page.last().map_or(0, |r| r.id)
        };
        let in_range: Vec<(BlockId, u64)> = quarantined
            .iter()
            .filter(|(b, _)| (lo..=hi).contains(b))
            .copied()
            .collect();
        lo = hi.saturating_add(1);
        last_reply = call(
            conn,
            DatanodeRequest::FullReport {
                id: id.clone(),
                usage: store.usage(),
                report,
                page: i as u32,
                hi,
                last,
                blocks: page.to_vec(),
                quarantined: in_range,
            },
            Duration::from_secs(30),
        )
        .await?;
        if last_reply == DatanodeResponse::Reregister {
            break;
        }
    }
    Ok(last_reply)
}

/// Keeps one metadata node informed: registration and a full report, then
/// incremental reports as replicas change; starts over whenever the node
/// asks (`Reregister`, here or on the poller's connection).
async fn reporter(
    addr: String,
    cfg: DatanodeConfig,
    ctx: Arc<TransferCtx>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    resync: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let store = ctx.store.clone();
    let id = store.datanode_id().clone();
    let retry = Duration::from_millis(300);
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let conn = match MetaConn::connect_via(
            &cfg.connector,
            &addr,
            cfg.key.as_ref(),
            Duration::from_secs(2),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metadata node {addr} unreachable: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        };
        // Register and send everything; changes queued before the snapshot
        // of the inventory are covered by it.
        while changes.try_recv().is_ok() {}
        let registered = async {
            let reg = DatanodeRequest::Register {
                id: id.clone(),
                addr: cfg.addr.clone(),
                http: cfg.http.clone(),
                hdfs: cfg.hdfs.clone(),
            };
            call(&conn, reg, Duration::from_secs(10)).await?;
            full_report(&conn, &id, &store, cfg.report_page).await
        }
        .await;
        match registered {
            Ok(DatanodeResponse::Reregister) => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("registration with {addr} failed: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(retry) => continue,
                }
            }
        }
        tracing::info!("registered with metadata node {addr}");
        loop {
            let req = tokio::select! {
                _ = shutdown.wait() => return,
                _ = resync.notified() => break,
                c = changes.recv() => {
                    let Some(c) = c else { return };
                    let mut batch = vec![c];
                    while let Ok(c) = changes.try_recv() {
                        batch.push(c);
                    }
                    incremental(&id, batch)
                }
            };
            match call(&conn, req, Duration::from_secs(10)).await {
                Ok(DatanodeResponse::Reregister) => break,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("report to {addr} failed: {e}");
                    break;
                }
            }
        }
    }
}

fn incremental(id: &DatanodeId, batch: Vec<Change>) -> DatanodeRequest {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    let mut corrupt = Vec::new();
    for c in batch {
        match c {
            Change::Added(r) => added.push(r),
            Change::Removed(b, g) => removed.push((b, g)),
            Change::Corrupt(b, g) => corrupt.push((b, g)),
        }
    }
    DatanodeRequest::IncrementalReport {
        id: id.clone(),
        added,
        removed,
        corrupt,
    }
}

/// Holds one long poll at a metadata node for the leader's commands; asks
/// the reporter to start over when the node wants a fresh registration.
async fn poller(
    addr: String,
    cfg: DatanodeConfig,
    exec: Arc<Exec>,
    resync: Arc<Notify>,
    mut shutdown: Shutdown,
) {
    let id = exec.ctx.store.datanode_id().clone();
    let wait_ms = cfg.poll_wait.as_millis().min(u32::MAX as u128) as u32;
    let mut conn: Option<MetaConn> = None;
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let c = match conn.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => match MetaConn::connect_via(
                &cfg.connector,
                &addr,
                cfg.key.as_ref(),
                Duration::from_secs(2),
            )
            .await
            {
                Ok(c) => {
                    conn = Some(c.clone());
                    c
                }
                Err(_) => {
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            },
        };
        let req = DatanodeRequest::Poll {
            id: id.clone(),
            usage: exec.ctx.store.usage(),
            wait_ms,
        };
        let r = tokio::select! {
            _ = shutdown.wait() => return,
            r = call(&c, req, cfg.poll_wait + Duration::from_secs(10)) => r,
        };
        match r {
            Ok(DatanodeResponse::Commands { term, commands }) => exec.admit(term, commands).await,
            Ok(DatanodeResponse::Reregister) => {
                resync.notify_one();
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            Ok(DatanodeResponse::Ok) => {}
            Err(e) => {
                tracing::debug!("poll of {addr} failed: {e}");
                conn = None;
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}
