//! Helpers for data-path tests on an in-process cluster (`tdfs_local`):
//! start one, write, read and wait for replicas through `tdfs_client`.

use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{read_range, CreateOptions, FileWriter, MetaClient};
use tdfs_local::{LocalCluster, LocalConfig};

pub use crate::data::{bytes, sha};

/// Starts a cluster with fast timers and waits until it is ready.
pub async fn cluster(
    datanodes: usize,
    block_size: u64,
    tweak: impl Fn(&mut LocalConfig),
) -> (tempfile::TempDir, LocalCluster) {
    // Logs go to the test's captured output (shown when it fails); RUST_LOG
    // sets the level. A warning blaming this process fails the test at shutdown.
    crate::log::init();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = LocalConfig::new(dir.path(), 3, datanodes);
    cfg.block_size = Some(block_size);
    cfg.tweak_meta = Some(Arc::new(|m| {
        m.superuser = "root".into();
        m.heartbeat_ms = 50;
        m.election_min_ms = 150;
        m.election_max_ms = 300;
    }));
    cfg.tweak_datanode = Some(Arc::new(|d| d.heartbeat = Duration::from_millis(200)));
    cfg.on_shutdown = Some(Arc::new(crate::log::assert_no_local_faults));
    tweak(&mut cfg);
    let c = LocalCluster::start(cfg).await.unwrap();
    c.wait_ready(Duration::from_secs(30)).await.unwrap();
    (dir, c)
}

/// Writes `data` to `path` in pieces of `piece` bytes.
pub async fn write(c: &Arc<MetaClient>, path: &str, data: &[u8], piece: usize) {
    let mut w = FileWriter::create(
        c.clone(),
        path,
        CreateOptions {
            create_parents: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for p in data.chunks(piece.max(1)) {
        w.write(p).await.unwrap();
    }
    assert_eq!(w.close().await.unwrap(), data.len() as u64);
}

/// Reads `[offset, offset+len)` of `path`.
pub async fn read(c: &MetaClient, path: &str, offset: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    read_range(c, path, offset, len, &mut out).await.unwrap();
    out
}

/// Waits until every block of `path` shows `n` replicas (complete needs only
/// one reported replica; the pipeline's other reports may trail it).
pub async fn wait_replicas(
    c: &MetaClient,
    path: &str,
    n: usize,
) -> tdfs_proto::meta::LocatedBlocks {
    crate::procs::wait_for(
        &format!("{n} replicas of every block of {path}"),
        Duration::from_secs(20),
        || async {
            let lbs = c.block_locations(path, 0, u64::MAX).await.ok()?;
            lbs.blocks
                .iter()
                .all(|b| b.locations.len() >= n)
                .then_some(lbs)
        },
    )
    .await
}
