//! The integrity scanner: re-verifies the SHA-256 and chunk CRCs of every
//! finalized replica in the background at a bounded rate. A replica that no
//! longer matches (or that the disk cannot read back) is quarantined and
//! reported corrupt; the leader re-replicates the block from a good copy,
//! and only then deletes the quarantined one.

use crate::block_store::{BlockStore, Check};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::BlockId;
use tdfs_rpc::Shutdown;

/// How the scanner paces itself.
#[derive(Clone, Copy, Debug)]
pub struct ScanConfig {
    /// Bytes verified per second at most.
    pub bytes_per_sec: u64,
    /// Pause between two full passes.
    pub pass_interval: Duration,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            bytes_per_sec: 32 << 20,
            pass_interval: Duration::from_secs(3600),
        }
    }
}

/// Runs passes until shutdown; `corrupt` is told about every bad replica
/// (block and generation) once it is quarantined.
pub async fn run(
    store: Arc<BlockStore>,
    cfg: ScanConfig,
    corrupt: impl Fn(BlockId, u64) + Send + 'static,
    mut shutdown: Shutdown,
) {
    loop {
        for r in store.replicas() {
            if shutdown.is_shutdown() {
                return;
            }
            let s = store.clone();
            let id = r.id;
            let verdict = tokio::task::spawn_blocking(move || s.check(id)).await;
            match verdict {
                Ok(Ok(Check::Quarantined { gen })) => {
                    tracing::warn!(
                        fault = "local",
                        "scanner: replica of block {id} gen {gen} is corrupt: quarantined"
                    );
                    corrupt(id, gen);
                }
                // Deleted or replaced while being checked: nothing to do.
                Ok(Ok(Check::Good | Check::Gone)) => {}
                Ok(Err(e)) => tracing::debug!("scanner: block {id}: {e}"),
                Err(e) => tracing::warn!(fault = "local", "scanner: block {id}: {e}"),
            }
            // Pace: the time this replica's bytes are worth at the rate.
            let pause = Duration::from_secs_f64(r.len as f64 / cfg.bytes_per_sec.max(1) as f64);
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(cfg.pass_interval) => {}
        }
    }
}
