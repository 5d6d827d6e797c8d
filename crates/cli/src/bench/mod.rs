//! `tdfs bench`: throughput and latency against a live cluster.

use crate::opts::ClientOpts;
use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_client::MetaClient;
use tdfs_proto::meta::MetaRequest;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Metadata operations per second (like NNThroughputBenchmark).
    Meta(MetaBench),
    /// Leader failover time: kill -9 the leader of three local `tdfs meta`
    /// processes and time the first acknowledged write after it.
    Failover(FailoverBench),
    /// Write and read throughput (like TestDFSIO).
    Io(IoBench),
}

#[derive(Args)]
pub struct IoBench {
    /// Bytes per file (k/m/g suffixes accepted).
    #[arg(long, default_value = "1g")]
    size: String,
    /// Files written (and read) concurrently.
    #[arg(long, default_value_t = 1)]
    files: u64,
    #[arg(long)]
    replication: Option<u16>,
    /// Block size (k/m/g suffixes accepted).
    #[arg(long)]
    block_size: Option<String>,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    meta: Option<String>,
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
    #[arg(long)]
    user: Option<String>,
}

#[derive(Args)]
pub struct MetaBench {
    /// mkdir, create (create + close), stat or ls.
    #[arg(long)]
    op: String,
    /// Operations in total.
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    meta: Option<String>,
    #[arg(long)]
    cluster: Option<std::path::PathBuf>,
    #[arg(long)]
    user: Option<String>,
}

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Meta(b) => meta(b).await,
        BenchCmd::Failover(b) => failover(b).await,
        BenchCmd::Io(b) => io(b).await,
    }
}

async fn meta(b: MetaBench) -> anyhow::Result<()> {
    if !["mkdir", "create", "stat", "ls"].contains(&b.op.as_str()) {
        bail!("--op must be mkdir, create, stat or ls");
    }
    if b.concurrency == 0 || b.ops == 0 {
        bail!("--ops and --concurrency must be at least 1");
    }
    let c = client_of(&b.meta, &b.cluster, &b.user)?;
    let base = format!("/bench-{}-{:x}", b.op, rand_u32());
    c.mkdirs(&base, true).await?;
    // Targets for the read benchmarks: a small tree to stat and list.
    let fanout = 100u64;
    if b.op == "stat" || b.op == "ls" {
        for i in 0..fanout {
            c.mkdirs(&format!("{base}/d{i}"), false).await?;
        }
    }
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..b.concurrency {
        let c = c.clone();
        let next = next.clone();
        let base = base.clone();
        let op = b.op.clone();
        let total = b.ops;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                one_op(&c, &op, &base, i, fanout).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(b.ops as usize);
    for t in tasks {
        lat.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort();
    let pct = |p: f64| -> f64 {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    let ops_per_sec = b.ops as f64 / secs;
    let (p50, p99) = (pct(0.50), pct(0.99));
    if let Err(e) = c.delete(&base, true).await {
        eprintln!("tdfs: warning: could not clean up {base}: {e}");
    }
    if b.json {
        println!(
            "{}",
            json!({"op": b.op, "ops": b.ops, "concurrency": b.concurrency, "seconds": round3(secs),
                   "ops_per_sec": round3(ops_per_sec), "p50_ms": round3(p50), "p99_ms": round3(p99)})
        );
    } else {
        println!(
            "{}: {} ops, concurrency {}, {:.2} s: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
            b.op, b.ops, b.concurrency, secs, ops_per_sec, p50, p99
        );
    }
    Ok(())
}

async fn one_op(c: &MetaClient, op: &str, base: &str, i: u64, fanout: u64) -> anyhow::Result<()> {
    match op {
        "mkdir" => c.mkdirs(&format!("{base}/m{i}"), false).await?,
        "create" => c.create_empty(&format!("{base}/f{i}")).await?,
        "stat" => {
            c.stat(&format!("{base}/d{}", i % fanout)).await?;
        }
        _ => {
            c.meta(MetaRequest::ListStatus {
                path: base.to_string(),
                start_after: None,
                limit: 1000,
            })
            .await?;
        }
    }
    Ok(())
}

/// A client from a benchmark's `--meta`, `--cluster` and `--user`.
fn client_of(
    meta: &Option<String>,
    cluster: &Option<std::path::PathBuf>,
    user: &Option<String>,
) -> anyhow::Result<Arc<MetaClient>> {
    ClientOpts {
        meta: meta.clone(),
        cluster: cluster.clone(),
        user: user.clone(),
        ..Default::default()
    }
    .client()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

#[derive(Args)]
pub struct FailoverBench {
    /// Leader kills to measure.
    #[arg(long, default_value_t = 10)]
    kills: u32,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
}

/// A metadata node process started by the failover benchmark.
struct Proc {
    child: std::process::Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_meta(id: u64, addr: &str, dir: &std::path::Path, peers: &str) -> anyhow::Result<Proc> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("meta-{id}.log")))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "meta",
            "--id",
            &id.to_string(),
            "--addr",
            addr,
            "--peers",
            peers,
        ])
        .arg("--data-dir")
        .arg(dir.join(format!("meta-{id}")))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    Ok(Proc { child })
}

/// Starts three `tdfs meta` processes, then repeatedly kills the leader with
/// SIGKILL while a writer runs; measures kill → first acknowledged write, and
/// checks that no acknowledged write was lost.
async fn failover(b: FailoverBench) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use tdfs_client::{ClientConfig, MetaClient};
    let dir = tempfile_dir()?;
    let mut addrs = BTreeMap::new();
    for id in 1..=3u64 {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        addrs.insert(id, l.local_addr()?.to_string());
    }
    let peers = addrs
        .iter()
        .map(|(i, a)| format!("{i}={a}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut procs = BTreeMap::new();
    for (id, a) in &addrs {
        procs.insert(*id, spawn_meta(*id, a, &dir, &peers)?);
    }
    let mut cfg = ClientConfig::new(
        addrs.values().cloned().collect(),
        tdfs_meta_raft::config::current_user(),
    );
    cfg.deadline = Duration::from_secs(30);
    cfg.attempt_timeout = Duration::from_millis(500);
    let c = MetaClient::new(cfg)?;
    let mut acked: u64 = 0;
    c.mkdirs("/failover", true).await?;
    let mut samples = Vec::new();
    for k in 0..b.kills {
        // Warm: writes flow and every node has caught up.
        for _ in 0..20 {
            c.mkdirs(&format!("/failover/w{acked}"), false).await?;
            acked += 1;
        }
        let leader = leader_of(&c, &addrs).await?;
        procs.remove(&leader); // SIGKILL
        let t0 = Instant::now();
        // The client retries across the failover within its deadline.
        if let Err(e) = c.mkdirs(&format!("/failover/w{acked}"), false).await {
            bail!("write failed across failover {k}: {e}");
        }
        acked += 1;
        samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        procs.insert(leader, spawn_meta(leader, &addrs[&leader], &dir, &peers)?);
        wait_caught_up(&c, &addrs).await?;
    }
    let listed = c.list("/failover").await?.len() as u64;
    let lost = acked.saturating_sub(listed);
    let mut sorted = samples.clone();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = sorted[sorted.len() / 2];
    let p90 = sorted[((sorted.len() as f64 * 0.9) as usize).min(sorted.len() - 1)];
    let max = *sorted.last().unwrap();
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
    if b.json {
        println!(
            "{}",
            json!({"kills": b.kills, "median_ms": round3(median), "p90_ms": round3(p90),
                   "max_ms": round3(max), "samples_ms": samples.iter().map(|s| round3(*s)).collect::<Vec<_>>(),
                   "acked_writes": acked, "lost_writes": lost})
        );
    } else {
        println!(
            "{} leader kills: kill -9 → first acknowledged write median {median:.0} ms, p90 {p90:.0} ms, max {max:.0} ms; {acked} acknowledged writes, {lost} lost",
            b.kills
        );
    }
    if lost > 0 {
        bail!("{lost} acknowledged writes were lost");
    }
    Ok(())
}

async fn leader_of(
    c: &tdfs_client::MetaClient,
    addrs: &std::collections::BTreeMap<u64, String>,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        for a in addrs.values() {
            if let Ok(s) = c.node_state(a).await {
                if s.role == "leader" {
                    return Ok(s.id);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("no leader within 20 s")
}

async fn wait_caught_up(
    c: &tdfs_client::MetaClient,
    addrs: &std::collections::BTreeMap<u64, String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let mut states = Vec::new();
        for a in addrs.values() {
            if let Ok(s) = c.node_state(a).await {
                states.push(s);
            }
        }
        if states.len() == addrs.len() {
            let top = states.iter().map(|s| s.applied_index).max().unwrap_or(0);
            let leader = states.iter().find(|s| s.role == "leader").map(|s| s.id);
            if leader.is_some()
                && states
                    .iter()
                    .all(|s| s.applied_index == top && s.leader == leader)
            {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the restarted node did not catch up within 30 s")
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("tdfs-failover-{:x}", rand_u32()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Writes `files` files of `size` bytes concurrently, then reads them back
/// (verifying every chunk's CRC32C); reports MB/s (10^6 bytes) of file data.
async fn io(b: IoBench) -> anyhow::Result<()> {
    use tdfs_client::{read_range, CreateOptions, FileWriter};
    let size = crate::conf::parse_size(&b.size)?;
    let block_size = b
        .block_size
        .as_deref()
        .map(crate::conf::parse_size)
        .transpose()?;
    if b.files == 0 {
        bail!("--files must be at least 1");
    }
    let c = client_of(&b.meta, &b.cluster, &b.user)?;
    let base = format!("/bench-io-{:x}", rand_u32());
    c.mkdirs(&base, true).await?;
    // A pseudo-random pattern (not compressible, not all zeros).
    let mut pattern = vec![0u8; 4 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in pattern.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let pattern = Arc::new(pattern);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..b.files {
        let c = c.clone();
        let p = format!("{base}/f{i}");
        let pattern = pattern.clone();
        let o = CreateOptions {
            overwrite: true,
            replication: b.replication,
            block_size,
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move {
            let mut w = FileWriter::create(c, &p, o).await?;
            let mut left = size;
            while left > 0 {
                let n = left.min(pattern.len() as u64) as usize;
                w.write(&pattern[..n]).await?;
                left -= n as u64;
            }
            w.close().await?;
            Ok::<_, tdfs_proto::FsError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let write_secs = started.elapsed().as_secs_f64();
    let replication = c.stat(&format!("{base}/f0")).await?.replication;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..b.files {
        let c = c.clone();
        let p = format!("{base}/f{i}");
        tasks.push(tokio::spawn(async move {
            let mut sink = tokio::io::sink();
            read_range(&c, &p, 0, size, &mut sink).await
        }));
    }
    let mut read_bytes = 0;
    for t in tasks {
        read_bytes += t.await??;
    }
    let read_secs = started.elapsed().as_secs_f64();
    let total = size * b.files;
    if read_bytes != total {
        bail!("read {read_bytes} bytes back, expected {total}");
    }
    let _ = c.delete(&base, true).await;
    let (w, r) = (
        total as f64 / 1e6 / write_secs,
        total as f64 / 1e6 / read_secs,
    );
    if b.json {
        println!(
            "{}",
            json!({"bytes": total, "files": b.files, "replication": replication,
                   "write_mb_s": round3(w), "read_mb_s": round3(r),
                   "write_seconds": round3(write_secs), "read_seconds": round3(read_secs)})
        );
    } else {
        println!(
            "io: {} files x {} bytes: write {w:.1} MB/s ({write_secs:.2} s), read {r:.1} MB/s ({read_secs:.2} s)",
            b.files, size
        );
    }
    Ok(())
}
