//! A partitioned leader: the majority elects a new leader and keeps
//! committing; the isolated old leader commits nothing; after the partition
//! heals it follows the new leader and converges on exactly the acknowledged
//! writes.

use openraft::ServerState;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::MetaResponse;
use tdfs_testkit::cluster::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_is_replaced_and_converges_after_heal() {
    let cluster = Cluster::start(3).await;
    let all = cluster.live();
    let old = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let old_term = cluster.node(old).raft().metrics().borrow().current_term;
    let client = client_id();
    let mut seq = 0u64;
    let mut next = || {
        seq += 1;
        CallId { client, seq }
    };

    // Writes before the partition reach every node.
    let mut acked: Vec<String> = Vec::new();
    for i in 0..10 {
        let p = format!("/p/before{i}");
        cluster.mkdir(&all, next(), &p).await;
        acked.push(p);
    }
    for id in &all {
        wait_until(
            Duration::from_secs(5),
            "pre-partition writes everywhere",
            || missing(cluster.node(*id), &acked).is_empty(),
        )
        .await;
    }

    // Cut the leader off from both followers.
    let majority: Vec<u64> = all.iter().copied().filter(|&id| id != old).collect();
    cluster.isolate(old, &majority);

    // Watch the old leader's applied state for the stale write for the rest
    // of the test: it must never show up, not even briefly.
    let stale = "/p/stale-write-to-old-leader";
    let seen_stale = Arc::new(AtomicBool::new(false));
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let node = cluster.node(old).clone();
        let (seen, watching) = (seen_stale.clone(), watching.clone());
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                if exists(&node, stale) {
                    seen.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // The majority elects someone else, in a later term.
    let new = cluster.wait_leader(&majority, Duration::from_secs(5)).await;
    assert_ne!(
        new, old,
        "the isolated node cannot stay the majority's leader"
    );
    let new_term = cluster.node(new).raft().metrics().borrow().current_term;
    assert!(new_term > old_term, "new term {new_term} <= old {old_term}");

    // The majority keeps committing.
    for i in 0..10 {
        let p = format!("/p/during{i}");
        cluster.mkdir(&majority, next(), &p).await;
        acked.push(p);
    }
    for id in &majority {
        wait_until(Duration::from_secs(5), "writes on the majority", || {
            missing(cluster.node(*id), &acked).is_empty()
        })
        .await;
    }

    // A write sent to the old leader does not succeed: it either refuses
    // (NotLeader) or cannot commit and times out.
    let c = cluster.client(old).await;
    let r = meta(
        &c,
        Some(next()),
        mkdirs(stale, true),
        Duration::from_secs(2),
    )
    .await;
    assert!(
        r.is_err(),
        "the isolated old leader acknowledged a write: {r:?}"
    );
    // Nothing written during the partition reached the old leader.
    assert!(!exists(cluster.node(old), stale));
    assert!(!has_dir(cluster.node(old), "/p/during0"));

    // Heal: the old leader steps down, follows the current leader and
    // catches up on every acknowledged write.
    cluster.net.heal();
    wait_until(
        Duration::from_secs(10),
        "the old leader to follow the majority's leader and catch up",
        || {
            let Some(leader) = cluster.agreed_leader(&all) else {
                return false;
            };
            let m = cluster.node(old).raft().metrics().borrow().clone();
            leader != old
                && m.state == ServerState::Follower
                && m.current_leader == Some(leader)
                && missing(cluster.node(old), &acked).is_empty()
        },
    )
    .await;

    // The cluster still takes writes, and they reach the old leader too.
    let p = "/p/after-heal".to_string();
    cluster.mkdir(&all, next(), &p).await;
    acked.push(p);
    for id in &all {
        wait_until(Duration::from_secs(5), "every write on every node", || {
            missing(cluster.node(*id), &acked).is_empty()
        })
        .await;
    }

    // The stale write exists nowhere, and never appeared on the old leader.
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    assert!(
        !seen_stale.load(Ordering::Relaxed),
        "the old leader applied a write it could not commit"
    );
    for id in &all {
        assert!(!exists(cluster.node(*id), stale), "node {id} has {stale}");
    }
    // Reads through the RPC layer agree on the old leader.
    let c = cluster.client(old).await;
    let r = meta(
        &c,
        None,
        tdfs_proto::meta::MetaRequest::GetFileInfo { path: stale.into() },
        Duration::from_secs(5),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(tdfs_rpc::RpcError::Remote(
                tdfs_proto::FsError::FileNotFound(_)
            ))
        ),
        "{r:?}"
    );
    let r = meta(
        &c,
        None,
        tdfs_proto::meta::MetaRequest::GetFileInfo {
            path: "/p/during9".into(),
        },
        Duration::from_secs(5),
    )
    .await;
    assert!(matches!(r, Ok(MetaResponse::Status(_))), "{r:?}");

    cluster.shutdown().await;
}
