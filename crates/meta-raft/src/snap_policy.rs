//! Snapshots by log bytes. openraft 0.9's `SnapshotPolicy` counts entries
//! only (`LogsSinceLast`), and entries range from a few bytes to 64 KiB
//! (a full batch): what a restart replays and what the log file holds are
//! bytes. So beside the entry count, this task watches the log store's
//! bytes after the last snapshot and asks openraft for a snapshot
//! (`trigger().snapshot()`) once they pass the limit. After asking, it
//! waits for the snapshot to move (or a minute, if the build failed)
//! before asking again.

use crate::log_store::LogStore;
use crate::types::Raft;
use std::time::{Duration, Instant};
use tdfs_rpc::Shutdown;

/// How long to wait for a requested snapshot before asking again.
const RETRY: Duration = Duration::from_secs(60);

/// Watches `raft`'s metrics (they change with every applied entry) until
/// shutdown; `limit` is in bytes (0: this task does nothing).
pub async fn by_log_bytes(raft: Raft, log: LogStore, limit: u64, mut shutdown: Shutdown) {
    if limit == 0 {
        return;
    }
    let mut metrics = raft.metrics();
    let mut asked: Option<(Option<u64>, Instant)> = None;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            r = metrics.changed() => if r.is_err() { return },
        }
        let (snap, applied) = {
            let m = metrics.borrow_and_update();
            (m.snapshot.map(|l| l.index), m.last_applied.map(|l| l.index))
        };
        if let Some((at, when)) = asked {
            if at == snap && when.elapsed() < RETRY {
                continue;
            }
            asked = None;
        }
        if applied <= snap {
            continue;
        }
        let bytes = log.bytes_after(snap.unwrap_or(0));
        if bytes < limit {
            continue;
        }
        tracing::info!(
            "{bytes} bytes of log since the snapshot at {snap:?} (limit {limit}): taking a snapshot"
        );
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        asked = Some((snap, Instant::now()));
    }
}
