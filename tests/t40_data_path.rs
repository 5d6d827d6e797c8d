//! The data path on an in-process cluster: round trips across block and
//! packet boundaries, ranged reads, too few datanodes, a full datanode.

use std::time::Duration;
use tdfs_testkit::disk::Tmpfs;
use tdfs_testkit::files::*;
use tdfs_testkit::procs::wait_for;
use tdfs_transfer::CHUNK;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_straddle_block_and_packet_boundaries() {
    let bs: u64 = 4 * CHUNK as u64; // 256 KiB blocks
    let (_d, cl) = cluster(4, bs, |_| {}).await;
    let c = cl.client("root");
    let b = bs as usize;
    let sizes = [
        0,
        1,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        b - 1,
        b,
        b + 1,
        3 * b + CHUNK / 2,
        10 * b + 7,
    ];
    for (i, size) in sizes.iter().enumerate() {
        let data = bytes(i as u64 + 1, *size);
        let path = format!("/rt/f{size}");
        // Odd write sizes exercise buffering across packets and blocks.
        write(&c, &path, &data, 10_007).await;
        let st = c.stat(&path).await.unwrap();
        assert_eq!(st.length, *size as u64, "{path}");
        assert!(!st.under_construction);
        let back = read(&c, &path, 0, *size as u64).await;
        assert_eq!(sha(&back), sha(&data), "{path}: content differs");
        let lbs = wait_replicas(&c, &path, 3).await;
        assert_eq!(lbs.blocks.len(), size.div_ceil(b), "{path}: block count");
        for lb in &lbs.blocks {
            let mut ids: Vec<_> = lb.locations.iter().map(|l| l.id.clone()).collect();
            assert_eq!(ids.len(), 3, "{path}: replicas of block {}", lb.block.id);
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), 3, "{path}: two replicas on one node");
        }
    }
    // Ranged reads: inside a packet, across packets, across blocks, to the end.
    let data = bytes(99, 3 * b + 1234);
    write(&c, "/rt/ranged", &data, 65_536).await;
    for (off, len) in [
        (0u64, 1u64),
        (5, 100),
        (CHUNK as u64 - 3, 10),
        (bs - 10, 20),
        (bs, bs),
        (2 * bs + 17, bs + 1000),
        (data.len() as u64 - 5, 100),
    ] {
        let got = read(&c, "/rt/ranged", off, len).await;
        let end = (off + len).min(data.len() as u64) as usize;
        assert_eq!(got, data[off as usize..end], "range {off}+{len}");
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_three_on_two_datanodes_is_under_replicated_not_refused() {
    let (_d, cl) = cluster(2, 256 << 10, |_| {}).await;
    let c = cl.client("root");
    let data = bytes(7, 700 << 10);
    write(&c, "/two/f", &data, 100_000).await;
    assert_eq!(c.stat("/two/f").await.unwrap().replication, 3);
    let lbs = wait_replicas(&c, "/two/f", 2).await;
    assert_eq!(lbs.blocks.len(), 3);
    for lb in &lbs.blocks {
        assert_eq!(lb.locations.len(), 2);
        assert_ne!(lb.locations[0].id, lb.locations[1].id);
    }
    let f = c.fsck("/").await.unwrap();
    assert_eq!(f.under_replicated, 3, "{f:?}");
    assert_eq!(f.missing, 0);
    assert_eq!(read(&c, "/two/f", 0, data.len() as u64).await, data);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_datanode_refuses_and_the_write_goes_elsewhere() {
    let bs: u64 = 256 << 10;
    // Every datanode on its own 16 MiB disk, so they weigh the same in placement.
    let dir = tempfile::tempdir().unwrap();
    let _disks: Vec<Tmpfs> = (1..=4)
        .map(|i| Tmpfs::mount(&dir.path().join(format!("dn-{i}")), "16m"))
        .collect();
    let mut cfg = tdfs_local::LocalConfig::new(dir.path(), 3, 4);
    cfg.block_size = Some(bs);
    cfg.tweak_meta = Some(std::sync::Arc::new(|m| m.superuser = "root".into()));
    // Slow heartbeats: the leader does not learn that a disk filled up
    // until the write is over, so it keeps offering blocks to that node.
    cfg.tweak_datanode = Some(std::sync::Arc::new(|d| {
        d.heartbeat = Duration::from_secs(2)
    }));
    let cl = tdfs_local::LocalCluster::start(cfg).await.unwrap();
    cl.wait_ready(Duration::from_secs(30)).await.unwrap();
    // Something else fills datanode 1's disk.
    let junk = dir.path().join("dn-1").join("junk");
    let fill = std::process::Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", junk.display()), "bs=64k"])
        .output()
        .unwrap();
    assert!(!fill.status.success(), "dd should stop at a full disk");
    let c = cl.client("root");
    let data = bytes(3, 20 * bs as usize);
    write(&c, "/full/f", &data, 1 << 20).await;
    assert_eq!(read(&c, "/full/f", 0, data.len() as u64).await, data);
    let full = cl.datanodes[0].handle.as_ref().unwrap().store.clone();
    assert_eq!(full.replicas().len(), 0, "the full node stored a block");
    // The refusal is a clear error naming what is missing.
    match full.begin_write(9_999_999, 1, bs) {
        Err(tdfs_proto::FsError::NoSpace(msg)) => assert!(!msg.is_empty()),
        Err(e) => panic!("expected NoSpace, got {e}"),
        Ok(_) => panic!("a full node accepted a block"),
    }
    // Every block went to the three other nodes.
    let lbs = wait_replicas(&c, "/full/f", 3).await;
    let full_id = cl.datanodes[0].id.clone().unwrap();
    for lb in &lbs.blocks {
        assert_eq!(lb.locations.len(), 3, "block {}", lb.block.id);
        assert!(lb.locations.iter().all(|l| l.id != full_id));
    }
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_files_leave_the_disks() {
    let (_d, cl) = cluster(4, 256 << 10, |_| {}).await;
    let c = cl.client("root");
    write(&c, "/del/f", &bytes(5, 1 << 20), 1 << 20).await;
    c.delete("/del/f", false).await.unwrap();
    assert!(c.exists("/del/f").await.unwrap().is_none());
    wait_for(
        "replicas of the deleted file to be removed",
        Duration::from_secs(20),
        || async {
            let total: usize = cl
                .datanodes
                .iter()
                .filter_map(|d| d.handle.as_ref())
                .map(|h| h.store.replicas().len())
                .sum();
            (total == 0).then_some(())
        },
    )
    .await;
    cl.shutdown().await;
}
