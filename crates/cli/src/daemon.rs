//! `tdfs meta`: one metadata node as a daemon.

use anyhow::{bail, Context};
use clap::Args;
use std::path::PathBuf;

use tdfs_meta_raft::config::{defaults, parse_peers, MetaConfig};

use tdfs_rpc::ClusterKey;

#[derive(Args, Debug)]
pub struct MetaArgs {
    /// This node's Raft id.
    #[arg(long)]
    pub id: Option<u64>,
    /// Directory for the Raft log and snapshots.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TCP address for RPC and Raft (UDP on the same port for gossip).
    #[arg(long)]
    pub addr: Option<String>,
    /// The Raft group: ID=HOST:PORT,... (naming only this node: a one-node cluster).
    #[arg(long)]
    pub peers: Option<String>,
    /// HTTP address for the status page, metrics and WebHDFS.
    #[arg(long)]
    pub http: Option<String>,
    /// Address for HDFS's own RPC (Hadoop IPC, ClientNamenodeProtocol):
    /// what unmodified Hadoop clients reach as hdfs://HOST:PORT.
    #[arg(long)]
    pub hdfs_addr: Option<String>,
    /// File holding the cluster key shared by every node.
    #[arg(long)]
    pub cluster_key_file: Option<PathBuf>,
    /// TOML file with any of these settings (same names; flags win over it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Default replication of new files.
    #[arg(long, default_value_t = defaults::REPLICATION)]
    pub replication: u16,
    /// Default block size of new files (bytes; k/m/g suffixes accepted).
    #[arg(long, default_value_t = defaults::BLOCK_SIZE.to_string())]
    pub block_size: String,
    /// Smallest block size a create may ask for (HDFS's
    /// `dfs.namenode.fs-limits.min-block-size`; k/m/g suffixes accepted).
    #[arg(long, default_value_t = defaults::MIN_BLOCK_SIZE.to_string())]
    pub min_block_size: String,
    /// Largest block size a create may ask for (HDFS's
    /// `dfs.namenode.fs-limits.max-block-size`; at most 1g).
    #[arg(long, default_value_t = defaults::MAX_BLOCK_SIZE.to_string())]
    pub max_block_size: String,
    /// The superuser (owner of `/`); defaults to the user running the daemon.
    #[arg(long)]
    pub superuser: Option<String>,
    /// Raft heartbeat interval in milliseconds.
    #[arg(long, default_value_t = defaults::HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// Minimum Raft election timeout in milliseconds.
    #[arg(long, default_value_t = defaults::ELECTION_MIN_MS)]
    pub election_min_ms: u64,
    /// Maximum Raft election timeout in milliseconds.
    #[arg(long, default_value_t = defaults::ELECTION_MAX_MS)]
    pub election_max_ms: u64,
    /// A datanode silent this long is stale (no new blocks go to it);
    /// default 3000, or --dead-after-ms when that is shorter.
    #[arg(long)]
    pub stale_after_ms: Option<u64>,
    /// A datanode down this long is dead: its replicas are re-replicated.
    #[arg(long, default_value_t = defaults::DEAD_AFTER_MS)]
    pub dead_after_ms: u64,
    /// A writer that stops renewing its lease this long loses the file to lease recovery.
    #[arg(long, default_value_t = defaults::LEASE_TIMEOUT_MS)]
    pub lease_timeout_ms: u64,
    /// Continuous balancing threshold in percent (0 turns it off).
    #[arg(long, default_value_t = defaults::BALANCE_THRESHOLD_PCT)]
    pub balance_threshold: f64,
    /// Minutes trashed files are kept (0 = trash off), as HDFS's
    /// `fs.trash.interval`; the leader checkpoints and expires trash this often.
    #[arg(long, default_value_t = 0)]
    pub trash_interval: u64,
    /// Take a Raft snapshot (and compact the log) after this many entries
    /// (a snapshot over 64 MiB also waits for as many log bytes as it holds).
    #[arg(long, default_value_t = defaults::SNAPSHOT_LOGS)]
    pub snapshot_logs: u64,
    /// Also take a Raft snapshot once the log since the last one holds this
    /// many bytes (k/m/g suffixes accepted; 0: by entry count only).
    #[arg(long, default_value_t = defaults::SNAPSHOT_LOG_BYTES.to_string())]
    pub snapshot_log_bytes: String,
    /// Compare namespace hashes across metadata nodes every this many
    /// applied entries (the consistency check).
    #[arg(long, default_value_t = defaults::HASH_EVERY)]
    pub hash_every: u64,
    /// Acknowledge writes before fsync (unsafe; for experiments only).
    #[arg(long)]
    pub no_fsync: bool,
    /// Seconds the HTTP server waits for the next bytes of a request body
    /// before it cuts the client off.
    #[arg(long, default_value_t = 60)]
    pub http_body_idle_timeout: u64,
}

/// Builds a node config from the flags (the config file already expanded
/// into them, see `conf::expand_config`).
pub fn meta_config(a: MetaArgs) -> anyhow::Result<MetaConfig> {
    let id = a.id.context("--id is required")?;
    let data_dir = a.data_dir.context("--data-dir is required")?;
    let addr = a.addr.context("--addr is required")?;
    let peers = match a.peers {
        Some(p) => parse_peers(&p).map_err(anyhow::Error::msg)?,
        None => bail!("--peers is required (ID=HOST:PORT,...)"),
    };
    let mut c = MetaConfig::new(id, addr, data_dir, peers);
    c.http = a.http;
    if let Some(k) = a.cluster_key_file {
        c.key = Some(ClusterKey::from_file(&k).map_err(anyhow::Error::msg)?);
    }
    c.defaults.replication = a.replication;
    c.defaults.block_size = crate::conf::parse_size(&a.block_size)?;
    c.min_block_size = crate::conf::parse_size(&a.min_block_size)?;
    c.max_block_size = crate::conf::parse_size(&a.max_block_size)?;
    if let Some(s) = a.superuser {
        c.superuser = s;
    }
    c.heartbeat_ms = a.heartbeat_ms;
    c.election_min_ms = a.election_min_ms;
    c.election_max_ms = a.election_max_ms;
    c.dead_after_ms = a.dead_after_ms;
    // A grace period shorter than the default staleness shortens it too.
    c.stale_after_ms = a
        .stale_after_ms
        .unwrap_or(c.stale_after_ms.min(c.dead_after_ms));
    c.lease_timeout_ms = a.lease_timeout_ms;
    if a.balance_threshold.is_nan() || a.balance_threshold < 0.0 {
        bail!(
            "--balance-threshold must be a percentage, got {}",
            a.balance_threshold
        );
    }
    c.balance_threshold_pct = (a.balance_threshold > 0.0).then_some(a.balance_threshold);
    c.trash_interval_ms = a
        .trash_interval
        .checked_mul(60_000)
        .context("--trash-interval is too large")?;
    c.snapshot_logs = a.snapshot_logs;
    c.snapshot_log_bytes = crate::conf::parse_size(&a.snapshot_log_bytes)?;
    c.hash_every = a.hash_every;
    c.fsync = !a.no_fsync;
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// Checks that a data directory is usable: creatable and writable.
pub fn check_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("data directory {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// The HTTP server's limits with the body idle timeout of the flags.
fn http_limits(body_idle_secs: u64) -> tdfs_http::HttpLimits {
    tdfs_http::HttpLimits {
        body_idle_timeout: std::time::Duration::from_secs(body_idle_secs.max(1)),
        ..Default::default()
    }
}

/// The disk a daemon's stores run on: the real one or, in a test build,
/// the one `TDFS_TEST_DISK` names (`tdfs_rpc::bugs::TestDisk`): a
/// `ForgetfulDisk`, which loses unsynced writes when the process is killed
/// (the chaos suite's power loss), forgetting from the start or from the
/// first SIGUSR1.
fn daemon_disk() -> anyhow::Result<std::sync::Arc<dyn tdfs_disk::Disk>> {
    use tdfs_rpc::bugs::TestDisk;
    let d = match tdfs_rpc::bugs::test_disk().map_err(anyhow::Error::msg)? {
        TestDisk::Real => return Ok(tdfs_disk::real()),
        TestDisk::ForgetUnsynced => tdfs_disk::ForgetfulDisk::new(),
        TestDisk::ForgetUnsyncedOnSignal => {
            let d = tdfs_disk::ForgetfulDisk::write_through();
            let mut sig =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())
                    .context("cannot handle SIGUSR1 (TDFS_TEST_DISK)")?;
            let armed = d.clone();
            tokio::spawn(async move {
                if sig.recv().await.is_some() {
                    armed.set_forgetting(true);
                    tracing::warn!(
                        fault = "local",
                        "TEST DISK: forgetting unsynced writes from now (SIGUSR1)"
                    );
                }
            });
            d
        }
    };
    Ok(std::sync::Arc::new(d))
}

pub async fn run_meta(a: MetaArgs) -> anyhow::Result<()> {
    let hdfs_addr = a.hdfs_addr.clone();
    let http_limits = http_limits(a.http_body_idle_timeout);
    let c = meta_config(a)?;
    check_data_dir(&c.data_dir)?;
    let listener = tokio::net::TcpListener::bind(&c.addr)
        .await
        .with_context(|| format!("cannot listen on {}", c.addr))?;
    let http_listener = bind_http(c.http.as_deref()).await?;
    let hdfs_listener = match &hdfs_addr {
        None => None,
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (--hdfs-addr)"))?,
        ),
    };
    let id = c.id;
    let addr = c.addr.clone();
    let seams = tdfs_meta_raft::Seams {
        disk: daemon_disk()?,
        ..Default::default()
    };
    // Test builds: the chaos suite may move this process's wall clock.
    tdfs_rpc::clock::watch_offset_file(&seams.clock);
    let handle = tdfs_meta_raft::start(c, listener, seams)
        .await
        .context("cannot start the metadata node")?;
    let http = match http_listener {
        Some(l) => Some(tdfs_local::http::start_meta_http(
            &handle.node,
            l,
            http_limits,
        )?),
        None => None,
    };
    let hdfs = match hdfs_listener {
        Some(l) => Some(tdfs_hdfs_rpc::namenode::start(
            handle.node.clone(),
            l,
            Default::default(),
        )?),
        None => None,
    };
    tracing::info!("metadata node {id} serving on {addr}");
    let failure = tokio::select! {
        _ = wait_for_signal() => None,
        why = handle.failed() => Some(why),
    };
    tracing::info!("stopping");
    if let Some(h) = http {
        h.stop().await;
    }
    if let Some(h) = hdfs {
        h.stop().await;
    }
    handle.shutdown().await;
    match failure {
        Some(why) => anyhow::bail!("{why}"),
        None => Ok(()),
    }
}

/// Binds the `--http` address, if one is given.
async fn bind_http(addr: Option<&str>) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match addr {
        None => Ok(None),
        Some(a) => tokio::net::TcpListener::bind(a)
            .await
            .map(Some)
            .with_context(|| format!("cannot listen on {a} (--http)")),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[derive(Args, Debug)]
pub struct DatanodeArgs {
    /// Directory for blocks; holds the datanode's stable id.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// TCP address for block transfer (UDP on the same port for gossip).
    #[arg(long)]
    pub addr: Option<String>,
    /// Metadata nodes: HOST:PORT[,HOST:PORT...].
    #[arg(long)]
    pub meta: Option<String>,
    /// HTTP address for metrics and WebHDFS data.
    #[arg(long)]
    pub http: Option<String>,
    /// TCP address for HDFS's DataTransferProtocol (what Hadoop clients
    /// reach as the datanode's xfer port).
    #[arg(long)]
    pub hdfs_addr: Option<String>,
    /// Bytes this datanode may store (k/m/g suffixes); default: the disk's free space.
    #[arg(long)]
    pub capacity: Option<String>,
    /// File holding the cluster key shared by every node.
    #[arg(long)]
    pub cluster_key_file: Option<PathBuf>,
    /// TOML file with any of these settings (same names; flags win over it).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Acknowledge blocks before fsync (unsafe; for experiments only).
    #[arg(long)]
    pub no_fsync: bool,
    /// Seconds the HTTP server waits for the next bytes of a request body
    /// (a WebHDFS upload) before it cuts the client off and abandons it.
    #[arg(long, default_value_t = 60)]
    pub http_body_idle_timeout: u64,
}

pub async fn run_datanode(a: DatanodeArgs) -> anyhow::Result<()> {
    use tdfs_datanode::block_store::{BlockStore, StoreConfig};
    use tdfs_datanode::node::DatanodeConfig;
    let a_http_idle = a.http_body_idle_timeout;
    let data_dir = a.data_dir.context("--data-dir is required")?;
    let addr = a.addr.context("--addr is required")?;
    let meta: Vec<String> = a
        .meta
        .context("--meta is required")?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let mut sc = StoreConfig::new(data_dir.clone());
    if let Some(c) = a.capacity {
        sc.capacity = Some(crate::conf::parse_size(&c)?);
    }
    sc.fsync = !a.no_fsync;
    sc.disk = daemon_disk()?;
    let mut dc = DatanodeConfig::new(addr.clone(), meta);
    tdfs_rpc::clock::watch_offset_file(&dc.clock);
    dc.http = a.http;
    let hdfs_addr = a.hdfs_addr;
    if let Some(k) = a.cluster_key_file {
        dc.key = Some(ClusterKey::from_file(&k).map_err(anyhow::Error::msg)?);
    }
    check_data_dir(&data_dir)?;
    // Lock and load the directory, then bind, then register and serve.
    let store = BlockStore::open(sc).map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let http_listener = bind_http(dc.http.as_deref()).await?;
    let hdfs_listener = match &hdfs_addr {
        None => None,
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("cannot listen on {a} (--hdfs-addr)"))?,
        ),
    };
    let http = match http_listener {
        Some(l) => Some(tdfs_local::http::start_datanode_http(
            &dc,
            store.clone(),
            l,
            http_limits(a_http_idle),
        )?),
        None => None,
    };
    let handle = tdfs_datanode::node::start_with_hdfs(dc, store, listener, hdfs_listener).await?;
    tracing::info!("datanode {} serving on {addr}", handle.id);
    wait_for_signal().await;
    tracing::info!("stopping");
    if let Some(h) = http {
        h.stop().await;
    }
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        meta: MetaArgs,
    }

    fn config(extra: &[&str]) -> anyhow::Result<MetaConfig> {
        let mut argv = vec!["meta", "--id", "1", "--data-dir", "/d", "--addr", "h:1"];
        argv.extend_from_slice(&["--peers", "1=h:1"]);
        argv.extend_from_slice(extra);
        meta_config(Cmd::try_parse_from(argv)?.meta)
    }

    #[test]
    fn snapshot_log_bytes_takes_sizes_and_defaults_to_64_mib() {
        assert_eq!(config(&[]).unwrap().snapshot_log_bytes, 64 << 20);
        let c = config(&["--snapshot-log-bytes", "1m"]).unwrap();
        assert_eq!(c.snapshot_log_bytes, 1 << 20);
        assert_eq!(
            config(&["--snapshot-log-bytes", "0"])
                .unwrap()
                .snapshot_log_bytes,
            0
        );
        assert!(config(&["--snapshot-log-bytes", "lots"]).is_err());
    }
}
