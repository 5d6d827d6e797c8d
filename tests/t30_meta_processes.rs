//! Three `tdfs meta` processes: kill -9 of the leader loses no acknowledged
//! write, the dead node catches up after a restart, and a kill -9 of all
//! three keeps the namespace intact.

use std::time::Duration;
use tdfs_proto::FsError;
use tdfs_testkit::procs::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loses_no_acknowledged_write() {
    let mut m = MetaProcs::start(3);
    let c = m.client("root");
    let leader = m.wait_leader(&c, Duration::from_secs(20)).await;

    // A writer keeps writing through the kill; every acknowledged mkdir is recorded.
    let mut acked = Vec::new();
    for i in 0..100 {
        c.mkdirs(&format!("/w/a{i}"), true).await.unwrap();
        acked.push(format!("/w/a{i}"));
    }
    m.kill(leader);
    for i in 100..200 {
        match c.mkdirs(&format!("/w/a{i}"), true).await {
            Ok(()) => acked.push(format!("/w/a{i}")),
            Err(e) => panic!("write {i} failed across the failover: {e}"),
        }
    }
    let new_leader = m.wait_leader(&c, Duration::from_secs(20)).await;
    assert_ne!(new_leader, leader);
    for p in &acked {
        assert!(c.exists(p).await.unwrap().is_some(), "{p} lost");
    }

    // The killed node comes back and catches up to the same log.
    m.spawn(leader);
    wait_for(
        "the restarted node to catch up",
        Duration::from_secs(20),
        || async {
            let st = m.states(&c).await;
            let old = st.get(&leader)?;
            let cur = st.get(&new_leader)?;
            (old.applied_index >= cur.applied_index && old.leader == Some(new_leader)).then_some(())
        },
    )
    .await;
    // Served by the restarted node itself (a follower read through read index).
    let addr = m.addrs[&leader].clone();
    let mut cfg = tdfs_client::ClientConfig::new(vec![addr], "root");
    cfg.deadline = Duration::from_secs(10);
    let direct = tdfs_client::MetaClient::new(cfg).unwrap();
    for p in &acked {
        assert!(
            direct.exists(p).await.unwrap().is_some(),
            "{p} missing on the restarted node"
        );
    }
    assert!(!m.panicked(), "a node panicked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_all_three_keeps_the_namespace() {
    let mut m = MetaProcs::start(3);
    let c = m.client("root");
    m.wait_leader(&c, Duration::from_secs(20)).await;
    for i in 0..50 {
        c.mkdirs(&format!("/keep/d{i}"), true).await.unwrap();
    }
    c.rename("/keep/d0", "/keep/renamed").await.unwrap();
    c.delete("/keep/d1", false).await.unwrap();
    for id in 1..=3 {
        m.kill(id);
    }
    for id in 1..=3 {
        m.spawn(id);
    }
    let c = m.client("root");
    m.wait_leader(&c, Duration::from_secs(20)).await;
    let names: Vec<String> = c
        .list("/keep")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.len(), 49);
    assert!(names.contains(&"renamed".to_string()));
    assert!(!names.contains(&"d0".to_string()));
    assert!(matches!(
        c.stat("/keep/d1").await,
        Err(FsError::FileNotFound(_))
    ));
    c.mkdirs("/keep/after", false).await.unwrap();
    assert!(!m.panicked(), "a node panicked");
}
