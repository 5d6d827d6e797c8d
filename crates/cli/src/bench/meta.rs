//! `tdfs bench meta`: metadata operations per second, like Hadoop's
//! NNThroughputBenchmark. Objects are spread over directories of
//! `--files-per-dir` entries under `/bench-OP-…`; what an operation needs to
//! exist first (files to open, stat, list, rename or delete; the parent
//! directories) is made before the clock starts.

use super::{client_of, rand_u32, round3};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_client::MetaClient;
use tdfs_proto::meta::MetaRequest;

/// Files made for the read benchmarks (`open`, `stat`, `ls`) at most; their
/// operations cycle over them.
const READ_TARGETS: u64 = 10_000;

/// What `open` asks for, as NNThroughputBenchmark does (one block's range).
const OPEN_RANGE: u64 = 128 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// mkdirs of a new directory.
    Mkdir,
    /// create + complete of a new empty file (two Raft writes).
    Create,
    /// getBlockLocations of an existing file.
    Open,
    /// getFileInfo of an existing file (linearizable).
    Stat,
    /// One listing page (≤ 1,000 entries) of a directory.
    Ls,
    /// Rename of an existing file within its directory.
    Rename,
    /// Non-recursive delete of an existing file.
    Delete,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Mkdir => "mkdir",
            Op::Create => "create",
            Op::Open => "open",
            Op::Stat => "stat",
            Op::Ls => "ls",
            Op::Rename => "rename",
            Op::Delete => "delete",
        }
    }

    /// How many files must exist before the clock starts.
    fn prepared(self, ops: u64) -> u64 {
        match self {
            Op::Mkdir | Op::Create => 0,
            Op::Open | Op::Stat | Op::Ls => ops.min(READ_TARGETS),
            Op::Rename | Op::Delete => ops,
        }
    }
}

#[derive(Args)]
pub struct MetaBench {
    #[arg(long, value_enum)]
    op: Op,
    /// Operations in total.
    #[arg(long, default_value_t = 20_000)]
    ops: u64,
    /// Operations in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Leave what the benchmark created (under /bench-OP-…).
    #[arg(long)]
    keep: bool,
    /// Objects per directory (NNThroughputBenchmark's -filesPerDir).
    #[arg(long, default_value_t = 100)]
    files_per_dir: u64,
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

/// Where the objects of one run live.
struct Plan {
    op: Op,
    base: String,
    files_per_dir: u64,
    /// Files made before the clock starts.
    prepared: u64,
}

impl Plan {
    fn dir(&self, i: u64) -> String {
        format!("{}/d{}", self.base, i / self.files_per_dir)
    }

    /// Object `i`: `f` for files, `m` for directories, `r` for renamed files.
    fn object(&self, prefix: char, i: u64) -> String {
        format!("{}/{prefix}{i}", self.dir(i))
    }

    fn dirs(&self, objects: u64) -> u64 {
        objects.div_ceil(self.files_per_dir)
    }
}

/// One phase of a run: parents, prepared files, then the timed operations.
#[derive(Clone, Copy)]
enum Phase {
    Parents,
    Prepare,
    Timed,
}

pub(super) async fn run(b: MetaBench) -> anyhow::Result<()> {
    if b.concurrency == 0 || b.ops == 0 || b.files_per_dir == 0 {
        bail!("--ops, --concurrency and --files-per-dir must be at least 1");
    }
    let c = client_of(&b.meta, &b.cluster, &b.user)?;
    let base = format!("/bench-{}-{:x}", b.op.name(), rand_u32());
    c.mkdirs(&base, true).await?;
    let plan = Arc::new(Plan {
        op: b.op,
        base: base.clone(),
        files_per_dir: b.files_per_dir,
        prepared: b.op.prepared(b.ops),
    });
    // Untimed: every parent directory, then the files the operation acts on.
    let objects = match b.op {
        Op::Mkdir | Op::Create => b.ops,
        _ => plan.prepared,
    };
    let dirs = plan.dirs(objects);
    each(&c, &plan, Phase::Parents, dirs, b.concurrency).await?;
    each(&c, &plan, Phase::Prepare, plan.prepared, b.concurrency).await?;
    let started = Instant::now();
    let mut lat = each(&c, &plan, Phase::Timed, b.ops, b.concurrency).await?;
    let secs = started.elapsed().as_secs_f64();
    let rss = leader_rss(&c).await;
    if !b.keep {
        if let Err(e) = c.delete(&base, true).await {
            eprintln!("tdfs: warning: could not clean up {base}: {e}");
        }
    }
    lat.sort();
    let pct = |p: f64| -> f64 {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i].as_secs_f64() * 1000.0
    };
    let ops_per_sec = b.ops as f64 / secs;
    let (p50, p99) = (pct(0.50), pct(0.99));
    let rss = match rss {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tdfs: warning: leader's resident memory unknown: {e:#}");
            0
        }
    };
    if b.json {
        println!(
            "{}",
            json!({"op": b.op.name(), "ops": b.ops, "concurrency": b.concurrency,
                   "seconds": round3(secs), "ops_per_sec": round3(ops_per_sec),
                   "p50_ms": round3(p50), "p99_ms": round3(p99), "leader_rss_bytes": rss})
        );
    } else {
        println!(
            "{}: {} ops, concurrency {}, {:.2} s: {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms, leader RSS {:.1} MiB{}",
            b.op.name(),
            b.ops,
            b.concurrency,
            secs,
            ops_per_sec,
            p50,
            p99,
            rss as f64 / (1 << 20) as f64,
            if b.keep { format!(", kept {base}") } else { String::new() }
        );
    }
    Ok(())
}

/// Runs `phase` for objects `0..n`, `concurrency` at a time; the latency of
/// each operation in the timed phase.
async fn each(
    c: &Arc<MetaClient>,
    plan: &Arc<Plan>,
    phase: Phase,
    n: u64,
    concurrency: u64,
) -> anyhow::Result<Vec<Duration>> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.min(n) {
        let (c, plan, next) = (c.clone(), plan.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                step(&c, &plan, phase, i).await?;
                if matches!(phase, Phase::Timed) {
                    lat.push(t.elapsed());
                }
            }
        }));
    }
    let mut lat = Vec::with_capacity(if matches!(phase, Phase::Timed) { n } else { 0 } as usize);
    for t in tasks {
        lat.extend(t.await??);
    }
    Ok(lat)
}

async fn step(c: &MetaClient, plan: &Plan, phase: Phase, i: u64) -> anyhow::Result<()> {
    let context = || format!("{} #{i}", plan.op.name());
    match phase {
        Phase::Parents => c.mkdirs(&plan.dir(i * plan.files_per_dir), false).await,
        Phase::Prepare => c.create_empty(&plan.object('f', i)).await,
        Phase::Timed => timed(c, plan, i).await,
    }
    .with_context(context)
}

async fn timed(c: &MetaClient, plan: &Plan, i: u64) -> Result<(), tdfs_proto::FsError> {
    // The read benchmarks cycle over the prepared files.
    let target = |i: u64| plan.object('f', i % plan.prepared.max(1));
    match plan.op {
        Op::Mkdir => c.mkdirs(&plan.object('m', i), false).await,
        Op::Create => c.create_empty(&plan.object('f', i)).await,
        Op::Open => c.block_locations(&target(i), 0, OPEN_RANGE).await.map(drop),
        Op::Stat => c.stat(&target(i)).await.map(drop),
        Op::Ls => {
            let dirs = plan.dirs(plan.prepared).max(1);
            let dir = plan.dir((i % dirs) * plan.files_per_dir);
            c.meta(MetaRequest::ListStatus {
                path: dir,
                start_after: None,
                limit: 1000,
            })
            .await
            .map(drop)
        }
        Op::Rename => c.rename(&plan.object('f', i), &plan.object('r', i)).await,
        Op::Delete => c.delete(&plan.object('f', i), false).await,
    }
}

/// The resident memory of the current leader process, as it reports it.
async fn leader_rss(c: &MetaClient) -> anyhow::Result<u64> {
    let mut seen = Vec::new();
    for addr in &c.config().meta {
        match c.node_state(addr).await {
            Ok(s) if s.role == "leader" => return Ok(s.rss_bytes),
            Ok(s) => seen.push(format!("{addr}: {}", s.role)),
            Err(e) => seen.push(format!("{addr}: {e}")),
        }
    }
    bail!(
        "no metadata node says it is the leader ({})",
        seen.join(", ")
    )
}
