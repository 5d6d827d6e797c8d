//! Failures on the data path: a pipeline datanode killed mid-block, a writer
//! that dies before closing its file, corrupted replicas.

use std::collections::HashSet;
use std::time::Duration;
use tdfs_client::{CreateOptions, FileWriter};
use tdfs_testkit::files::*;
use tdfs_testkit::procs;
use tdfs_testkit::procs::wait_for;

/// The pipeline (datanode ids) of the last block of an open file, from the leader.
fn last_block_targets(cl: &tdfs_local::LocalCluster, path: &str) -> Vec<tdfs_proto::DatanodeId> {
    let leader = cl.leader().expect("a leader");
    leader.inspect(|ns, _| {
        let id = ns.lookup("root", path).unwrap();
        ns.open_file(id).map(|f| f.targets).unwrap_or_default()
    })
}

fn slot_of(cl: &tdfs_local::LocalCluster, id: &tdfs_proto::DatanodeId) -> usize {
    cl.datanodes
        .iter()
        .position(|d| d.id.as_ref() == Some(id))
        .expect("a datanode slot")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_survives_its_second_datanode_dying_mid_block() {
    let bs: u64 = 4 << 20;
    let (_d, mut cl) = cluster(4, bs, |_| {}).await;
    let c = cl.client("root");
    let data = bytes(11, 10 << 20);
    let mut w = FileWriter::create(
        c.clone(),
        "/pipe/f",
        CreateOptions {
            create_parents: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Into the middle of the first block.
    w.write(&data[..1 << 20]).await.unwrap();
    let targets = last_block_targets(&cl, "/pipe/f");
    assert_eq!(targets.len(), 3);
    let victim = targets[1].clone();
    cl.stop_datanode(slot_of(&cl, &victim)).await;
    w.write(&data[1 << 20..]).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(
        sha(&read(&c, "/pipe/f", 0, data.len() as u64).await),
        sha(&data)
    );
    let lbs = wait_replicas(&c, "/pipe/f", 3).await;
    for lb in &lbs.blocks {
        assert_eq!(lb.locations.len(), 3, "block {} replicas", lb.block.id);
        assert!(
            lb.locations.iter().all(|l| l.id != victim),
            "a replica on the dead node"
        );
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_loses_its_lease_and_leaves_no_orphans() {
    let bs: u64 = 256 << 10;
    let (dir, cl) = cluster(4, bs, |cfg| {
        cfg.tweak_meta = Some(std::sync::Arc::new(|m| {
            m.superuser = "root".into();
            m.lease_timeout_ms = 1500;
        }));
    })
    .await;
    let data = bytes(12, (2 * bs + bs / 2) as usize);
    {
        // A writer that dies: two full blocks and half of a third, never closed.
        let dying = cl.client("root");
        let mut w = FileWriter::create(
            dying.clone(),
            "/lease/f",
            CreateOptions {
                create_parents: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        w.write(&data).await.unwrap();
        assert!(c_stat_uc(&cl, "/lease/f").await);
        drop(w);
        drop(dying);
    }
    let c = cl.client("root");
    wait_for(
        "lease recovery to close the file",
        Duration::from_secs(20),
        || async {
            let st = c.stat("/lease/f").await.ok()?;
            (!st.under_construction).then_some(st)
        },
    )
    .await;
    let st = c.stat("/lease/f").await.unwrap();
    // The finished blocks are kept; the unfinished one is dropped.
    assert_eq!(st.length, 2 * bs);
    assert_eq!(
        read(&c, "/lease/f", 0, st.length).await,
        data[..2 * bs as usize]
    );
    let live: HashSet<u64> = c
        .block_locations("/lease/f", 0, u64::MAX)
        .await
        .unwrap()
        .blocks
        .iter()
        .map(|b| b.block.id)
        .collect();
    wait_for(
        "no orphan replicas on any datanode",
        Duration::from_secs(20),
        || async {
            let orphans: usize = cl
                .datanodes
                .iter()
                .filter_map(|d| d.handle.as_ref())
                .flat_map(|h| h.store.replicas())
                .filter(|r| !live.contains(&r.id))
                .count();
            (orphans == 0).then_some(())
        },
    )
    .await;
    for i in 1..=4 {
        let rbw = dir.path().join(format!("dn-{i}")).join("rbw");
        let left: Vec<_> = std::fs::read_dir(&rbw)
            .map(|r| r.collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "partial replicas left in {}",
            rbw.display()
        );
    }
    cl.shutdown().await;
}

async fn c_stat_uc(cl: &tdfs_local::LocalCluster, p: &str) -> bool {
    cl.client("root").stat(p).await.unwrap().under_construction
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_survive_corrupted_replicas_and_the_bad_ones_are_dropped() {
    procs::expect_corrupt_replicas();
    let (dir, cl) = cluster(4, 1 << 20, |_| {}).await;
    let c = cl.client("root");
    let data = bytes(13, 1 << 20);
    write(&c, "/bad/f", &data, 1 << 20).await;
    let lbs = wait_replicas(&c, "/bad/f", 3).await;
    let b = &lbs.blocks[0];
    assert_eq!(b.locations.len(), 3);
    // Flip a byte in two of the three replicas on disk.
    let mut corrupted = Vec::new();
    for loc in b.locations.iter().take(2) {
        let slot = slot_of(&cl, &loc.id);
        let f = dir
            .path()
            .join(format!("dn-{}", slot + 1))
            .join("current")
            .join(format!("blk_{}_{}.data", b.block.id, b.block.gen));
        let mut bytes = std::fs::read(&f).unwrap();
        bytes[12345] ^= 0x40;
        std::fs::write(&f, &bytes).unwrap();
        corrupted.push(slot);
    }
    // Every read returns the right bytes, whichever replica it tries first;
    // a reader reports each bad replica it meets, and its datanode verifies
    // and drops it. Replicas are tried in random order, so keep reading until
    // both bad ones have been met and dropped.
    wait_for(
        "the corrupt replicas to be met and dropped",
        Duration::from_secs(30),
        || async {
            assert_eq!(
                sha(&read(&c, "/bad/f", 0, data.len() as u64).await),
                sha(&data)
            );
            let held = corrupted
                .iter()
                .filter(|s| {
                    cl.datanodes[**s]
                        .handle
                        .as_ref()
                        .is_some_and(|h| h.store.get(b.block.id).is_some())
                })
                .count();
            (held == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        sha(&read(&c, "/bad/f", 0, data.len() as u64).await),
        sha(&data)
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_whose_every_node_dies_gets_replacements() {
    let bs: u64 = 4 << 20;
    let (_d, mut cl) = cluster(6, bs, |_| {}).await;
    let c = cl.client("root");
    let data = bytes(14, 6 << 20);
    let mut w = FileWriter::create(
        c.clone(),
        "/all-down/f",
        CreateOptions {
            create_parents: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    w.write(&data[..1 << 20]).await.unwrap();
    let targets = last_block_targets(&cl, "/all-down/f");
    assert_eq!(targets.len(), 3);
    for t in &targets {
        let slot = slot_of(&cl, t);
        cl.stop_datanode(slot).await;
    }
    w.write(&data[1 << 20..]).await.unwrap();
    w.close().await.unwrap();
    assert_eq!(
        sha(&read(&c, "/all-down/f", 0, data.len() as u64).await),
        sha(&data)
    );
    let lbs = wait_replicas(&c, "/all-down/f", 3).await;
    for lb in &lbs.blocks {
        assert!(
            lb.locations.iter().all(|l| !targets.contains(&l.id)),
            "block {} kept a replica on a dead node",
            lb.block.id
        );
    }
    cl.shutdown().await;
}
