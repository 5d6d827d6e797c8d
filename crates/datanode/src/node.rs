//! The datanode daemon: serves the data-transfer protocol, and keeps every
//! metadata node informed — registration, a full block report at start and
//! whenever a metadata node asks (restart, new leader), incremental reports
//! after each replica is finalized or deleted, heartbeats with usage — and
//! runs the commands the leader hands back.

use crate::block_store::BlockStore;
use crate::scanner::ScanConfig;
use crate::transfer::{handle_stream, StoreEvent, TransferCtx};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::meta::{
    DatanodeCommand, DatanodeRequest, DatanodeResponse, ReplicaReport, Request, Response,
};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_rpc::{serve, ClusterKey, Handler, Peer, RpcClient, ServerConfig, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Settings of a running datanode.
#[derive(Clone, Debug)]
pub struct DatanodeConfig {
    /// Address clients and peers use to reach this node.
    pub addr: String,
    pub http: Option<String>,
    /// The DataTransferProtocol address announced to metadata nodes
    /// (`--hdfs-addr`; the server itself comes with the block store's
    /// restructuring).
    pub hdfs: Option<String>,
    /// Every metadata node (reports go to all of them).
    pub meta: Vec<String>,
    pub key: Option<ClusterKey>,
    /// How often usage is sent to each metadata node.
    pub heartbeat: Duration,
    /// Pace of the background integrity scanner.
    pub scan: ScanConfig,
    /// Join the gossip cluster (UDP on the port of `addr`).
    pub gossip: bool,
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
            scan: ScanConfig::default(),
            gossip: true,
        }
    }
}

/// A change to report incrementally.
#[derive(Clone, Debug)]
enum Change {
    Added(ReplicaReport),
    Removed(BlockId),
    Corrupt(BlockId),
}

/// A running datanode.
pub struct DatanodeHandle {
    pub id: DatanodeId,
    pub store: Arc<BlockStore>,
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
}

impl Handler<Request, Response> for DnService {
    async fn handle(&self, _peer: &Peer, req: Request) -> Result<Response, FsError> {
        match req {
            Request::Ping => Ok(Response::Pong { id: 0 }),
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
    if cfg.meta.is_empty() {
        anyhow::bail!("a datanode needs at least one metadata node (--meta)");
    }
    let (stop, shutdown) = Shutdown::new();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(TransferCtx {
        store: store.clone(),
        key: cfg.key.clone(),
        events: ev_tx,
    });
    let mut tasks = Vec::new();
    let server_config = ServerConfig {
        key: cfg.key.clone(),
        ..Default::default()
    };
    tasks.push(tokio::spawn(serve::<Request, Response, _>(
        listener,
        Arc::new(DnService { ctx: ctx.clone() }),
        server_config,
        shutdown.clone(),
    )));
    // Fan changes out to one reporter per metadata node.
    let (change_tx, change_rx) = mpsc::unbounded_channel::<Change>();
    let scan_tx = change_tx.clone();
    tasks.push(tokio::spawn(crate::scanner::run(
        store.clone(),
        cfg.scan,
        move |b| {
            let _ = scan_tx.send(Change::Corrupt(b));
        },
        shutdown.clone(),
    )));
    let mut outs = Vec::new();
    for addr in &cfg.meta {
        let (tx, rx) = mpsc::unbounded_channel();
        outs.push(tx);
        tasks.push(tokio::spawn(reporter(
            addr.clone(),
            cfg.clone(),
            ctx.clone(),
            rx,
            change_tx.clone(),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(fan_out(ev_rx, change_rx, outs)));
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
) {
    loop {
        let c = tokio::select! {
            e = events.recv() => match e {
                Some(StoreEvent::Finalized(r)) => Change::Added(r),
                None => return,
            },
            c = changes.recv() => match c { Some(c) => c, None => return },
        };
        for o in &outs {
            let _ = o.send(c.clone());
        }
    }
}

type MetaConn = RpcClient<Request, Response>;

async fn call(conn: &MetaConn, req: DatanodeRequest) -> Result<DatanodeResponse, FsError> {
    match conn
        .call(Request::Datanode(req), Duration::from_secs(10))
        .await
    {
        Ok(Response::Datanode(r)) => Ok(r),
        Ok(other) => Err(FsError::Protocol(format!("unexpected reply {other:?}"))),
        Err(e) => Err(e.into_fs()),
    }
}

/// Keeps one metadata node informed, re-registering whenever it asks.
async fn reporter(
    addr: String,
    cfg: DatanodeConfig,
    ctx: Arc<TransferCtx>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    change_tx: mpsc::UnboundedSender<Change>,
    mut shutdown: Shutdown,
) {
    let store = ctx.store.clone();
    let id = store.datanode_id().clone();
    loop {
        if shutdown.is_shutdown() {
            return;
        }
        let conn = match MetaConn::connect(&addr, cfg.key.as_ref(), Duration::from_secs(2)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metadata node {addr} unreachable: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => continue,
                }
            }
        };
        // Register and send everything; changes queued before the snapshot
        // of the inventory are covered by it.
        while changes.try_recv().is_ok() {}
        let registered = async {
            call(
                &conn,
                DatanodeRequest::Register {
                    id: id.clone(),
                    addr: cfg.addr.clone(),
                    http: cfg.http.clone(),
                    hdfs: cfg.hdfs.clone(),
                },
            )
            .await?;
            call(
                &conn,
                DatanodeRequest::FullReport {
                    id: id.clone(),
                    usage: store.usage(),
                    blocks: store.replicas(),
                },
            )
            .await
        }
        .await;
        match registered {
            Ok(DatanodeResponse::Ok { commands }) => execute(&ctx, commands, &change_tx),
            Ok(DatanodeResponse::Reregister) => continue,
            Err(e) => {
                tracing::debug!("registration with {addr} failed: {e}");
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(300)) => continue,
                }
            }
        }
        tracing::info!("registered with metadata node {addr}");
        let mut tick = tokio::time::interval(cfg.heartbeat);
        loop {
            let req = tokio::select! {
                _ = shutdown.wait() => return,
                _ = tick.tick() => DatanodeRequest::Heartbeat { id: id.clone(), usage: store.usage() },
                c = changes.recv() => {
                    let Some(c) = c else { return };
                    let mut batch = vec![c];
                    while let Ok(c) = changes.try_recv() {
                        batch.push(c);
                    }
                    incremental(&id, batch)
                }
            };
            match call(&conn, req).await {
                Ok(DatanodeResponse::Ok { commands }) => execute(&ctx, commands, &change_tx),
                Ok(DatanodeResponse::Reregister) => break,
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
            Change::Removed(b) => removed.push(b),
            Change::Corrupt(b) => corrupt.push(b),
        }
    }
    DatanodeRequest::IncrementalReport {
        id: id.clone(),
        added,
        removed,
        corrupt,
    }
}

/// Runs the leader's commands in the background (disk work off the reporter).
fn execute(
    ctx: &Arc<TransferCtx>,
    commands: Vec<DatanodeCommand>,
    changes: &mpsc::UnboundedSender<Change>,
) {
    for cmd in commands {
        let store = ctx.store.clone();
        let changes = changes.clone();
        if let DatanodeCommand::Replicate { block, targets } = cmd {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                match crate::transfer::replicate(&ctx, &block, &targets).await {
                    Ok(ack) => {
                        for s in ack.statuses.iter().filter(|s| s.result.is_err()) {
                            tracing::info!(
                                "copy of block {} to {} failed: {:?}",
                                block.id,
                                s.node,
                                s.result
                            );
                        }
                    }
                    Err(tdfs_proto::FsError::ChecksumMismatch { .. }) => {
                        // Our own replica is bad: drop it and say so.
                        tracing::warn!("block {} is corrupt here: deleting it", block.id);
                        let s = ctx.store.clone();
                        let id = block.id;
                        let _ = tokio::task::spawn_blocking(move || s.delete(id)).await;
                        let _ = changes.send(Change::Corrupt(block.id));
                    }
                    Err(e) => tracing::info!("copy of block {} failed: {e}", block.id),
                }
            });
            continue;
        }
        tokio::task::spawn_blocking(move || match cmd {
            DatanodeCommand::Delete { blocks } => {
                for (b, gen) in blocks {
                    if store.get(b).is_none_or(|r| r.gen > gen) {
                        continue;
                    }
                    match store.delete(b) {
                        Ok(_) => {
                            let _ = changes.send(Change::Removed(b));
                        }
                        Err(e) => tracing::warn!("deleting block {b}: {e}"),
                    }
                }
            }
            DatanodeCommand::Verify { blocks } => {
                for b in blocks {
                    match store.verify(b) {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("block {b} is corrupt: deleting the replica");
                            let _ = store.delete(b);
                            let _ = changes.send(Change::Corrupt(b));
                        }
                        Err(e) => tracing::warn!("verifying block {b}: {e}"),
                    }
                }
            }
            other => tracing::debug!("command not handled by this datanode yet: {other:?}"),
        });
    }
}
