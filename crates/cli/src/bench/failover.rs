//! `tdfs bench failover`: kill -9 the leader of three local `tdfs meta`
//! processes and time the first acknowledged write after it.

use super::{rand_u32, round3};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::time::{Duration, Instant};

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
pub(super) async fn run(b: FailoverBench) -> anyhow::Result<()> {
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
