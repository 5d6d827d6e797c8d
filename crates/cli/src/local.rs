//! `tdfs local`: a whole cluster in one process on loopback, on the same
//! code paths as the daemons.

use anyhow::Context;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tdfs_local::{LocalCluster, LocalConfig};

#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Where every node keeps its data; `cluster.json` is written here.
    #[arg(long, default_value = "./tdfs-data")]
    pub data_dir: PathBuf,
    /// Number of metadata nodes.
    #[arg(long, default_value_t = 3)]
    pub meta: usize,
    /// Number of datanodes.
    #[arg(long, default_value_t = 4)]
    pub datanodes: usize,
    /// Default replication of new files.
    #[arg(long, default_value_t = 3)]
    pub replication: u16,
    /// Default block size (bytes; k/m/g suffixes accepted).
    #[arg(long)]
    pub block_size: Option<String>,
    /// Capacity of each datanode (bytes; default: the disk's free space).
    #[arg(long)]
    pub datanode_capacity: Option<String>,
    /// Lease timeout in milliseconds (how long a dead writer holds a file).
    #[arg(long)]
    pub lease_timeout_ms: Option<u64>,
    /// Minutes trashed files are kept (0 = trash off), as HDFS's `fs.trash.interval`.
    #[arg(long, default_value_t = 1440)]
    pub trash_interval: u64,
    /// Acknowledge writes before fsync (benchmarks of the network path only).
    #[arg(long)]
    pub no_fsync: bool,
    /// Run an open cluster: no cluster key (by default a random key is
    /// generated into DIR/cluster.key, mode 0600, and reused on restart).
    #[arg(long)]
    pub no_cluster_key: bool,
    /// Use this cluster key file instead of DIR/cluster.key.
    #[arg(long, conflicts_with = "no_cluster_key")]
    pub cluster_key_file: Option<PathBuf>,
    /// TOML file with any of these settings (same names; flags win over it).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

pub async fn run(a: LocalArgs) -> anyhow::Result<()> {
    crate::daemon::check_data_dir(&a.data_dir)?;
    let dir = a
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", a.data_dir.display()))?;
    let mut cfg = LocalConfig::new(dir, a.meta, a.datanodes);
    cfg.replication = a.replication;
    cfg.block_size = a
        .block_size
        .as_deref()
        .map(crate::conf::parse_size)
        .transpose()?;
    cfg.datanode_capacity = a
        .datanode_capacity
        .as_deref()
        .map(crate::conf::parse_size)
        .transpose()?;
    cfg.fsync = !a.no_fsync;
    cfg.trash_interval_ms = a.trash_interval.saturating_mul(60_000);
    if let Some(k) = &a.cluster_key_file {
        let path = k
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", k.display()))?;
        cfg.key = Some(tdfs_rpc::ClusterKey::from_file(&path).map_err(anyhow::Error::msg)?);
        cfg.key_file = Some(path);
    } else if !a.no_cluster_key {
        cfg.use_generated_key()?;
    }
    if let Some(ms) = a.lease_timeout_ms {
        cfg.tweak_meta = Some(std::sync::Arc::new(move |m| m.lease_timeout_ms = ms));
    }
    let cluster = LocalCluster::start(cfg).await?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    println!("ready");
    std::io::stdout().flush().ok();
    if let Some(h) = cluster.meta_http.values().next() {
        eprintln!(
            "status page and WebHDFS: http://{h}/ (every metadata node's \"http\" in cluster.json)"
        );
    }
    eprintln!(
        "Hadoop clients: HADOOP_CONF_DIR={} hadoop fs -ls hdfs://tdfs/",
        cluster.cfg.dir.join("hadoop-conf").display()
    );
    crate::daemon::wait_for_signal().await;
    tracing::info!("stopping the local cluster");
    cluster.shutdown().await;
    Ok(())
}
