//! The `PowerLoss` fault: every daemon loses what it did not fsync.
//!
//! The cluster starts its daemons with `TDFS_TEST_DISK=forget-unsynced-on-sigusr1`
//! (test builds only, see `tdfs_rpc::bugs::TestDisk`): their stores run on
//! `tdfs_disk::ForgetfulDisk` in write-through mode, so every other kill -9
//! fault keeps the page cache as a process kill does. The fault sends
//! SIGUSR1 to every metadata node and running datanode, which from then on
//! keeps written-but-unsynced bytes in its own memory (reads see them)
//! until an fsync writes them through; waits until each logged that it is
//! armed; lets the workload run on for a seeded while; then kills them all
//! with -9 at once, so each comes back on what it had fsync'd, as after a
//! power cut. The heal restarts them all.

use super::cluster::{Cluster, Who};
use super::nemesis::{hold, Active, Nemesis, Undo};
use std::path::Path;
use std::time::Duration;

/// The line a daemon logs once its disk forgets unsynced writes.
pub const ARMED: &str = "TEST DISK: forgetting unsynced writes from now";

/// The value of `TDFS_TEST_DISK` the cluster starts its daemons with.
pub const TEST_DISK: &str = "forget-unsynced-on-sigusr1";

fn log_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Whether the log at `p` has `ARMED` after byte `from`.
fn armed_since(p: &Path, from: u64) -> bool {
    std::fs::read(p).is_ok_and(|b| {
        let from = (from as usize).min(b.len());
        String::from_utf8_lossy(&b[from..]).contains(ARMED)
    })
}

/// Arms every running daemon's disk, runs on, then kills them all.
pub async fn start(nem: &mut Nemesis, cl: &mut Cluster) -> Active {
    let mut who: Vec<Who> = (0..cl.metas.len()).map(Who::Meta).collect();
    who.extend(
        (0..cl.dns.len())
            .filter(|&j| cl.dns[j].is_running())
            .map(Who::Dn),
    );
    let marks: Vec<(Who, std::path::PathBuf, u64)> = who
        .iter()
        .map(|&w| {
            let log = cl.proc_mut(w).log.clone();
            let at = log_len(&log);
            (w, log, at)
        })
        .collect();
    for &w in &who {
        cl.proc_mut(w).signal_usr1();
    }
    tdfs_testkit::procs::wait_for(
        "every daemon to arm its forgetful disk (SIGUSR1)",
        Duration::from_secs(10),
        || {
            let all = marks.iter().all(|(_, log, at)| armed_since(log, *at));
            std::future::ready(all.then_some(()))
        },
    )
    .await;
    // The workload runs on: what is acknowledged now must have been fsync'd.
    let forgetting = hold(&mut nem.rng, 500, 3000);
    tokio::time::sleep(forgetting).await;
    for &w in &who {
        cl.proc_mut(w).kill();
    }
    let down = hold(&mut nem.rng, 300, 1500);
    let what = format!(
        "power loss of every meta and {} datanodes: unsynced writes kept in process \
         memory for {forgetting:?}, then kill -9 of all at once",
        who.len() - cl.metas.len()
    );
    Active::new(what, down, vec![Undo::Restart(who)])
}
