//! A whole cluster in one process on loopback — metadata nodes and
//! datanodes on the same code paths as the daemons — for `tdfs local`, demos
//! and tests. Nodes can be stopped and restarted on their addresses and data
//! directories; metadata links can be cut through each node's fault table.

pub mod http;

use anyhow::Context;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
pub mod hadoop_conf;

use tdfs_client::{ClientConfig, MetaClient};
use tdfs_datanode::block_store::{BlockStore, StoreConfig};
use tdfs_datanode::node::{DatanodeConfig, DatanodeHandle};
use tdfs_http::HttpServer;
use tdfs_meta_raft::config::MetaConfig;
use tdfs_meta_raft::{MetaHandle, MetaNode};
use tdfs_proto::DatanodeId;
use tdfs_rpc::{ClusterKey, Connector, FaultNet};
use tokio::net::TcpListener;

/// Adjusts a node's configuration before it starts.
pub type Tweak<T> = Arc<dyn Fn(&mut T) + Send + Sync>;

/// What to start.
#[derive(Clone)]
pub struct LocalConfig {
    pub dir: PathBuf,
    pub metas: usize,
    pub datanodes: usize,
    pub replication: u16,
    pub block_size: Option<u64>,
    /// fsync the Raft log and finalized blocks.
    pub fsync: bool,
    /// Capacity of each datanode (`None`: the disk's free space).
    pub datanode_capacity: Option<u64>,
    pub key: Option<ClusterKey>,
    /// Where `key` lives, recorded in `cluster.json` as `cluster_key_file`.
    pub key_file: Option<PathBuf>,
    /// Adjusts each metadata node's config (timeouts in tests).
    pub tweak_meta: Option<Tweak<MetaConfig>>,
    /// Adjusts each datanode's config.
    pub tweak_datanode: Option<Tweak<DatanodeConfig>>,
    /// Seeds the fault table's random drops and reorders and every node's
    /// random choices (placement); `TDFS_SEED` repeats a run.
    pub seed: u64,
    /// How long trashed files are kept, ms (0: trash off; `tdfs local`
    /// turns it on with a day, as HDFS's `fs.trash.interval` of 1440).
    pub trash_interval_ms: u64,
    /// Called once `shutdown` has stopped every node (tests check the
    /// warnings the run logged here).
    pub on_shutdown: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Limits of every node's HTTP server (tests shorten the timeouts).
    pub http_limits: tdfs_http::HttpLimits,
}

impl LocalConfig {
    pub fn new(dir: impl Into<PathBuf>, metas: usize, datanodes: usize) -> Self {
        LocalConfig {
            dir: dir.into(),
            metas,
            datanodes,
            replication: 3,
            block_size: None,
            fsync: true,
            datanode_capacity: None,
            key: None,
            key_file: None,
            tweak_meta: None,
            tweak_datanode: None,
            seed: tdfs_rpc::run_seed(),
            trash_interval_ms: 0,
            on_shutdown: None,
            http_limits: tdfs_http::HttpLimits::default(),
        }
    }
}

impl LocalConfig {
    /// Uses the cluster key in `DIR/cluster.key`, generating a random one
    /// (mode 0600) when the file does not exist yet.
    pub fn use_generated_key(&mut self) -> anyhow::Result<()> {
        let path = self.dir.join("cluster.key");
        if !path.exists() {
            std::fs::create_dir_all(&self.dir)
                .with_context(|| format!("cannot create {}", self.dir.display()))?;
            write_key_file(&path, &ClusterKey::generate_hex())?;
        }
        self.key = Some(ClusterKey::from_file(&path).map_err(anyhow::Error::msg)?);
        self.key_file = Some(path);
        Ok(())
    }
}

/// Binds a node's HTTP address again after a restart, or a fresh loopback
/// port when that one was taken meanwhile (HTTP addresses are re-announced
/// at registration and rewritten in `cluster.json`, unlike RPC addresses,
/// which peers know).
async fn bind_http(want: &str) -> std::io::Result<TcpListener> {
    match TcpListener::bind(want).await {
        Ok(l) => Ok(l),
        Err(e) if want.ends_with(":0") => Err(e),
        Err(e) => {
            tracing::info!("{want} is taken ({e}); using a new port for http");
            TcpListener::bind("127.0.0.1:0").await
        }
    }
}

/// Writes a key file readable by its owner only.
pub fn write_key_file(path: &Path, key: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(key.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// One datanode slot: its address and directory survive a stop.
pub struct DnSlot {
    pub addr: String,
    pub dir: PathBuf,
    pub id: Option<DatanodeId>,
    pub handle: Option<DatanodeHandle>,
    /// The HTTP address (`/metrics`, WebHDFS data), kept across restarts.
    pub http: Option<String>,
    pub http_server: Option<HttpServer>,
    /// The DataTransferProtocol address (Hadoop clients' xfer port), kept
    /// across restarts.
    pub hdfs: Option<String>,
}

/// A running in-process cluster.
pub struct LocalCluster {
    pub cfg: LocalConfig,
    pub meta_addrs: BTreeMap<u64, String>,
    pub metas: BTreeMap<u64, Option<MetaHandle>>,
    /// The fault table every node's connections go through: partition,
    /// isolate, cut one way, drop, delay and reorder links by node name
    /// (`meta-<id>`, a datanode's id, `client`).
    pub net: Arc<FaultNet>,
    pub datanodes: Vec<DnSlot>,
    /// Each metadata node's HTTP address (WebHDFS, status page, metrics).
    pub meta_http: BTreeMap<u64, String>,
    http_servers: BTreeMap<u64, HttpServer>,
    /// Each metadata node's HDFS IPC address (`hdfs://`, ClientNamenodeProtocol).
    pub meta_hdfs: BTreeMap<u64, String>,
    hdfs_servers: BTreeMap<u64, tdfs_hdfs_rpc::namenode::HdfsServer>,
    /// Each node's clock, by name, so a test can skew or jump one.
    pub clocks: BTreeMap<String, tdfs_rpc::Clock>,
}

/// What the `cluster.json` of a previous run says: the addresses a
/// restart binds again.
#[derive(Default, Deserialize)]
struct Previous {
    #[serde(default)]
    meta: Vec<PrevMeta>,
    #[serde(default)]
    datanodes: Vec<PrevDatanode>,
}

#[derive(Deserialize)]
struct PrevMeta {
    id: u64,
    addr: String,
    http: Option<String>,
    hdfs: Option<String>,
}

#[derive(Deserialize)]
struct PrevDatanode {
    addr: String,
    http: Option<String>,
    hdfs: Option<String>,
}

fn previous(dir: &Path) -> Previous {
    std::fs::read_to_string(dir.join("cluster.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

impl LocalCluster {
    /// Starts every node; reuses the addresses of a previous run in `dir`.
    pub async fn start(cfg: LocalConfig) -> anyhow::Result<Self> {
        if cfg.metas == 0 {
            anyhow::bail!("a cluster needs at least one metadata node");
        }
        std::fs::create_dir_all(&cfg.dir)
            .with_context(|| format!("cannot create {}", cfg.dir.display()))?;
        let prev = previous(&cfg.dir);
        let mut listeners = BTreeMap::new();
        let mut meta_addrs = BTreeMap::new();
        for id in 1..=cfg.metas as u64 {
            let want = prev
                .meta
                .iter()
                .find(|m| m.id == id)
                .map_or_else(|| "127.0.0.1:0".into(), |m| m.addr.clone());
            let l = TcpListener::bind(&want)
                .await
                .with_context(|| format!("cannot listen on {want} for metadata node {id}"))?;
            meta_addrs.insert(id, l.local_addr()?.to_string());
            listeners.insert(id, l);
        }
        let mut c = LocalCluster {
            cfg: cfg.clone(),
            meta_addrs,
            metas: BTreeMap::new(),
            net: FaultNet::new(cfg.seed),
            datanodes: Vec::new(),
            meta_http: prev
                .meta
                .iter()
                .filter_map(|m| Some((m.id, m.http.clone()?)))
                .collect(),
            http_servers: BTreeMap::new(),
            meta_hdfs: prev
                .meta
                .iter()
                .filter_map(|m| Some((m.id, m.hdfs.clone()?)))
                .collect(),
            hdfs_servers: BTreeMap::new(),
            clocks: BTreeMap::new(),
        };
        // Every node is named before any starts: a link opened to a node
        // not yet named would carry its address as the name, and no rule
        // naming the node would ever cut it.
        for (id, a) in &c.meta_addrs {
            c.net.name(a, &format!("meta-{id}"));
        }
        for (id, l) in listeners {
            c.start_meta_on(id, l).await?;
        }
        for i in 0..cfg.datanodes {
            let dir = cfg.dir.join(format!("dn-{}", i + 1));
            let want = prev
                .datanodes
                .get(i)
                .map_or_else(|| "127.0.0.1:0".into(), |d| d.addr.clone());
            c.datanodes.push(DnSlot {
                addr: want,
                dir,
                id: None,
                handle: None,
                http: prev.datanodes.get(i).and_then(|d| d.http.clone()),
                http_server: None,
                hdfs: prev.datanodes.get(i).and_then(|d| d.hdfs.clone()),
            });
            c.start_datanode(i).await?;
        }
        c.write_cluster_json()?;
        Ok(c)
    }

    fn meta_config(&self, id: u64) -> MetaConfig {
        let mut mc = MetaConfig::new(
            id,
            self.meta_addrs[&id].clone(),
            self.cfg.dir.join(format!("meta-{id}")),
            self.meta_addrs.clone(),
        );
        mc.defaults.replication = self.cfg.replication;
        if let Some(b) = self.cfg.block_size {
            mc.defaults.block_size = b;
        }
        mc.fsync = self.cfg.fsync;
        mc.key = self.cfg.key.clone();
        mc.trash_interval_ms = self.cfg.trash_interval_ms;
        if let Some(t) = &self.cfg.tweak_meta {
            t(&mut mc);
        }
        mc
    }

    async fn start_meta_on(&mut self, id: u64, l: TcpListener) -> anyhow::Result<()> {
        let name = format!("meta-{id}");
        self.net.name(&self.meta_addrs[&id], &name);
        let seams = tdfs_meta_raft::Seams {
            connector: Connector::filtered(&name, self.net.clone()),
            clock: self.clocks.entry(name).or_default().clone(),
            random: tdfs_rpc::Random::seeded(
                self.cfg.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            ..Default::default()
        };
        let want = self
            .meta_http
            .get(&id)
            .map_or("127.0.0.1:0", |s| s.as_str());
        let hl = bind_http(want)
            .await
            .with_context(|| format!("cannot listen on {want} (http of metadata node {id})"))?;
        let http = hl.local_addr()?.to_string();
        let mut mc = self.meta_config(id);
        mc.http = Some(http.clone());
        let want = self
            .meta_hdfs
            .get(&id)
            .map_or("127.0.0.1:0", |s| s.as_str());
        let nl = bind_http(want)
            .await
            .with_context(|| format!("cannot listen on {want} (hdfs of metadata node {id})"))?;
        let h = tdfs_meta_raft::start(mc, l, seams).await?;
        let server = http::start_meta_http(&h.node, hl, self.cfg.http_limits.clone())?;
        let hdfs = tdfs_hdfs_rpc::namenode::start(h.node.clone(), nl, Default::default())?;
        self.meta_http.insert(id, http);
        self.http_servers.insert(id, server);
        self.meta_hdfs.insert(id, hdfs.addr.to_string());
        self.hdfs_servers.insert(id, hdfs);
        self.metas.insert(id, Some(h));
        Ok(())
    }

    /// Restarts metadata node `id` on its address and data directory.
    pub async fn start_meta(&mut self, id: u64) -> anyhow::Result<()> {
        let l = TcpListener::bind(&self.meta_addrs[&id]).await?;
        self.start_meta_on(id, l).await?;
        // Its HTTP or HDFS port may have moved (taken meanwhile).
        self.write_cluster_json()
    }

    /// Stops metadata node `id` (its tasks end; its sockets close).
    pub async fn stop_meta(&mut self, id: u64) {
        if let Some(s) = self.http_servers.remove(&id) {
            s.stop().await;
        }
        if let Some(s) = self.hdfs_servers.remove(&id) {
            s.stop().await;
        }
        if let Some(Some(h)) = self.metas.insert(id, None) {
            h.shutdown().await;
        }
    }

    /// (Re)starts datanode slot `i` on its address and directory.
    pub async fn start_datanode(&mut self, i: usize) -> anyhow::Result<()> {
        let slot = &self.datanodes[i];
        let mut sc = StoreConfig::new(slot.dir.clone());
        sc.capacity = self.cfg.datanode_capacity;
        sc.fsync = self.cfg.fsync;
        let store = BlockStore::open(sc).map_err(|e| anyhow::anyhow!("datanode {}: {e}", i + 1))?;
        let l = TcpListener::bind(&slot.addr)
            .await
            .with_context(|| format!("cannot listen on {} for datanode {}", slot.addr, i + 1))?;
        let addr = l.local_addr()?.to_string();
        let want = slot.http.as_deref().unwrap_or("127.0.0.1:0");
        let hl = bind_http(want)
            .await
            .with_context(|| format!("cannot listen on {want} (http of datanode {})", i + 1))?;
        let http = hl.local_addr()?.to_string();
        let want = slot.hdfs.as_deref().unwrap_or("127.0.0.1:0");
        let nl = bind_http(want)
            .await
            .with_context(|| format!("cannot listen on {want} (hdfs of datanode {})", i + 1))?;
        let hdfs = nl.local_addr()?.to_string();
        let mut dc = DatanodeConfig::new(addr.clone(), self.meta_addrs.values().cloned().collect());
        dc.key = self.cfg.key.clone();
        dc.http = Some(http.clone());
        dc.hdfs = Some(hdfs.clone());
        let name = store.datanode_id().0.clone();
        // Its block streams are named like its RPC: the tdfs transfer
        // address is the RPC address, the HDFS one is its own port.
        self.net.name(&addr, &name);
        self.net.name(&hdfs, &name);
        dc.connector = Connector::filtered(&name, self.net.clone());
        dc.clock = self.clocks.entry(name).or_default().clone();
        if let Some(t) = &self.cfg.tweak_datanode {
            t(&mut dc);
        }
        let server =
            http::start_datanode_http(&dc, store.clone(), hl, self.cfg.http_limits.clone())?;
        let h = tdfs_datanode::node::start_with_hdfs(dc, store, l, Some(nl)).await?;
        let slot = &mut self.datanodes[i];
        slot.http = Some(http);
        slot.hdfs = Some(hdfs);
        slot.http_server = Some(server);
        slot.addr = addr;
        slot.id = Some(h.id.clone());
        slot.handle = Some(h);
        Ok(())
    }

    /// Adds a new, empty datanode; returns its slot.
    pub async fn add_datanode(&mut self) -> anyhow::Result<usize> {
        let i = self.datanodes.len();
        self.datanodes.push(DnSlot {
            addr: "127.0.0.1:0".into(),
            dir: self.cfg.dir.join(format!("dn-{}", i + 1)),
            id: None,
            handle: None,
            http: None,
            http_server: None,
            hdfs: None,
        });
        self.start_datanode(i).await?;
        self.write_cluster_json()?;
        Ok(i)
    }

    /// Stops datanode slot `i` abruptly: connections drop mid-stream.
    pub async fn stop_datanode(&mut self, i: usize) {
        if let Some(s) = self.datanodes[i].http_server.take() {
            s.stop().await;
        }
        if let Some(h) = self.datanodes[i].handle.take() {
            h.shutdown().await;
        }
    }

    /// Writes `cluster.json` in the data directory.
    pub fn write_cluster_json(&self) -> anyhow::Result<()> {
        let metas: Vec<_> = self
            .meta_addrs
            .iter()
            .map(|(id, a)| {
                json!({"id": id, "addr": a, "http": self.meta_http.get(id), "hdfs": self.meta_hdfs.get(id),
                       "data_dir": self.cfg.dir.join(format!("meta-{id}")).display().to_string()})
            })
            .collect();
        let dns: Vec<_> = self
            .datanodes
            .iter()
            .map(|d| {
                json!({"id": d.id.as_ref().map(|i| i.0.clone()), "addr": d.addr, "http": d.http, "hdfs": d.hdfs,
                       "data_dir": d.dir.display().to_string()})
            })
            .collect();
        let conf = hadoop_conf::write(&self.cfg.dir, &self.meta_hdfs)?;
        let mut doc = json!({"meta": metas, "datanodes": dns,
                             "hadoop_conf_dir": conf.display().to_string()});
        if let Some(k) = &self.cfg.key_file {
            doc["cluster_key_file"] = json!(k.display().to_string());
        }
        tdfs_meta_raft::log_store::write_atomic(
            &self.cfg.dir,
            "cluster.json",
            serde_json::to_string_pretty(&doc)?.as_bytes(),
        )?;
        Ok(())
    }

    /// The current leader, if any running node is leader.
    pub fn leader(&self) -> Option<Arc<MetaNode>> {
        self.metas
            .values()
            .flatten()
            .find(|h| h.node.is_leader())
            .map(|h| h.node.clone())
    }

    /// Waits for a leader with an initialized namespace that has every
    /// running datanode registered and fully reported.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let want: Vec<DatanodeId> = self
            .datanodes
            .iter()
            .filter(|d| d.handle.is_some())
            .filter_map(|d| d.id.clone())
            .collect();
        let mut missing = String::from("no leader");
        loop {
            if let Some(l) = self.leader() {
                let (init, unregistered, unreported) = l.inspect(|ns, v| {
                    let unregistered: Vec<&DatanodeId> = want
                        .iter()
                        .filter(|id| !ns.datanodes().contains_key(id))
                        .collect();
                    let unreported: Vec<&DatanodeId> = want
                        .iter()
                        .filter(|id| !v.nodes.by_id(id).is_some_and(|d| d.reported_this_term))
                        .collect();
                    (ns.is_initialized(), unregistered, unreported)
                });
                if init && unregistered.is_empty() && unreported.is_empty() {
                    return Ok(());
                }
                missing = format!(
                    "leader {}: initialized {init}, unregistered {unregistered:?}, no full report from {unreported:?}",
                    l.id()
                );
            }
            if Instant::now() >= deadline {
                anyhow::bail!("the cluster was not ready within {timeout:?}: {missing}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client of this cluster acting as `user`.
    pub fn client(&self, user: &str) -> Arc<MetaClient> {
        let mut cfg = ClientConfig::new(self.meta_addrs.values().cloned().collect(), user);
        cfg.key = self.cfg.key.clone();
        cfg.connector = Connector::filtered("client", self.net.clone());
        Arc::new(MetaClient::new(cfg).expect("addresses are set"))
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.datanodes.len() {
            self.stop_datanode(i).await;
        }
        let ids: Vec<u64> = self.metas.keys().copied().collect();
        for id in ids {
            self.stop_meta(id).await;
        }
        if let Some(f) = &self.cfg.on_shutdown {
            f();
        }
    }
}
