//! The consistency check: metadata nodes hash their namespace at the same
//! applied indexes and the leader compares. Members that agree raise
//! nothing; a member whose state silently diverged (here: a snapshot file
//! rewritten with a different namespace but valid checksums, as a bug or
//! undetected corruption would leave it) raises the alarm — an event, the
//! metric, and `NodeState::alarm` (shown by haadmin and the status page).

use std::time::Duration;
use tdfs_meta_raft::snapshot::{read_snapshot_file, write_snapshot_file};
use tdfs_namespace::{LogOp, Stamp};
use tdfs_proto::event::EventKind;
use tdfs_testkit::cluster::*;

const EVERY: u64 = 25;

fn often(c: &mut tdfs_meta_raft::MetaConfig) {
    c.hash_every = EVERY;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_member_raises_the_alarm() {
    // The diverged member is made on purpose; the alarm blames this process.
    tdfs_testkit::log::allow_local("CONSISTENCY ALARM");
    let mut cluster = Cluster::start_with(3, often).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let client = client_id();
    let paths: Vec<String> = (0..2 * EVERY).map(|i| format!("/c/d{i}")).collect();
    mkdir_all(&cluster, &all, client, 1, &paths, 8).await;
    // Agreement: hashes computed everywhere, no alarm.
    wait_until(Duration::from_secs(10), "hashes on every node", || {
        all.iter()
            .all(|id| cluster.node(*id).hashes().latest().is_some())
    })
    .await;
    let (index, h) = cluster.node(leader).hashes().latest().unwrap();
    for id in &all {
        wait_until(Duration::from_secs(10), "the same hash everywhere", || {
            cluster.node(*id).hashes().get(index) == Some(h)
        })
        .await;
    }
    assert!(cluster.node(leader).node_state().alarm.is_none());

    // A follower's snapshot is rewritten with a namespace that has one
    // directory more, checksums and all.
    let victim = *all.iter().find(|id| **id != leader).unwrap();
    let node = cluster.node(victim).clone();
    node.raft().trigger().snapshot().await.unwrap();
    let sm_dir = cluster.data_dir(victim).join("sm");
    wait_until(Duration::from_secs(10), "the follower's snapshot", || {
        read_snapshot_file(&tdfs_disk::RealDisk, &sm_dir)
            .ok()
            .flatten()
            .is_some()
    })
    .await;
    cluster.stop(victim).await;
    let (meta, mut ns) = read_snapshot_file(&tdfs_disk::RealDisk, &sm_dir)
        .unwrap()
        .unwrap();
    let stamp = Stamp {
        user: SUPERUSER.into(),
        call: None,
        now: 1,
        tick: 1,
    };
    let op = LogOp::Mkdirs {
        path: "/planted".into(),
        mode: 0o755,
        parents: true,
    };
    ns.apply(&stamp, &op, &mut Vec::new()).unwrap();
    write_snapshot_file(&tdfs_disk::RealDisk, &sm_dir, &meta, &ns.freeze()).unwrap();
    cluster.restart(victim).await;

    // More writes carry every node past the next hash point.
    let mut events = cluster.node(leader).events().subscribe();
    let more: Vec<String> = (0..2 * EVERY).map(|i| format!("/c/e{i}")).collect();
    mkdir_all(&cluster, &all, client, 1000, &more, 8).await;
    let alarm = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(e) => {
                    if let EventKind::ConsistencyAlarm { index, members } = e.kind {
                        return (index, members);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("no consistency alarm within 20 s");
    println!("alarm at index {}: {:?}", alarm.0, alarm.1);
    assert!(alarm.1.iter().any(|(id, _)| *id == victim), "{alarm:?}");
    let st = cluster.node(leader).node_state();
    assert!(
        st.alarm
            .as_deref()
            .is_some_and(|a| a.contains(&format!("meta-{victim}"))),
        "{st:?}"
    );
    assert!(cluster
        .node(leader)
        .metrics()
        .render(cluster.node(leader).raft())
        .contains("tdfs_meta_consistency_alarm 1"));
    cluster.shutdown().await;
}
