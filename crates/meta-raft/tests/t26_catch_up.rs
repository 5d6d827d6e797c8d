//! A member that fell behind always catches up: one whose log was damaged
//! in the middle refuses to start, and once its data directory is wiped it
//! rejoins from the leader's snapshot (the recovery in
//! `docs/operations.md`); a follower cut off while many large entries were
//! committed catches up after healing, because every AppendEntries stays
//! below the RPC frame limit whatever the entries hold.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_meta_raft::log_store::log_file_path;
use tdfs_meta_raft::{MetaConfig, MetaNode};
use tdfs_proto::meta::MetaRequest;
use tdfs_proto::xattr::XAttrFlags;
use tdfs_testkit::cluster::*;

fn never_snapshot(c: &mut MetaConfig) {
    c.snapshot_logs = 1_000_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_member_rejoins_from_a_snapshot() {
    let mut cluster = Cluster::start_with(3, snapshot_often).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let victim = *all.iter().find(|i| **i != leader).unwrap();
    let client = client_id();
    let first = paths("/w/a", 0..120);
    mkdir_all(&cluster, &all, client, 1, &first, 8).await;
    let node = cluster.node(victim).clone();
    wait_until(Duration::from_secs(10), "the victim to apply", || {
        missing(&node, &first).is_empty()
    })
    .await;
    cluster.stop(victim).await;
    // Damage in the middle of its log: it refuses to start, naming the file.
    let log = log_file_path(&cluster.data_dir(victim).join("raft"));
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x5a;
    std::fs::write(&log, &bytes).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = tdfs_meta_raft::start(cluster.config(victim), l, cluster.seams(victim)).await;
    let msg = r.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(msg.contains("valid records follow"), "start: {msg:?}");
    assert!(msg.contains("log.dat"), "start: {msg:?}");
    // Meanwhile the others go on, and compact their logs past the victim.
    let others: Vec<u64> = all.iter().copied().filter(|i| *i != victim).collect();
    let second = paths("/w/b", 0..80);
    mkdir_all(&cluster, &others, client, 1000, &second, 8).await;
    let leader = cluster.wait_leader(&others, Duration::from_secs(10)).await;
    for id in &others {
        snapshot_and_purge(&cluster, *id).await;
    }
    // The recovery: wipe the data directory, start the node again.
    std::fs::remove_dir_all(cluster.data_dir(victim)).unwrap();
    let started = Instant::now();
    cluster.restart(victim).await;
    let node = cluster.node(victim).clone();
    let want: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_until(
        Duration::from_secs(20),
        "the wiped member to catch up",
        || missing(&node, &want).is_empty(),
    )
    .await;
    let m = node.raft().metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "it caught up without a snapshot");
    assert_eq!(m.current_leader, Some(leader));
    println!("wiped member caught up in {:?}", started.elapsed());
    // And it takes part again: a new write reaches it.
    let third = paths("/w/c", 0..5);
    mkdir_all(&cluster, &all, client, 5000, &third, 5).await;
    wait_until(
        Duration::from_secs(10),
        "new writes on the rejoined member",
        || missing(&node, &third).is_empty(),
    )
    .await;
    cluster.shutdown().await;
}

/// An xattr value about the largest size allowed (name and value together
/// at most MAX_XATTR_SIZE; the names here are at most 3 bytes past `user.`).
fn big_value(i: usize) -> Vec<u8> {
    let mut v = vec![b'x'; tdfs_proto::xattr::MAX_XATTR_SIZE - 3];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v
}

/// Proposes all of `ops` at once on `node` (a task each), so that they pile
/// up in the proposer and go out in the largest entries it makes.
async fn propose_all(node: &Arc<MetaNode>, ops: Vec<MetaRequest>) {
    let tasks: Vec<_> = ops
        .into_iter()
        .map(|op| {
            let node = node.clone();
            tokio::spawn(async move { node.execute(SUPERUSER, None, op).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_large_entries_catches_up() {
    let cluster = Cluster::start_with(3, never_snapshot).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let lagger = *all.iter().find(|i| **i != leader).unwrap();
    let others: Vec<u64> = all.iter().copied().filter(|i| *i != lagger).collect();
    let dirs = paths("/x/d", 0..100);
    mkdir_all(&cluster, &all, client_id(), 1, &dirs, 8).await;
    cluster.isolate(lagger, &others);
    // 100 directories x 32 xattrs of ~16 KiB: 50 MiB of log, more than a
    // whole RPC frame, proposed at once.
    let ops: Vec<MetaRequest> = (0..dirs.len() * 32)
        .map(|i| MetaRequest::SetXAttr {
            path: dirs[i / 32].clone(),
            name: format!("user.k{}", i % 32),
            value: big_value(i),
            flags: XAttrFlags::EITHER,
        })
        .collect();
    let n = ops.len();
    let started = Instant::now();
    propose_all(cluster.node(leader), ops).await;
    println!("{n} xattrs committed in {:?}", started.elapsed());
    let target = cluster.node(leader).applied_index();
    let behind = cluster.node(lagger).applied_index();
    println!("the lagger is at {behind}, the leader at {target}");
    cluster.net.heal();
    let started = Instant::now();
    let node = cluster.node(lagger).clone();
    wait_until(
        Duration::from_secs(30),
        "the lagging follower to catch up",
        || node.applied_index() >= target,
    )
    .await;
    println!("caught up in {:?}", started.elapsed());
    let last = dirs.last().unwrap();
    let v = node.inspect(|ns, _| ns.get_xattrs(SUPERUSER, last, &["user.k31".to_string()]));
    assert_eq!(v.unwrap()[0].value, big_value(dirs.len() * 32 - 1));
    cluster.shutdown().await;
}
