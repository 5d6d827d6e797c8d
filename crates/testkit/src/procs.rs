//! Test kit for end-to-end tests over real processes: start `tdfs meta`
//! daemons, kill -9 and restart them, and wait on conditions with deadlines.
//!
//! The processes run the root package's `tdfs` binary ([`tdfs_bin`]), which
//! cargo builds for that package's integration tests (`tests/` at the
//! workspace root), where these helpers are used.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_proto::meta::NodeState;

/// The `tdfs` binary under test: `TDFS_BIN` if set, else `tdfs` in the
/// directory above the running test binary's (cargo puts an integration
/// test in `target/<profile>/deps/` and the root package's binaries, built
/// for its integration tests, in `target/<profile>/`). Panics if it is not
/// there.
pub fn tdfs_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let path = match std::env::var_os("TDFS_BIN") {
            Some(p) => PathBuf::from(p),
            None => {
                let exe = std::env::current_exe().expect("the running test binary's path");
                exe.parent()
                    .and_then(Path::parent)
                    .unwrap_or_else(|| panic!("{} has no grandparent directory", exe.display()))
                    .join("tdfs")
            }
        };
        assert!(
            path.is_file(),
            "the tdfs binary is not at {}: run the test with `cargo test` in the root \
             package (which builds it beside target/<profile>/deps), or set TDFS_BIN",
            path.display()
        );
        path.into_os_string()
            .into_string()
            .expect("the tdfs binary's path is UTF-8")
    })
}

/// Declares that this test corrupts replicas on purpose: the datanodes'
/// warnings about them (a local fault: their disk's bytes) are expected.
pub fn expect_corrupt_replicas() {
    for p in ["fails verification", "quarantin", "is corrupt"] {
        crate::log::allow_local(p);
    }
}

/// The Python of a venv `target/tmp/NAME` holding `packages` (pip
/// specifiers), created and installed on first use; later runs reuse it
/// (`.installed` marks a finished install).
pub async fn pip_venv(name: &str, packages: &[&str]) -> std::path::PathBuf {
    use tokio::process::Command;
    let venv = crate::paths::target_tmp().join(name);
    let py = venv.join("bin/python");
    let ready = venv.join(".installed");
    if !ready.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await
            .expect("python3 runs");
        assert!(ok.success(), "python3 -m venv {name} failed");
        let out = Command::new(&py)
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages)
            .output()
            .await
            .expect("pip runs");
        assert!(
            out.status.success(),
            "pip install {packages:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, b"ok").unwrap();
    }
    py
}

/// Polls `f` until it returns `Some` or the deadline passes
/// ([`crate::wait`], the one wait the tests share).
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    crate::wait::wait_for_async(what, timeout, f).await
}

/// Reserves `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Raft timers of the test metadata processes: short, so that elections
/// finish in well under a second.
pub const FAST_RAFT: &[&str] = &[
    "--heartbeat-ms",
    "50",
    "--election-min-ms",
    "150",
    "--election-max-ms",
    "300",
];

/// Three (or more) `tdfs meta` processes.
pub struct MetaProcs {
    pub dir: tempfile::TempDir,
    pub addrs: BTreeMap<u64, String>,
    pub procs: BTreeMap<u64, Child>,
    pub peers: String,
    /// Extra flags for every `tdfs meta` (timers in tests).
    pub extra: Vec<String>,
    /// Extra environment of one node's process (e.g. `FAILPOINTS`).
    pub env: BTreeMap<u64, Vec<(String, String)>>,
    /// Each node's `--hdfs-addr`, when it serves HDFS RPC.
    pub hdfs: BTreeMap<u64, String>,
}

impl MetaProcs {
    pub fn start(n: u64) -> Self {
        Self::start_with(n, &[])
    }

    /// Like [`start_with`](Self::start_with), every node also serving HDFS
    /// RPC on an `--hdfs-addr` of its own (see [`hdfs`](Self::hdfs)).
    pub fn start_hdfs(n: u64, extra: &[&str]) -> Self {
        let ports = free_ports(n as usize);
        let hdfs = (1..=n)
            .map(|i| (i, format!("127.0.0.1:{}", ports[i as usize - 1])))
            .collect();
        Self::start_inner(n, extra, hdfs)
    }

    /// Like [`start`](Self::start) with extra `tdfs meta` flags.
    pub fn start_with(n: u64, extra: &[&str]) -> Self {
        Self::start_inner(n, extra, BTreeMap::new())
    }

    fn start_inner(n: u64, extra: &[&str], hdfs: BTreeMap<u64, String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(n as usize);
        let addrs: BTreeMap<u64, String> = (1..=n)
            .map(|i| (i, format!("127.0.0.1:{}", ports[i as usize - 1])))
            .collect();
        let peers = addrs
            .iter()
            .map(|(i, a)| format!("{i}={a}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut m = MetaProcs {
            dir,
            addrs,
            procs: BTreeMap::new(),
            peers,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            hdfs,
        };
        for i in 1..=n {
            m.spawn(i);
        }
        m
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("meta-{id}"))
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("meta-{id}.log"))
    }

    /// Starts (or restarts) node `id` on its address and data directory.
    pub fn spawn(&mut self, id: u64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let child = Command::new(tdfs_bin())
            .args(["meta", "--id", &id.to_string(), "--addr", &self.addrs[&id]])
            .arg("--data-dir")
            .arg(self.data_dir(id))
            .args(["--peers", &self.peers, "--superuser", "root"])
            .args(FAST_RAFT)
            .args(&self.extra)
            .args(
                self.hdfs
                    .get(&id)
                    .into_iter()
                    .flat_map(|a| ["--hdfs-addr", a.as_str()]),
            )
            .env("RUST_LOG", "info,openraft=warn")
            .envs(self.env.get(&id).into_iter().flatten().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tdfs meta");
        self.procs.insert(id, child);
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.procs.remove(&id) {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// The exit status of node `id`'s process, if it has exited.
    pub fn try_wait(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        self.procs.get_mut(&id)?.try_wait().ok().flatten()
    }

    pub fn addr_list(&self) -> Vec<String> {
        self.addrs.values().cloned().collect()
    }

    pub fn client(&self, user: &str) -> MetaClient {
        let mut cfg = ClientConfig::new(self.addr_list(), user);
        cfg.deadline = Duration::from_secs(20);
        cfg.attempt_timeout = Duration::from_secs(2);
        MetaClient::new(cfg).unwrap()
    }

    /// The node states of every live process.
    pub async fn states(&self, c: &MetaClient) -> BTreeMap<u64, NodeState> {
        let mut out = BTreeMap::new();
        for id in self.procs.keys() {
            if let Ok(s) = c.node_state(&self.addrs[id]).await {
                out.insert(*id, s);
            }
        }
        out
    }

    /// Waits for a leader that every live node agrees on; returns its id.
    pub async fn wait_leader(&self, c: &MetaClient, timeout: Duration) -> u64 {
        wait_for("an agreed leader", timeout, || async {
            let states = self.states(c).await;
            if states.len() < self.procs.len() {
                return None;
            }
            let leader = states.values().find(|s| s.role == "leader")?.id;
            states
                .values()
                .all(|s| s.leader == Some(leader))
                .then_some(leader)
        })
        .await
    }

    /// Prints each node's log (for a failing test).
    pub fn dump_logs(&self) {
        for id in self.addrs.keys() {
            if let Ok(s) = std::fs::read_to_string(self.log_path(*id)) {
                eprintln!("---- meta-{id} log ----\n{s}");
            }
        }
    }

    /// Whether any node logged a panic.
    pub fn panicked(&self) -> bool {
        self.addrs.keys().any(|id| {
            std::fs::read_to_string(self.log_path(*id))
                .map(|s| s.contains("panicked"))
                .unwrap_or(false)
        })
    }
}

impl Drop for MetaProcs {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.procs) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failed test's daemon logs, or every test's with TDFS_TEST_LOGS.
        if std::thread::panicking() || std::env::var_os("TDFS_TEST_LOGS").is_some() {
            print_log_tails(self.dir.path(), 80);
        }
    }
}

/// Prints the last `lines` lines of every `*.log` file in `dir` to stderr
/// (a failed test's only record of what its daemons did: the directory
/// goes with the test).
pub fn print_log_tails(dir: &std::path::Path, lines: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    for p in logs {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let from = all.len().saturating_sub(lines);
        eprintln!(
            "===== {} (last {} of {} lines)",
            p.display(),
            all.len() - from,
            all.len()
        );
        for l in &all[from..] {
            eprintln!("{l}");
        }
    }
}

/// Starts `tdfs local --data-dir DIR ARGS...` (as the superuser `root`) and
/// waits, at most 60 s, for its `ready` line.
pub fn spawn_local(dir: &std::path::Path, args: &[&str]) -> Child {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(tdfs_bin())
        .arg("local")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("USER", "root")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line == "ready" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("tdfs local did not print ready");
    child
}

/// Runs `tdfs` with arguments; returns (exit code, stdout, stderr).
pub fn run_tdfs(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(tdfs_bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run tdfs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
