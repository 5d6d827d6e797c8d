//! `tdfs bench`: throughput and latency against a live cluster.

mod failover;
mod io;
mod meta;

use crate::opts::ClientOpts;
use clap::Subcommand;
use std::sync::Arc;
use tdfs_client::MetaClient;

pub use failover::FailoverBench;
pub use io::IoBench;
pub use meta::MetaBench;

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

pub async fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Meta(b) => meta::run(b).await,
        BenchCmd::Failover(b) => failover::run(b).await,
        BenchCmd::Io(b) => io::run(b).await,
    }
}

/// A client from a benchmark's `--meta`, `--cluster` and `--user`.
pub(super) fn client_of(
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

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(super) fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}
