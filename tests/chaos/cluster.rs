//! The cluster under test: `tdfs meta` and `tdfs datanode` processes, each in
//! its own network namespace (see [`Netns`]), each datanode on its own tmpfs
//! so that a disk can be filled without touching the machine's disk. One
//! more namespace, with no daemon, holds the workload's client sockets
//! ([`Cluster::client_runtime`]), so the nemesis can cut the workload from
//! a node while its own admin client and the checks (in the root
//! namespace, behind the bridge address) still reach it.

use super::netns::Netns;
use tdfs_testkit::procs::{tdfs_bin, wait_for};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_proto::meta::{AdminRequest, AdminResponse, ClusterReport};
use tdfs_testkit::disk::Tmpfs;

/// Every daemon listens on this port of its own address (TCP and UDP).
pub const PORT: u16 = 7000;
/// Size of each datanode's tmpfs.
const DISK: &str = "512m";

/// Timers of the metadata nodes: short so that faults resolve in seconds.
pub const META_FLAGS: &[&str] = &[
    "--heartbeat-ms",
    "50",
    "--election-min-ms",
    "150",
    "--election-max-ms",
    "300",
    "--stale-after-ms",
    "1500",
    "--dead-after-ms",
    "5000",
    "--lease-timeout-ms",
    "4000",
    "--superuser",
    "root",
    // Hash the namespace often, so that members which diverge raise the
    // consistency alarm within the run (the suite fails on it).
    "--hash-every",
    "200",
];

/// One daemon.
pub struct Proc {
    /// Index of its namespace in [`Netns`].
    pub net: usize,
    pub addr: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// Stopped with SIGSTOP.
    pub paused: bool,
    /// The test clock hook's file (`TDFS_CLOCK_FILE`): its wall-clock
    /// offset in ms, which the daemon polls.
    pub clock_file: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// kill -9, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }

    fn signal(&mut self, sig: &str) {
        if let Some(pid) = self.pid() {
            let st = Command::new("kill")
                .args([sig, &pid.to_string()])
                .status()
                .expect("run kill");
            assert!(st.success(), "kill {sig} {pid} failed");
        }
    }

    /// SIGUSR1: a daemon on the forgetful test disk starts forgetting
    /// unsynced writes (see `power.rs`).
    pub fn signal_usr1(&mut self) {
        self.signal("-USR1");
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.signal("-STOP");
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        if self.paused {
            self.signal("-CONT");
            self.paused = false;
        }
    }

    /// Sets the daemon's wall-clock offset (ms) through its clock file and,
    /// if it runs, waits (10 s deadline) until the daemon reports it applied.
    pub async fn set_clock(&self, offset_ms: i64) {
        let tmp = self.clock_file.with_extension("clock.tmp");
        std::fs::write(&tmp, offset_ms.to_string()).unwrap();
        std::fs::rename(&tmp, &self.clock_file).unwrap();
        if !self.is_running() || self.paused {
            return;
        }
        let mut applied = self.clock_file.clone().into_os_string();
        applied.push(".applied");
        let applied = PathBuf::from(applied);
        let what = format!("{} to apply clock offset {offset_ms} ms", self.addr);
        wait_for(&what, Duration::from_secs(10), || {
            let got = std::fs::read_to_string(&applied).ok();
            let ok = got.is_some_and(|s| s.trim() == offset_ms.to_string());
            std::future::ready(ok.then_some(()))
        })
        .await
    }
}

/// A runtime for the workload's tasks whose threads all live in the client
/// namespace; shut down (without blocking) on drop.
pub struct ClientRuntime(Option<tokio::runtime::Runtime>);

impl ClientRuntime {
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.as_ref().unwrap().spawn(f)
    }
}

impl Drop for ClientRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// A process of the cluster: metadata node or datanode, by index.
#[derive(Clone, Copy, Debug)]
pub enum Who {
    Meta(usize),
    Dn(usize),
}

/// Three metadata nodes and `n` datanodes.
pub struct Cluster {
    /// Metadata nodes; meta id = index + 1.
    pub metas: Vec<Proc>,
    pub dns: Vec<Proc>,
    /// Comma-separated metadata addresses (the datanodes' `--meta`).
    pub meta_list: String,
    peers: String,
    _disks: Vec<Tmpfs>,
    pub net: Netns,
    /// The namespace of the workload's clients (no daemon runs there).
    pub client_net: usize,
    /// Data directories and logs (removed at the end).
    _dir: tempfile::TempDir,
    /// `TDFS_BUGS` for every daemon; empty: inherited from this process.
    pub bugs: String,
    /// Extra environment of one metadata node's process (by index), e.g.
    /// `FAILPOINTS` for the deposed-leader fault; used when it is spawned.
    pub meta_env: BTreeMap<usize, Vec<(String, String)>>,
}

impl Cluster {
    pub fn start(datanodes: usize) -> Cluster {
        Cluster::start_with_bugs(datanodes, "")
    }

    /// [`Cluster::start`] with bug switches `bugs` on in every daemon.
    pub fn start_with_bugs(datanodes: usize, bugs: &str) -> Cluster {
        let net = Netns::create(3 + datanodes + 1);
        let dir = tempfile::tempdir().unwrap();
        let mk = |i: usize, name: String| Proc {
            net: i,
            addr: format!("{}:{PORT}", net.ip(i)),
            data_dir: dir.path().join(&name),
            log: dir.path().join(format!("{name}.log")),
            child: None,
            paused: false,
            clock_file: dir.path().join(format!("{name}.clock")),
        };
        let metas: Vec<Proc> = (0..3).map(|i| mk(i, format!("meta-{}", i + 1))).collect();
        let dns: Vec<Proc> = (0..datanodes)
            .map(|j| mk(3 + j, format!("dn-{j}")))
            .collect();
        let disks = dns
            .iter()
            .map(|d| Tmpfs::mount(&d.data_dir, DISK))
            .collect();
        let peers = metas
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{}={}", i + 1, m.addr))
            .collect::<Vec<_>>()
            .join(",");
        let meta_list = metas
            .iter()
            .map(|m| m.addr.clone())
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            metas,
            dns,
            meta_list,
            peers,
            _disks: disks,
            net,
            client_net: 3 + datanodes,
            _dir: dir,
            bugs: bugs.to_string(),
            meta_env: BTreeMap::new(),
        };
        for i in 0..3 {
            c.spawn_meta(i);
        }
        for j in 0..datanodes {
            c.spawn_dn(j);
        }
        c
    }

    /// A runtime (2 worker threads) whose every thread, workers and
    /// blocking pool alike, has entered the client namespace: tasks spawned
    /// on it open their connections from the client address.
    pub fn client_runtime(&self) -> ClientRuntime {
        let ns = self.net.ns(self.client_net).to_string();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(move || super::netns::enter_ns(&ns))
            .build()
            .expect("build the workload's runtime");
        ClientRuntime(Some(rt))
    }

    fn spawn(&self, net: usize, log: &Path, args: &[String], env: &[(String, String)]) -> Child {
        // The clock hook's file sits beside the log (see `Proc::clock_file`).
        let clock_file = log.with_extension("clock");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = Command::new("ip");
        if !self.bugs.is_empty() {
            cmd.env("TDFS_BUGS", &self.bugs);
        }
        // The stores run on the forgetful disk, writing through until the
        // PowerLoss fault arms it (power.rs).
        cmd.env("TDFS_TEST_DISK", super::power::TEST_DISK);
        cmd.args(["netns", "exec", self.net.ns(net), tdfs_bin()])
            .args(args)
            .env("RUST_LOG", "info,openraft=warn")
            .env("TDFS_CLOCK_FILE", clock_file)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn a daemon with ip netns exec")
    }

    /// Starts (or restarts) metadata node index `i` (id `i + 1`).
    pub fn spawn_meta(&mut self, i: usize) {
        let m = &self.metas[i];
        let mut args: Vec<String> = vec![
            "meta".into(),
            "--id".into(),
            (i + 1).to_string(),
            "--addr".into(),
            m.addr.clone(),
            "--data-dir".into(),
            m.data_dir.display().to_string(),
            "--peers".into(),
            self.peers.clone(),
        ];
        args.extend(META_FLAGS.iter().map(|s| s.to_string()));
        let env = self.meta_env.get(&i).cloned().unwrap_or_default();
        let child = self.spawn(m.net, &m.log, &args, &env);
        self.metas[i].child = Some(child);
    }

    /// Starts (or restarts) datanode `j` on its address and directory.
    pub fn spawn_dn(&mut self, j: usize) {
        let d = &self.dns[j];
        let args: Vec<String> = vec![
            "datanode".into(),
            "--addr".into(),
            d.addr.clone(),
            "--data-dir".into(),
            d.data_dir.display().to_string(),
            "--meta".into(),
            self.meta_list.clone(),
        ];
        let child = self.spawn(d.net, &d.log, &args, &[]);
        self.dns[j].child = Some(child);
    }

    pub fn proc_mut(&mut self, w: Who) -> &mut Proc {
        match w {
            Who::Meta(i) => &mut self.metas[i],
            Who::Dn(j) => &mut self.dns[j],
        }
    }

    pub fn meta_addrs(&self) -> Vec<String> {
        self.metas.iter().map(|m| m.addr.clone()).collect()
    }

    /// A client of the whole cluster with the given per-call deadline.
    pub fn client(&self, deadline: Duration) -> Arc<MetaClient> {
        self.client_of(self.meta_addrs(), deadline)
    }

    /// A client that only knows `addrs`.
    pub fn client_of(&self, addrs: Vec<String>, deadline: Duration) -> Arc<MetaClient> {
        let mut cfg = ClientConfig::new(addrs, "root");
        cfg.deadline = deadline;
        cfg.attempt_timeout = Duration::from_millis(1500);
        cfg.lease_renew = Duration::from_millis(1000);
        Arc::new(MetaClient::new(cfg).unwrap())
    }

    /// The leader every running, unpaused metadata node agrees on (index).
    pub async fn agreed_leader(&self, c: &MetaClient) -> Option<usize> {
        let mut leader = None;
        for m in self.metas.iter().filter(|m| m.is_running() && !m.paused) {
            let s = c.node_state(&m.addr).await.ok()?;
            let l = s.leader?;
            if leader.is_some_and(|x| x != l) {
                return None;
            }
            leader = Some(l);
        }
        let l = leader? as usize - 1;
        let s = c.node_state(&self.metas[l].addr).await.ok()?;
        (s.role == "leader").then_some(l)
    }

    pub async fn wait_leader(&self, c: &MetaClient, timeout: Duration) -> usize {
        wait_for("an agreed metadata leader", timeout, || {
            self.agreed_leader(c)
        })
        .await
    }

    pub async fn report(c: &MetaClient) -> Option<ClusterReport> {
        match c.admin(AdminRequest::Report).await.ok()? {
            AdminResponse::Report(r) => Some(r),
            _ => None,
        }
    }

    /// Waits until every metadata node agrees on a leader, every running one
    /// lists all 3 as voters (no learner), and every running datanode is
    /// live, registered and in service (`normal`); on timeout, dumps the
    /// logs and panics.
    pub async fn wait_settled(&self, c: &MetaClient, timeout: Duration) {
        let want: Vec<&str> = self
            .dns
            .iter()
            .filter(|d| d.is_running())
            .map(|d| d.addr.as_str())
            .collect();
        let r = super::verify::poll(timeout, Duration::from_millis(50), || async {
            let mut states = Vec::new();
            let mut members_back = true;
            for m in self.metas.iter().filter(|m| m.is_running()) {
                states.push(match c.node_state(&m.addr).await {
                    Ok(s) => {
                        members_back &= s.voters.len() == self.metas.len() && s.learners.is_empty();
                        format!(
                            "{}:{}/t{}/l{:?}/voters{:?}",
                            s.id,
                            s.role,
                            s.term,
                            s.leader,
                            s.voters.iter().map(|v| v.0).collect::<Vec<_>>()
                        )
                    }
                    Err(e) => format!("{}: {e}", m.addr),
                });
            }
            if self.agreed_leader(c).await.is_none() {
                return Err(format!("no agreed leader: {states:?}"));
            }
            if !members_back {
                return Err(format!("membership not back to 3 voters: {states:?}"));
            }
            let r = Self::report(c).await.ok_or("no datanode report")?;
            let live = want.iter().all(|a| {
                r.datanodes
                    .iter()
                    .any(|d| d.addr == *a && d.state == "live" && d.admin_state == "normal")
            });
            if live {
                Ok(())
            } else {
                let dns: Vec<String> = r
                    .datanodes
                    .iter()
                    .map(|d| format!("{}={}/{}", d.addr, d.state, d.admin_state))
                    .collect();
                Err(format!("datanodes not all live: {dns:?}"))
            }
        })
        .await;
        if let Err(e) = r {
            self.dump_logs(80);
            panic!("the cluster did not settle within {timeout:?}: {e}");
        }
    }

    /// Names of the logs that contain a panic.
    pub fn panicked(&self) -> Vec<String> {
        self.logged("panicked")
            .into_iter()
            .map(|(log, _)| log)
            .collect()
    }

    /// The daemons whose log has a line containing `needle`, with the
    /// first such line.
    pub fn logged(&self, needle: &str) -> Vec<(String, String)> {
        self.metas
            .iter()
            .chain(&self.dns)
            .filter_map(|p| {
                let s = std::fs::read_to_string(&p.log).ok()?;
                let line = s.lines().find(|l| l.contains(needle))?;
                Some((p.log.display().to_string(), line.to_string()))
            })
            .collect()
    }

    /// The last lines of every daemon's log (for a failing run).
    pub fn dump_logs(&self, lines: usize) {
        for p in self.metas.iter().chain(&self.dns) {
            if let Ok(s) = std::fs::read_to_string(&p.log) {
                let all: Vec<&str> = s.lines().collect();
                let from = all.len().saturating_sub(lines);
                eprintln!("---- {} ----\n{}", p.log.display(), all[from..].join("\n"));
            }
        }
    }

    /// Copies every daemon's log out of the run directory (which is removed
    /// at the end) for a failing run; returns where.
    pub fn keep_logs(&self) -> PathBuf {
        let to = std::env::temp_dir().join(format!("tdfs-chaos-logs-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&to);
        for p in self.metas.iter().chain(&self.dns) {
            if let Some(name) = p.log.file_name() {
                let _ = std::fs::copy(&p.log, to.join(name));
            }
        }
        eprintln!("chaos: daemon logs kept in {}", to.display());
        to
    }

    /// Finalized replicas on datanode `j`'s disk: (block id, gen) → data file.
    pub fn replicas_on_disk(&self, j: usize) -> BTreeMap<(u64, u64), PathBuf> {
        let mut out = BTreeMap::new();
        let Ok(rd) = std::fs::read_dir(self.dns[j].data_dir.join("current")) else {
            return out;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_prefix("blk_")
                .and_then(|s| s.strip_suffix(".data"))
            else {
                continue;
            };
            let mut it = stem.split('_');
            if let (Some(Ok(id)), Some(Ok(gen))) =
                (it.next().map(str::parse), it.next().map(str::parse))
            {
                out.insert((id, gen), e.path());
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_logs();
        }
        for p in self.metas.iter_mut().chain(self.dns.iter_mut()) {
            p.kill();
        }
    }
}
