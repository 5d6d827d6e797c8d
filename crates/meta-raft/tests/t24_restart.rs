//! Whole-cluster and single-node restarts on the same data directories and
//! addresses, with snapshots taken every 50 entries and the log purged up to
//! them: nothing acknowledged is lost, and the cluster keeps taking writes.

use std::time::Duration;
use tdfs_meta_raft::log_store::LogStore;
use tdfs_testkit::cluster::*;

/// Waits until every running node has applied all of `want`.
async fn everywhere(cluster: &Cluster, want: &[String], within: Duration) {
    for id in cluster.live() {
        let node = cluster.node(id).clone();
        wait_until(within, &format!("node {id} to have all paths"), || {
            missing(&node, want).is_empty()
        })
        .await;
    }
}

/// Index of node `id`'s snapshot, if it has one.
fn snapshot_index(cluster: &Cluster, id: u64) -> Option<u64> {
    cluster
        .node(id)
        .raft()
        .metrics()
        .borrow()
        .snapshot
        .map(|l| l.index)
}

fn purged_index(cluster: &Cluster, id: u64) -> Option<u64> {
    cluster
        .node(id)
        .raft()
        .metrics()
        .borrow()
        .purged
        .map(|l| l.index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_cluster_restart_keeps_everything() {
    let mut cluster = Cluster::start_with(3, snapshot_often).await;
    let all = cluster.live();
    cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let client = client_id();

    // 200 directories, 4 in flight at a time: well over 50 log entries.
    let mut want = paths("/d/", 0..200);
    mkdir_all(&cluster, &all, client, 1, &want, 4).await;
    everywhere(&cluster, &want, Duration::from_secs(10)).await;

    // Every node snapshotted on its own along the way.
    for &id in &all {
        wait_for(
            Duration::from_secs(5),
            &format!("an automatic snapshot on node {id}"),
            || snapshot_index(&cluster, id).filter(|&s| s >= 50),
        )
        .await;
    }
    // Compact node 1's and node 2's logs; node 3 keeps its whole log.
    let mut purged = Vec::new();
    for id in [1, 2] {
        purged.push((id, snapshot_and_purge(&cluster, id).await));
    }

    let last_log: Vec<(u64, u64)> = all
        .iter()
        .map(|&id| {
            let m = cluster.node(id).raft().metrics().borrow().clone();
            (id, m.last_log_index.unwrap())
        })
        .collect();
    let snapshots: Vec<(u64, u64)> = all
        .iter()
        .map(|&id| (id, snapshot_index(&cluster, id).unwrap()))
        .collect();
    cluster.stop_all().await;

    // On disk: every log still ends where it did, purged ones start after
    // their purge point.
    for &(id, last) in &last_log {
        let store =
            LogStore::open(tdfs_disk::real(), &cluster.data_dir(id).join("raft"), true).unwrap();
        assert_eq!(
            store.last_index(),
            Some(last),
            "node {id}'s log lost entries"
        );
    }

    // All three come back on the same addresses and data.
    for &id in &all {
        cluster.restart(id).await;
    }
    // The snapshot is loaded before anything is replayed.
    for &(id, snap) in &snapshots {
        let applied = cluster.node(id).applied_index();
        assert!(
            applied >= snap,
            "node {id} restarted at {applied:?}, snapshot was at {snap}"
        );
    }
    for &(id, p) in &purged {
        assert!(
            purged_index(&cluster, id).is_some_and(|q| q >= p),
            "node {id} forgot its purge point {p}"
        );
    }
    cluster.wait_leader(&all, Duration::from_secs(10)).await;
    everywhere(&cluster, &want, Duration::from_secs(10)).await;

    // Writes continue and reach everyone.
    let more = paths("/e/", 0..20);
    mkdir_all(&cluster, &all, client, 1000, &more, 4).await;
    want.extend(more);
    everywhere(&cluster, &want, Duration::from_secs(10)).await;

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_catches_up_from_a_snapshot_and_survives_restart() {
    let mut cluster = Cluster::start_with(3, snapshot_often).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let client = client_id();
    let lagging = *all.iter().find(|&&id| id != leader).unwrap();

    let mut want = paths("/a/", 0..10);
    mkdir_all(&cluster, &all, client, 1, &want, 4).await;
    everywhere(&cluster, &want, Duration::from_secs(5)).await;

    // One follower is down while the others write on and compact their logs
    // past everything it has.
    cluster.stop(lagging).await;
    let up = cluster.live();
    let more = paths("/b/", 0..120);
    mkdir_all(&cluster, &up, client, 100, &more, 4).await;
    want.extend(more);
    everywhere(&cluster, &want, Duration::from_secs(10)).await;
    let mut purge_point = 0;
    for &id in &up {
        purge_point = purge_point.max(snapshot_and_purge(&cluster, id).await);
    }

    // Back up, it can only be brought up to date with a snapshot.
    cluster.restart(lagging).await;
    let node = cluster.node(lagging).clone();
    wait_until(
        Duration::from_secs(10),
        "the lagging follower to install a snapshot and catch up",
        || missing(&node, &want).is_empty(),
    )
    .await;
    assert!(
        snapshot_index(&cluster, lagging).is_some_and(|s| s >= purge_point),
        "caught up without a snapshot? snapshot {:?}, purge point {purge_point}",
        snapshot_index(&cluster, lagging)
    );

    // It goes on replicating new entries after the snapshot...
    let more = paths("/c/", 0..20);
    mkdir_all(&cluster, &all, client, 1000, &more, 4).await;
    want.extend(more);
    everywhere(&cluster, &want, Duration::from_secs(10)).await;
    let last = node.raft().metrics().borrow().last_log_index.unwrap();
    let snap = snapshot_index(&cluster, lagging).unwrap();
    assert!(
        last > snap,
        "no entries after the snapshot ({last} <= {snap})"
    );
    drop(node);

    // ...and keeps them across a restart: entries it acknowledged are still
    // in its log, not cut off as a "torn tail".
    cluster.stop(lagging).await;
    {
        let store = LogStore::open(
            tdfs_disk::real(),
            &cluster.data_dir(lagging).join("raft"),
            true,
        )
        .unwrap();
        assert_eq!(
            store.last_index(),
            Some(last),
            "the follower's log lost acknowledged entries after its snapshot at {snap}"
        );
    }
    cluster.restart(lagging).await;
    cluster.wait_leader(&all, Duration::from_secs(10)).await;
    everywhere(&cluster, &want, Duration::from_secs(10)).await;
    let more = paths("/d/", 0..5);
    mkdir_all(&cluster, &all, client, 2000, &more, 4).await;
    want.extend(more);
    everywhere(&cluster, &want, Duration::from_secs(10)).await;

    cluster.shutdown().await;
}
