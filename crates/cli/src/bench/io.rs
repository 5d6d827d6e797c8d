//! `tdfs bench io`: write and read throughput (like TestDFSIO).

use super::{client_of, rand_u32, round3};
use anyhow::bail;
use clap::Args;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;
use tdfs_client::{read_range, CreateOptions, FileWriter, MetaClient};

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

/// Writes `files` files of `size` bytes concurrently, then reads them back
/// (verifying every chunk's CRC32C); reports MB/s (10^6 bytes) of file data.
pub(super) async fn run(b: IoBench) -> anyhow::Result<()> {
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
    let o = CreateOptions {
        overwrite: true,
        replication: b.replication,
        block_size,
        ..Default::default()
    };
    let write_secs = write_files(&c, &base, b.files, size, o).await?;
    let replication = c.stat(&format!("{base}/f0")).await?.replication;
    let (read_bytes, read_secs) = read_files(&c, &base, b.files, size).await?;
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

/// 4 MiB of a pseudo-random pattern (not compressible, not all zeros).
fn pattern() -> Vec<u8> {
    let mut pattern = vec![0u8; 4 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in pattern.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    pattern
}

/// Writes `base/f0..files` of `size` bytes each, concurrently; returns the
/// seconds taken (the pattern is made before the clock starts).
async fn write_files(
    c: &Arc<MetaClient>,
    base: &str,
    files: u64,
    size: u64,
    o: CreateOptions,
) -> anyhow::Result<f64> {
    let pattern = Arc::new(pattern());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..files {
        let c = c.clone();
        let p = format!("{base}/f{i}");
        let pattern = pattern.clone();
        let o = o.clone();
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
    Ok(started.elapsed().as_secs_f64())
}

/// Reads `base/f0..files` back concurrently; returns the bytes read and
/// the seconds taken.
async fn read_files(
    c: &Arc<MetaClient>,
    base: &str,
    files: u64,
    size: u64,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..files {
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
    Ok((read_bytes, started.elapsed().as_secs_f64()))
}
