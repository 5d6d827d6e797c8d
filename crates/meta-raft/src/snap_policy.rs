//! When to take a Raft snapshot. openraft 0.9's `SnapshotPolicy` counts
//! entries only (`LogsSinceLast`), and entries range from a few bytes to
//! 64 KiB (a full batch): what a restart replays and what the log file
//! holds are bytes. And a snapshot is the whole namespace: 486 MiB at 10
//! million files, written by every node. Taken every 5,000 entries, that
//! is several times the log's own bytes again, and a second or more of CPU
//! per snapshot — work proportional to the namespace on the write path.
//!
//! So openraft's policy is `Never` and this task decides: a snapshot is due
//! once the log since the last one holds `snapshot_logs` entries or
//! `snapshot_log_bytes` bytes, and — for a snapshot over
//! [`LARGE_SNAPSHOT`] — at least as many log bytes as the last snapshot
//! file holds. Writing snapshots then costs at most about what the log
//! costs, and a restart replays at most one snapshot's worth of log on top
//! of loading it. After asking openraft (`trigger().snapshot()`), the task
//! waits for the snapshot to move (or a minute, if the build failed)
//! before asking again.

use crate::log_store::LogStore;
use crate::types::Raft;
use std::time::{Duration, Instant};
use tdfs_rpc::Shutdown;

/// How long to wait for a requested snapshot before asking again.
const RETRY: Duration = Duration::from_secs(60);

/// Snapshots smaller than this are cheap (well under a second to write)
/// and are taken by the entry and byte limits alone.
pub const LARGE_SNAPSHOT: u64 = 64 << 20;

/// The limits, from the node's configuration (0: that limit is off).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub entries: u64,
    pub bytes: u64,
}

/// Whether a snapshot is due with `entries` entries and `bytes` bytes of
/// log since the last one, whose file holds `snapshot_bytes`.
pub fn due(l: Limits, entries: u64, bytes: u64, snapshot_bytes: u64) -> bool {
    let by_entries = l.entries > 0 && entries >= l.entries;
    let by_bytes = l.bytes > 0 && bytes >= l.bytes;
    (by_entries || by_bytes) && (snapshot_bytes < LARGE_SNAPSHOT || bytes >= snapshot_bytes)
}

/// Watches `raft`'s metrics (they change with every applied entry) until
/// shutdown; `snapshot_bytes` gives the size of the current snapshot file.
pub async fn run(
    raft: Raft,
    log: LogStore,
    limits: Limits,
    snapshot_bytes: impl Fn() -> u64 + Send,
    mut shutdown: Shutdown,
) {
    if limits.entries == 0 && limits.bytes == 0 {
        return;
    }
    let mut metrics = raft.metrics();
    let mut asked: Option<(Option<u64>, Instant)> = None;
    // The snapshot file's size, read again when the snapshot moves.
    let mut size: Option<(Option<u64>, u64)> = None;
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
        let (Some(applied), false) = (applied, applied <= snap) else {
            continue;
        };
        let entries = applied - snap.unwrap_or(0);
        let bytes = log.bytes_after(snap.unwrap_or(0));
        let snapshot_bytes = match size {
            Some((at, n)) if at == snap => n,
            _ => {
                let n = snapshot_bytes();
                size = Some((snap, n));
                n
            }
        };
        if !due(limits, entries, bytes, snapshot_bytes) {
            continue;
        }
        tracing::info!(
            "{entries} entries and {bytes} bytes of log since the snapshot at {snap:?} \
             ({snapshot_bytes} bytes; limits {limits:?}): taking a snapshot"
        );
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        asked = Some((snap, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_snapshot_waits_for_as_many_log_bytes_as_it_holds() {
        let l = Limits {
            entries: 5000,
            bytes: 64 << 20,
        };
        let small = 1 << 20;
        // Small snapshots: the limits alone.
        assert!(!due(l, 4999, 1 << 20, small));
        assert!(due(l, 5000, 1 << 20, small), "by entries");
        assert!(due(l, 10, 64 << 20, small), "by bytes");
        // 486 MiB (10 M files): neither limit is enough until the log since
        // holds as many bytes as the snapshot.
        let big = 486 << 20;
        assert!(!due(l, 5000, 15 << 20, big));
        assert!(!due(l, 50_000, 200 << 20, big));
        assert!(due(l, 50_000, 486 << 20, big));
        // ... and the bytes alone never trigger one below the limits.
        assert!(!due(l, 10, (64 << 20) - 1, LARGE_SNAPSHOT - 1));
        // A limit of 0 is off.
        let entries_only = Limits {
            entries: 20,
            bytes: 0,
        };
        assert!(due(entries_only, 20, 1, 0));
        assert!(!due(entries_only, 19, u64::MAX / 2, 0));
    }
}
