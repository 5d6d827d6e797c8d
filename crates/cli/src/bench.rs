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
    }
}

async fn meta(b: MetaBench) -> anyhow::Result<()> {
    if !["mkdir", "create", "stat", "ls"].contains(&b.op.as_str()) {
        bail!("--op must be mkdir, create, stat or ls");
    }
    if b.concurrency == 0 || b.ops == 0 {
        bail!("--ops and --concurrency must be at least 1");
    }
    let opts = ClientOpts {
        meta: b.meta.clone(),
        cluster: b.cluster.clone(),
        user: b.user.clone(),
        ..Default::default()
    };
    let c = opts.client()?;
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
        "create" => {
            let p = format!("{base}/f{i}");
            c.meta(MetaRequest::Create {
                path: p.clone(),
                overwrite: false,
                replication: None,
                block_size: None,
                mode: None,
                create_parents: false,
            })
            .await?;
            c.meta(MetaRequest::Complete {
                path: p,
                last: None,
            })
            .await?;
        }
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
