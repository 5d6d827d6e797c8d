//! `tdfs local`: a whole cluster in one process on loopback, on the same
//! code paths as the daemons.

use anyhow::Context;
use clap::Args;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tdfs_meta_raft::config::MetaConfig;
use tdfs_meta_raft::network::Faults;
use tdfs_meta_raft::MetaHandle;
use tokio::net::TcpListener;

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
    /// Acknowledge writes before fsync (benchmarks of the network path only).
    #[arg(long)]
    pub no_fsync: bool,
}

/// Addresses of a previous run, so a restart rebinds the same ports (the
/// Raft membership records them).
fn previous_addrs(dir: &Path) -> BTreeMap<u64, String> {
    let Ok(text) = std::fs::read_to_string(dir.join("cluster.json")) else {
        return BTreeMap::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return BTreeMap::new();
    };
    v["meta"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| Some((m["id"].as_u64()?, m["addr"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub async fn run(a: LocalArgs) -> anyhow::Result<()> {
    if a.meta == 0 {
        anyhow::bail!("--meta must be at least 1");
    }
    crate::daemon::check_data_dir(&a.data_dir)?;
    let dir = a
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", a.data_dir.display()))?;
    let prev = previous_addrs(&dir);
    let mut listeners = Vec::new();
    let mut peers = BTreeMap::new();
    for id in 1..=a.meta as u64 {
        let want = prev
            .get(&id)
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:0".into());
        let l = TcpListener::bind(&want)
            .await
            .with_context(|| format!("cannot listen on {want} for metadata node {id}"))?;
        peers.insert(id, l.local_addr()?.to_string());
        listeners.push((id, l));
    }
    let block_size = a
        .block_size
        .as_deref()
        .map(crate::conf::parse_size)
        .transpose()?;
    let mut handles: Vec<MetaHandle> = Vec::new();
    let mut meta_json = Vec::new();
    for (id, l) in listeners {
        let data_dir = dir.join(format!("meta-{id}"));
        let mut c = MetaConfig::new(id, peers[&id].clone(), data_dir.clone(), peers.clone());
        c.defaults.replication = a.replication;
        if let Some(b) = block_size {
            c.defaults.block_size = b;
        }
        c.fsync = !a.no_fsync;
        meta_json.push(json!({"id": id, "addr": peers[&id], "http": null,
                              "data_dir": data_dir.display().to_string()}));
        handles.push(tdfs_meta_raft::start(c, l, Faults::new()).await?);
    }
    let doc = json!({"meta": meta_json, "datanodes": []});
    tdfs_meta_raft::log_store::write_atomic(
        &dir,
        "cluster.json",
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    wait_ready(&handles).await?;
    println!("ready");
    std::io::stdout().flush().ok();
    crate::daemon::wait_for_signal().await;
    tracing::info!("stopping the local cluster");
    for h in handles {
        h.shutdown().await;
    }
    Ok(())
}

/// Waits for a leader with an initialized namespace.
async fn wait_ready(handles: &[MetaHandle]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for h in handles {
            if h.node.is_leader() && h.node.sm.state.read().unwrap().ns.is_initialized() {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("no leader was elected within 60 s")
}
