//! Power loss: every metadata node runs on a memory disk that forgets what
//! was not fsync'd ([`tdfs_disk::MemDisk::crash`]). After writes were
//! acknowledged, all three lose power at once and restart on what their
//! disks kept; every acknowledged write must be there, read back through
//! the new leader with a read index.
//!
//! A kill -9 of a process cannot catch a log that acknowledges before it
//! syncs (the page cache survives a process); this can. The second test
//! proves it: it runs the first in a child process with
//! `TDFS_BUGS=ack-before-fsync` and requires it to report lost writes.

use std::time::{Duration, Instant};
use tdfs_meta_raft::bugs::{self, Bug};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::MetaRequest;
use tdfs_proto::FsError;
use tdfs_rpc::RpcError;
use tdfs_testkit::cluster::*;

/// The test the bug-switch test runs in a child process.
const SURVIVE: &str = "acknowledged_writes_survive_a_power_loss";
/// What the check prints when an acknowledged write is gone.
const LOST: &str = "lost in the power loss";

/// The leader of every node, if one is agreed within `within`.
async fn leader_within(cluster: &Cluster, within: Duration) -> Option<u64> {
    let all = cluster.live();
    tdfs_testkit::wait::poll_for_async(within, || std::future::ready(cluster.agreed_leader(&all)))
        .await
}

/// Whether `path` is a directory, read linearizably on `leader`; retries
/// errors that say "try again" until a deadline.
async fn read_back(cluster: &Cluster, leader: u64, path: &str) -> Result<bool, String> {
    let c = cluster.client(leader).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let op = MetaRequest::GetFileInfo { path: path.into() };
        match meta(&c, None, op, Duration::from_secs(3)).await {
            Ok(_) => return Ok(true),
            Err(RpcError::Remote(FsError::FileNotFound(_))) => return Ok(false),
            Err(RpcError::Remote(e)) if !e.is_retriable() => return Err(e.to_string()),
            Err(e) if Instant::now() > deadline => return Err(e.to_string()),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Acknowledged writes, a power loss of every node, a restart: returns the
/// violations (acknowledged writes missing afterwards, or no cluster).
async fn power_loss_run() -> Vec<String> {
    let mut cluster = Cluster::start_on_mem_disks(3).await;
    println!(
        "power loss: seed {}; bug switches on: {:?}",
        cluster.seed,
        Bug::ALL
            .iter()
            .filter(|b| bugs::on(**b))
            .map(|b| b.name())
            .collect::<Vec<_>>()
    );
    cluster
        .wait_leader(&[1, 2, 3], Duration::from_secs(10))
        .await;
    let client = client_id();
    let acked = paths("/power/d", 0..40);
    // Five at a time, so that the log batches and syncs several at once.
    mkdir_all(&cluster, &[1, 2, 3], client, 1, &acked, 5).await;
    let t = Instant::now();
    cluster.power_loss().await;
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    let Some(leader) = leader_within(&cluster, Duration::from_secs(10)).await else {
        return vec![format!(
            "no leader with an initialized namespace within 10 s of restarting after the \
             power loss: the {} acknowledged writes are {LOST}",
            acked.len()
        )];
    };
    println!("power loss: leader {leader} after {:.1?}", t.elapsed());
    let mut bad = Vec::new();
    for p in &acked {
        match read_back(&cluster, leader, p).await {
            Ok(true) => {}
            Ok(false) => bad.push(format!("acknowledged mkdir {p} was {LOST}")),
            Err(e) => bad.push(format!("reading {p} after the power loss: {e}")),
        }
    }
    if bad.is_empty() {
        // The cluster still takes writes on what survived.
        let call = CallId { client, seq: 1000 };
        cluster.mkdir(&[1, 2, 3], call, "/power/after").await;
    }
    cluster.stop_all().await;
    println!(
        "power loss: {} acknowledged writes, {} missing or unreadable afterwards",
        acked.len(),
        bad.len()
    );
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_power_loss() {
    let bad = power_loss_run().await;
    assert!(
        bad.is_empty(),
        "POWER LOSS VIOLATION: {} problems:\n  {}",
        bad.len(),
        bad.join("\n  ")
    );
}

/// Runs [`SURVIVE`] in a child process of this test binary with
/// `TDFS_BUGS=ack-before-fsync` (the switch is read once per process) and
/// requires it to fail because acknowledged writes were lost.
#[test]
fn the_power_loss_check_catches_ack_before_fsync() {
    let t = Instant::now();
    let (passed, text) = run_self_with_bug(SURVIVE, Bug::AckBeforeFsync);
    assert!(
        !passed && text.contains("POWER LOSS VIOLATION") && text.contains(LOST),
        "with ack-before-fsync the power-loss check must report lost writes; it said:\n{text}"
    );
    let first = text
        .lines()
        .find(|l| l.contains(LOST))
        .unwrap_or_default()
        .trim();
    println!("ack-before-fsync caught in {:.1?}: {first}", t.elapsed());
}
