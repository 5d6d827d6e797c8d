//! Helpers shared by the metadata-service integration tests: in-process
//! clusters on loopback ports, clients, and deadline-bounded waits.
//!
//! Every wait polls a condition with short sleeps until a deadline and fails
//! the test with a description of what never happened; nothing sleeps and
//! hopes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_meta_raft::{MetaConfig, MetaHandle, MetaNode};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{MetaRequest, MetaResponse, Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::{Connector, FaultNet};
use tdfs_rpc::{RpcClient, RpcError};
use tokio::net::TcpListener;

/// The superuser every test cluster is configured with.
pub const SUPERUSER: &str = "root";

pub type Client = RpcClient<Request, Response>;

/// Waits until `cond` holds, failing the test after `within`.
pub async fn wait_until(within: Duration, what: &str, cond: impl FnMut() -> bool) {
    crate::wait::wait_until(what, within, cond).await
}

/// Waits until `f` returns a value, failing the test after `within`.
pub async fn wait_for<T>(within: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    crate::wait::wait_for(what, within, f).await
}

/// A test configuration: fast timers, fsync on, superuser `root`.
pub fn test_config(id: u64, addr: &str, dir: &Path, peers: &BTreeMap<u64, String>) -> MetaConfig {
    let mut c = MetaConfig::new(id, addr.to_string(), dir.to_path_buf(), peers.clone());
    c.heartbeat_ms = 50;
    c.election_min_ms = 150;
    c.election_max_ms = 300;
    c.fsync = true;
    c.superuser = SUPERUSER.into();
    c
}

/// Binds `addr` again after its previous owner shut down (the port may take
/// a moment to be released).
pub async fn bind_again(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("cannot bind {addr} again: {e}"),
        }
    }
}

/// An in-process metadata cluster on loopback. Node ids are 1..=n; each node
/// has its own data directory, kept across restarts.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub addrs: BTreeMap<u64, String>,
    pub handles: BTreeMap<u64, MetaHandle>,
    /// The fault table in front of every node's connections.
    pub net: Arc<FaultNet>,
    /// Seeds the fault table and the nodes' random choices (printed).
    pub seed: u64,
    tweak: fn(&mut MetaConfig),
    /// Each node's in-memory disk (a disk that can lose power); empty: the
    /// real file system.
    pub disks: BTreeMap<u64, tdfs_disk::MemDisk>,
}

impl Cluster {
    /// Starts `n` founding nodes with the test configuration.
    pub async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, |_| {}).await
    }

    /// Starts `n` founding nodes; `tweak` adjusts every node's configuration
    /// (also on restarts).
    pub async fn start_with(n: u64, tweak: fn(&mut MetaConfig)) -> Cluster {
        Cluster::start_on(n, tweak, false).await
    }

    /// Starts `n` founding nodes, each on its own [`tdfs_disk::MemDisk`]
    /// (see [`Cluster::power_loss`]).
    pub async fn start_on_mem_disks(n: u64) -> Cluster {
        Cluster::start_on(n, |_| {}, true).await
    }

    async fn start_on(n: u64, tweak: fn(&mut MetaConfig), mem: bool) -> Cluster {
        crate::log::init();
        let root = tempfile::tempdir().unwrap();
        let mut listeners = BTreeMap::new();
        let mut addrs = BTreeMap::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.insert(id, l.local_addr().unwrap().to_string());
            listeners.insert(id, l);
        }
        let seed = tdfs_rpc::run_seed();
        let mut cluster = Cluster {
            root,
            addrs,
            handles: BTreeMap::new(),
            net: FaultNet::new(seed),
            seed,
            tweak,
            disks: BTreeMap::new(),
        };
        if mem {
            for id in 1..=n {
                cluster.disks.insert(id, tdfs_disk::MemDisk::new());
            }
        }
        for (id, a) in &cluster.addrs {
            cluster.net.name(a, &format!("meta-{id}"));
        }
        for (id, l) in listeners {
            let h = tdfs_meta_raft::start(cluster.config(id), l, cluster.seams(id))
                .await
                .unwrap();
            cluster.handles.insert(id, h);
        }
        cluster
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.root.path().join(format!("meta{id}"))
    }

    pub fn config(&self, id: u64) -> MetaConfig {
        let mut c = test_config(id, &self.addrs[&id], &self.data_dir(id), &self.addrs);
        (self.tweak)(&mut c);
        c
    }

    /// Node `id`'s seams: its connections go through the fault table.
    pub fn seams(&self, id: u64) -> tdfs_meta_raft::Seams {
        tdfs_meta_raft::Seams {
            connector: Connector::filtered(&format!("meta-{id}"), self.net.clone()),
            clock: Default::default(),
            random: tdfs_rpc::Random::seeded(self.seed ^ id),
            disk: match self.disks.get(&id) {
                Some(d) => d.shared(),
                None => tdfs_disk::real(),
            },
        }
    }

    /// Every node loses power at once: each memory disk forgets what was
    /// not synced, then the nodes are stopped (their disks already dead) and
    /// will restart on what survived.
    pub async fn power_loss(&mut self) {
        assert!(!self.disks.is_empty(), "power_loss needs memory disks");
        for d in self.disks.values() {
            d.crash();
        }
        self.stop_all().await;
        for d in self.disks.values_mut() {
            *d = d.restarted();
        }
    }

    /// Cuts node `node` off from each of `others` (both ways).
    pub fn isolate(&self, node: u64, others: &[u64]) {
        let o: Vec<String> = others.iter().map(|i| format!("meta-{i}")).collect();
        self.net.partition(&[format!("meta-{node}")], &o);
    }

    pub fn node(&self, id: u64) -> &Arc<MetaNode> {
        &self.handles[&id].node
    }

    /// Ids of the running nodes.
    pub fn live(&self) -> Vec<u64> {
        self.handles.keys().copied().collect()
    }

    /// Shuts one node down (its data directory stays).
    pub async fn stop(&mut self, id: u64) {
        let h = self.handles.remove(&id).expect("node is running");
        h.shutdown().await;
    }

    /// Restarts a stopped node on its old address and data directory.
    pub async fn restart(&mut self, id: u64) {
        assert!(!self.handles.contains_key(&id), "node {id} is running");
        let l = bind_again(&self.addrs[&id]).await;
        let h = tdfs_meta_raft::start(self.config(id), l, self.seams(id))
            .await
            .unwrap();
        self.handles.insert(id, h);
    }

    pub async fn stop_all(&mut self) {
        for id in self.live() {
            self.stop(id).await;
        }
    }

    /// The leader of the nodes `among`: a node in state leader that every
    /// node of `among` follows, with an initialized namespace.
    pub fn agreed_leader(&self, among: &[u64]) -> Option<u64> {
        let first = self
            .node(among[0])
            .raft()
            .metrics()
            .borrow()
            .current_leader?;
        if !among.contains(&first) {
            return None;
        }
        for id in among {
            let m = self.node(*id).raft().metrics().borrow().clone();
            if m.current_leader != Some(first) {
                return None;
            }
        }
        let l = self.node(first);
        let m = l.raft().metrics().borrow().clone();
        let ready =
            m.state == openraft::ServerState::Leader && l.inspect(|ns, _| ns.is_initialized());
        ready.then_some(first)
    }

    /// Waits for a leader that all of `among` agree on.
    pub async fn wait_leader(&self, among: &[u64], within: Duration) -> u64 {
        wait_for(within, &format!("a leader agreed on by {among:?}"), || {
            self.agreed_leader(among)
        })
        .await
    }

    pub async fn client(&self, id: u64) -> Client {
        connect(&self.addrs[&id]).await
    }

    /// Sends a mutation to whichever node of `among` leads, retrying with the
    /// same call id (so at most once) on NotLeader, Unavailable and transport
    /// errors until `within` runs out. Returns the first definitive answer.
    pub async fn write(
        &self,
        among: &[u64],
        call: CallId,
        op: MetaRequest,
        within: Duration,
    ) -> Result<MetaResponse, FsError> {
        let deadline = Instant::now() + within;
        let mut last = String::from("no leader");
        while Instant::now() < deadline {
            let leader = among
                .iter()
                .copied()
                .find(|id| self.handles.contains_key(id) && self.node(*id).is_leader());
            if let Some(id) = leader {
                match Client::connect(&self.addrs[&id], None, Duration::from_secs(1)).await {
                    Ok(c) => match meta(&c, Some(call), op.clone(), Duration::from_secs(3)).await {
                        Ok(r) => return Ok(r),
                        Err(RpcError::Remote(e)) if !e.is_retriable() => return Err(e),
                        Err(e) => last = e.to_string(),
                    },
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("write {op:?} ({call:?}) got no definitive answer within {within:?}: {last}");
    }

    /// `mkdir -p` through the leader of `among`; panics unless it succeeds.
    pub async fn mkdir(&self, among: &[u64], call: CallId, path: &str) {
        let r = self
            .write(among, call, mkdirs(path, true), Duration::from_secs(10))
            .await;
        assert!(
            matches!(r, Ok(MetaResponse::Bool(true))),
            "mkdir {path}: {r:?}"
        );
    }

    /// Stops every node; a warning the run logged that blames this process
    /// (or names no fault) fails the test here.
    pub async fn shutdown(mut self) {
        self.stop_all().await;
        crate::log::assert_no_local_faults();
    }
}

/// Connects a plain (keyless) client.
pub async fn connect(addr: &str) -> Client {
    Client::connect(addr, None, Duration::from_secs(2))
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// One namespace call as the superuser.
pub async fn meta(
    c: &Client,
    call: Option<CallId>,
    op: MetaRequest,
    timeout: Duration,
) -> Result<MetaResponse, RpcError> {
    let req = Request::Meta {
        user: SUPERUSER.into(),
        call,
        op,
    };
    match c.call(req, timeout).await? {
        Response::Meta(r) => Ok(r),
        other => panic!("unexpected reply {other:?}"),
    }
}

pub fn mkdirs(path: &str, parents: bool) -> MetaRequest {
    MetaRequest::Mkdirs {
        path: path.into(),
        mode: None,
        parents,
    }
}

/// Whether `node`'s applied state has a directory at `path`.
pub fn has_dir(node: &MetaNode, path: &str) -> bool {
    node.inspect(|ns, _| ns.stat(SUPERUSER, path).is_ok_and(|s| s.is_dir()))
}

/// Whether `node`'s applied state has anything at `path`.
pub fn exists(node: &MetaNode, path: &str) -> bool {
    node.inspect(|ns, _| ns.stat(SUPERUSER, path).is_ok())
}

/// The paths of `paths` missing from `node`'s applied state.
pub fn missing<'a>(node: &MetaNode, paths: &'a [String]) -> Vec<&'a str> {
    paths
        .iter()
        .filter(|p| !has_dir(node, p))
        .map(|p| p.as_str())
        .collect()
}

/// A client id unlikely to collide with any other test's.
pub fn client_id() -> u64 {
    rand::random()
}

/// Writes `paths` as `mkdir -p` through the leader of `among`, `parallel` at
/// a time, each with its own call id of `client`.
pub async fn mkdir_all(
    cluster: &Cluster,
    among: &[u64],
    client: u64,
    first_seq: u64,
    paths: &[String],
    parallel: usize,
) {
    for (chunk_no, chunk) in paths.chunks(parallel).enumerate() {
        let futs = chunk.iter().enumerate().map(|(i, p)| {
            let seq = first_seq + (chunk_no * parallel + i) as u64;
            cluster.mkdir(among, CallId { client, seq }, p)
        });
        join_all(futs).await;
    }
}

/// Runs futures concurrently on the current task.
pub async fn join_all<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}

/// Snapshots node `id` and purges its log up to the snapshot, so that a
/// member behind it can only catch up from the snapshot. Returns the purge
/// point, at least the index applied when this was called.
pub async fn snapshot_and_purge(cluster: &Cluster, id: u64) -> u64 {
    let node = cluster.node(id).clone();
    let snap = snapshot_now(&node, Duration::from_secs(5)).await;
    node.raft().trigger().purge_log(snap).await.unwrap();
    wait_for(Duration::from_secs(5), "the purge", || {
        let m = node.raft().metrics().borrow().clone();
        m.purged.map(|l| l.index).filter(|&p| p >= snap)
    })
    .await
}

/// Has `node` snapshot everything it has applied and returns the
/// snapshot's index. openraft ignores a trigger while a snapshot is being
/// built, and the node's own policy may have started one just before (at
/// an older index), so the request is repeated until a snapshot covers
/// the applied index.
pub async fn snapshot_now(node: &MetaNode, within: Duration) -> u64 {
    let applied = node.applied_index();
    let what = format!("node {} to snapshot at {applied}", node.id());
    crate::wait::wait_for_async(&what, within, || async {
        let m = node.raft().metrics().borrow().clone();
        if let Some(s) = m.snapshot.map(|l| l.index).filter(|&s| s >= applied) {
            return Some(s);
        }
        node.raft().trigger().snapshot().await.unwrap();
        None
    })
    .await
}

/// Snapshots every 50 entries (a `Cluster::start_with` tweak).
pub fn snapshot_often(c: &mut MetaConfig) {
    c.snapshot_logs = 50;
}

/// `PREFIX000`, `PREFIX001`, ... for `range`.
pub fn paths(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:03}")).collect()
}

/// Runs test `name` of this test binary again in a child process with bug
/// switch `bug` on (a switch is read once per process); returns whether it
/// passed and everything it printed.
pub fn run_self_with_bug(name: &str, bug: tdfs_meta_raft::bugs::Bug) -> (bool, String) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("TDFS_BUGS", bug.name())
        .output()
        .expect("run this test binary again");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
