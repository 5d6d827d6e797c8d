//! The block store under disk faults (through `tdfs_disk::FaultyDisk` over
//! an in-memory disk that can crash), and quarantine: corrupt or
//! unreadable replicas are moved aside, never served, reported, and
//! deleted only by the leader's generation-named `Delete`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_datanode::block_store::{BlockState, Check, Deleted};
use tdfs_datanode::node::{self, DatanodeConfig};
use tdfs_datanode::scanner::ScanConfig;
use tdfs_disk::{Disk, Fault, FaultyDisk, MemDisk};
use tdfs_proto::meta::{DatanodeAddr, DatanodeCommand, DatanodeRequest};
use tdfs_proto::FsError;
use tdfs_testkit::datanodes::meta::FakeMeta;
use tdfs_testkit::datanodes::store::*;
use tdfs_testkit::datanodes::{pattern, read};
use tdfs_transfer::CHUNK;

fn ends(suffix: &'static str) -> impl Fn(&Path) -> bool + Send + Sync {
    move |p: &Path| p.to_string_lossy().ends_with(suffix)
}

fn in_rbw(p: &Path) -> bool {
    p.starts_with(Path::new(DIR).join("rbw"))
}

#[test]
fn unreadable_replicas_at_startup_are_quarantined_with_their_data_kept() {
    let mem = MemDisk::new();
    let data: Vec<Vec<u8>> = (0..4).map(|i| pattern(CHUNK + 100 * i, i as u64)).collect();
    {
        let store = open_on(mem.shared());
        for (i, d) in data.iter().enumerate() {
            put(&store, i as u64 + 1, 1, d).unwrap();
        }
    }
    let faulty = FaultyDisk::new(mem.shared());
    faulty.inject(Fault::ReadError(libc::EIO), ends("current/blk_1_1.meta"));
    faulty.inject(Fault::OpenError(libc::EACCES), ends("current/blk_2_1.data"));
    faulty.inject(Fault::OpenError(libc::EMFILE), ends("current/blk_3_1.meta"));
    let store = open_on(Arc::new(faulty));
    let held: Vec<u64> = store.replicas().iter().map(|r| r.id).collect();
    assert_eq!(held, vec![4]);
    assert_eq!(store.quarantined(), vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(store.state(1), Some(BlockState::Quarantined));
    assert_eq!(store.usage().blocks, 1);
    assert_eq!(store.stats.quarantined.get(), 3);
    assert!(matches!(
        store.open_read(2, 1),
        Err(FsError::BlockNotFound(2))
    ));
    // The bytes are kept aside, whole.
    assert_eq!(names(&mem, "current"), vec!["blk_4_1.data", "blk_4_1.meta"]);
    for (i, d) in data.iter().enumerate().take(3) {
        let p = Path::new(DIR).join(format!("quarantine/blk_{}_1.data", i + 1));
        assert_eq!(&mem.read(&p).unwrap(), d, "replica {}", i + 1);
    }
    // Durably: a crash and a restart without the faults find them there.
    drop(store);
    mem.crash();
    let store = open_on(mem.restarted().shared());
    assert_eq!(store.quarantined(), vec![(1, 1), (2, 1), (3, 1)]);
    assert_eq!(read_all(&store, 4, 1).unwrap(), data[3]);
}

#[test]
fn a_replica_found_corrupt_is_quarantined_never_served_and_survives_restarts() {
    let mem = MemDisk::new();
    let store = open_on(mem.shared());
    let data = pattern(3 * CHUNK + 5, 1);
    put(&store, 1, 3, &data).unwrap();
    put(&store, 2, 3, &data).unwrap();
    assert_eq!(store.check(1).unwrap(), Check::Good);
    flip(&mem, "current/blk_1_3.data", 2 * CHUNK as u64 + 7);
    // A reader opened before the quarantine keeps its bytes (and sees the
    // CRC failure itself); one opened after finds nothing.
    let early = store.open_read(1, 3).unwrap();
    assert_eq!(store.check(1).unwrap(), Check::Quarantined { gen: 3 });
    assert_eq!(store.check(1).unwrap(), Check::Gone);
    assert!(matches!(
        store.open_read(1, 3),
        Err(FsError::BlockNotFound(1))
    ));
    let mut buf = vec![0u8; CHUNK];
    let (n, crc) = early.read_chunk(2, &mut buf).unwrap();
    assert_ne!(crc32c::crc32c(&buf[..n]), crc);
    assert!(store.get(1).is_none());
    assert_eq!(store.replicas().len(), 1);
    assert_eq!(store.usage().blocks, 1);
    // Still taking space (data and meta file).
    assert!(store.usage().used > 2 * data.len() as u64);
    assert_eq!(
        names(&mem, "quarantine"),
        vec!["blk_1_3.data", "blk_1_3.meta"]
    );
    // The same generation is not accepted again while the corrupt copy is
    // kept (a delete by generation would take both).
    assert!(matches!(
        store.begin_write(1, 3, 10),
        Err(FsError::InvalidArgument(_))
    ));
    drop(early);
    drop(store);
    let store = open_on(mem.restarted().shared());
    assert_eq!(store.quarantined(), vec![(1, 3)]);
    assert!(store.get(1).is_none());
    assert_eq!(read_all(&store, 2, 3).unwrap(), data);
}

#[test]
fn an_interrupted_quarantine_is_finished_on_open() {
    let mem = MemDisk::new();
    {
        let store = open_on(mem.shared());
        put(&store, 1, 1, &pattern(100, 1)).unwrap();
    }
    // The data file made it into quarantine/, the meta file did not.
    let dir = Path::new(DIR);
    mem.rename(
        &dir.join("current/blk_1_1.data"),
        &dir.join("quarantine/blk_1_1.data"),
    )
    .unwrap();
    let store = open_on(mem.shared());
    assert_eq!(store.quarantined(), vec![(1, 1)]);
    assert!(names(&mem, "current").is_empty());
    assert_eq!(
        names(&mem, "quarantine"),
        vec!["blk_1_1.data", "blk_1_1.meta"]
    );
}

#[test]
fn delete_names_a_generation_and_touches_nothing_newer() {
    let mem = MemDisk::new();
    let store = open_on(mem.shared());
    let (a, b) = (pattern(1000, 1), pattern(2000, 2));
    put(&store, 1, 1, &a).unwrap();
    flip(&mem, "current/blk_1_1.data", 5);
    assert_eq!(store.check(1).unwrap(), Check::Quarantined { gen: 1 });
    // A newer generation arrives (pipeline recovery, re-replication).
    put(&store, 1, 2, &b).unwrap();
    assert_eq!(store.delete(1, 0).unwrap(), Deleted::default());
    assert_eq!(
        store.delete(1, 1).unwrap(),
        Deleted {
            finalized: None,
            quarantined: vec![1]
        }
    );
    assert!(store.quarantined().is_empty());
    assert!(names(&mem, "quarantine").is_empty());
    assert_eq!(read_all(&store, 1, 2).unwrap(), b);
    // An older generation leaves the newer replica alone.
    assert!(!store.delete(1, 1).unwrap().any());
    assert_eq!(store.get(1).unwrap().gen, 2);
    assert_eq!(
        store.delete(1, 2).unwrap(),
        Deleted {
            finalized: Some(2),
            quarantined: vec![]
        }
    );
    assert!(names(&mem, "current").is_empty());
    assert_eq!(store.usage().used, 0);
    // The deletion is durable.
    mem.crash();
    let store = open_on(mem.restarted().shared());
    assert!(store.replicas().is_empty() && store.quarantined().is_empty());
}

#[test]
fn enospc_mid_write_is_no_space_and_publishes_nothing() {
    let mem = MemDisk::new();
    let faulty = FaultyDisk::new(mem.shared());
    let store = open_on(Arc::new(faulty.clone()));
    let old = pattern(2 * CHUNK + 3, 1);
    put(&store, 1, 1, &old).unwrap();
    let used = store.usage().used;
    faulty.inject(Fault::NoSpaceAfter(CHUNK as u64 + 10), in_rbw);
    let data = pattern(4 * CHUNK, 2);
    let mut w = store.begin_write(2, 1, data.len() as u64).unwrap();
    assert_eq!(store.usage().pending, data.len() as u64);
    w.write_chunk(&data[..CHUNK], crc32c::crc32c(&data[..CHUNK]))
        .unwrap();
    let c = &data[CHUNK..2 * CHUNK];
    match w.write_chunk(c, crc32c::crc32c(c)) {
        Err(FsError::NoSpace(msg)) => assert!(msg.contains("disk full"), "{msg}"),
        other => panic!("expected NoSpace, got {other:?}"),
    }
    drop(w);
    assert_eq!(store.usage().pending, 0);
    assert_eq!(store.usage().used, used);
    assert_eq!(store.state(2), None);
    assert!(names(&mem, "rbw").is_empty());
    assert_eq!(read_all(&store, 1, 1).unwrap(), old);
    assert!(store.verify(1).unwrap());
    // A full disk at the meta file: the same.
    faulty.clear();
    faulty.inject(Fault::NoSpaceAfter(CHUNK as u64), in_rbw);
    let r = put(&store, 3, 1, &data[..CHUNK]);
    assert!(matches!(r, Err(FsError::NoSpace(_))), "{r:?}");
    assert!(names(&mem, "rbw").is_empty() && store.get(3).is_none());
    faulty.clear();
    put(&store, 2, 1, &data).unwrap();
}

#[test]
fn a_torn_write_and_a_crash_leave_no_replica() {
    let mem = MemDisk::new();
    let faulty = FaultyDisk::new(mem.shared());
    let store = open_on(Arc::new(faulty.clone()));
    let old = pattern(CHUNK + 1, 1);
    put(&store, 1, 1, &old).unwrap();
    let rule = faulty.inject_times(Fault::TornWrite { keep: 100 }, 1, ends(".data"));
    let data = pattern(3 * CHUNK, 2);
    let mut w = store.begin_write(2, 1, data.len() as u64).unwrap();
    w.write_chunk(&data[..CHUNK], crc32c::crc32c(&data[..CHUNK]))
        .unwrap_err();
    assert_eq!(faulty.fired(rule), 1);
    // The node dies with the torn write on its disk.
    mem.crash();
    drop(w);
    drop(store);
    let store = open_on(mem.restarted().shared());
    assert!(store.get(2).is_none() && store.quarantined().is_empty());
    assert!(names(&mem.restarted(), "rbw").is_empty());
    assert_eq!(read_all(&store, 1, 1).unwrap(), old);
}

#[test]
fn a_slow_fsync_does_not_hold_up_readers_of_other_replicas() {
    let mem = MemDisk::new();
    let faulty = FaultyDisk::new(mem.shared());
    let store = open_on(Arc::new(faulty.clone()));
    let old = pattern(2 * CHUNK, 1);
    put(&store, 1, 1, &old).unwrap();
    // The directory fsync of publishing, taken under the store's publish lock.
    let current = Path::new(DIR).join("current");
    let delay = Duration::from_secs(3);
    let rule = faulty.inject(Fault::SlowSync(delay), move |p: &Path| p == current);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || put(&store, 2, 1, &pattern(CHUNK, 2)))
    };
    wait_until("the slow fsync to start", 10, || faulty.fired(rule) > 0);
    let t = Instant::now();
    assert_eq!(read_all(&store, 1, 1).unwrap(), old);
    assert!(store.get(1).is_some());
    assert!(store.usage().blocks >= 1);
    assert!(t.elapsed() < delay, "a read waited {:?}", t.elapsed());
    assert!(!writer.is_finished(), "the fsync was not slow after all");
    faulty.clear();
    writer.join().unwrap().unwrap();
    assert_eq!(read_all(&store, 2, 1).unwrap(), pattern(CHUNK, 2));
}

/// Starts a datanode daemon on `store` reporting to `meta`; the scanner
/// checks the first replica at once and then waits a very long time.
async fn daemon(
    meta: &FakeMeta,
    store: Arc<tdfs_datanode::BlockStore>,
) -> (node::DatanodeHandle, DatanodeAddr) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut cfg = DatanodeConfig::new(addr.clone(), vec![meta.addr.clone()]);
    cfg.gossip = false;
    cfg.heartbeat = Duration::from_millis(50);
    cfg.scan = ScanConfig {
        bytes_per_sec: 1,
        pass_interval: Duration::from_secs(3600),
    };
    let dn_addr = DatanodeAddr {
        id: store.datanode_id().clone(),
        addr,
        http: None,
    };
    (node::start(cfg, store, l).await.unwrap(), dn_addr)
}

fn corrupt_in(r: &DatanodeRequest) -> Option<Vec<(u64, u64)>> {
    match r {
        DatanodeRequest::IncrementalReport { corrupt, .. } if !corrupt.is_empty() => {
            Some(corrupt.clone())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_quarantined_replicas_and_deletes_them_only_on_command() {
    let mem = MemDisk::new();
    let data = pattern(CHUNK + 9, 7);
    {
        let store = open_on(mem.shared());
        for id in 1..=3 {
            put(&store, id, 1, &data).unwrap();
        }
    }
    // 1 cannot be read at start; 2 is damaged, and the scanner's first
    // replica; 3 is damaged later and checked on the leader's word.
    let faulty = FaultyDisk::new(mem.shared());
    faulty.inject(Fault::ReadError(libc::EIO), ends("current/blk_1_1.meta"));
    flip(&mem, "current/blk_2_1.data", 100);
    let store = open_on(Arc::new(faulty));
    let meta = FakeMeta::start().await;
    let (dn, addr) = daemon(&meta, store.clone()).await;
    let (quarantined, held) = meta
        .wait("a full report", |r| match r {
            DatanodeRequest::FullReport {
                quarantined,
                blocks,
                ..
            } => Some((quarantined.clone(), blocks.len())),
            _ => None,
        })
        .await;
    assert!(quarantined.contains(&(1, 1)), "{quarantined:?}");
    assert!(held >= 1, "{held}");
    // The scanner's find comes in an incremental report, or in the full
    // report when it was quicker than the registration.
    meta.wait("the scanner's report", |r| match r {
        DatanodeRequest::FullReport { quarantined, .. } => {
            quarantined.contains(&(2, 1)).then_some(())
        }
        _ => corrupt_in(r).filter(|c| c.contains(&(2, 1))).map(|_| ()),
    })
    .await;
    assert!(matches!(
        read(&addr, 2, 1, 0, u64::MAX).await,
        Err(FsError::BlockNotFound(2))
    ));
    flip(&mem, "current/blk_3_1.data", 5);
    meta.push(DatanodeCommand::Verify { blocks: vec![3] });
    meta.wait("the verify report", |r| {
        corrupt_in(r).filter(|c| c.contains(&(3, 1)))
    })
    .await;
    assert!(store.get(3).is_none());
    assert!(matches!(
        read(&addr, 3, 1, 0, 10).await,
        Err(FsError::BlockNotFound(3))
    ));
    // Nothing is deleted until the leader says so, by generation.
    assert_eq!(store.quarantined(), vec![(1, 1), (2, 1), (3, 1)]);
    meta.push(DatanodeCommand::Delete {
        blocks: vec![(1, 1), (2, 0)],
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.quarantined() != vec![(2, 1), (3, 1)] {
        assert!(Instant::now() < deadline, "{:?}", store.quarantined());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        names(&mem, "quarantine"),
        vec![
            "blk_2_1.data",
            "blk_2_1.meta",
            "blk_3_1.data",
            "blk_3_1.meta"
        ]
    );
    dn.shutdown().await;
}

/// A full report larger than one frame reaches the metadata node as pages
/// that each fit: the fake metadata node's server refuses frames over
/// 128 KiB, the whole inventory encodes to several times that, and every
/// replica arrives exactly once, in ascending pages that tile the id range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_report_larger_than_one_frame_arrives_in_pages() {
    const N: u64 = 10_000;
    const PAGE: usize = 1_000;
    const FRAME: usize = 128 << 10;
    // A real directory without fsync: the in-memory disk's accounting is
    // linear in its files, too slow for this many.
    let dir = tempfile::tempdir().unwrap();
    let mut sc = tdfs_datanode::block_store::StoreConfig::new(dir.path());
    sc.fsync = false;
    let store = tdfs_datanode::BlockStore::open(sc).unwrap();
    let mut all = Vec::new();
    for id in 1..=N {
        all.push(put(&store, id, 1, &pattern(16, id)).unwrap());
    }
    let whole = tdfs_proto::codec::encode(&all).unwrap().len();
    assert!(
        whole > 2 * FRAME,
        "the inventory ({whole} bytes) must not fit in one {FRAME}-byte frame"
    );
    let meta = FakeMeta::start_with(tdfs_rpc::ServerConfig {
        max_frame: FRAME,
        ..Default::default()
    })
    .await;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut cfg = DatanodeConfig::new(l.local_addr().unwrap().to_string(), vec![meta.addr.clone()]);
    cfg.gossip = false;
    cfg.report_page = PAGE;
    let dn = node::start(cfg, store.clone(), l).await.unwrap();
    meta.wait("the last report page", |r| match r {
        DatanodeRequest::FullReport { last: true, .. } => Some(()),
        _ => None,
    })
    .await;
    let pages: Vec<_> = meta
        .seen()
        .into_iter()
        .filter_map(|r| match r {
            DatanodeRequest::FullReport {
                report,
                page,
                hi,
                last,
                blocks,
                ..
            } => Some((report, page, hi, last, blocks)),
            _ => None,
        })
        .collect();
    let report = pages[0].0;
    let pages: Vec<_> = pages.into_iter().filter(|p| p.0 == report).collect();
    assert_eq!(pages.len(), N as usize / PAGE, "pages of one report");
    let mut lo = 0u64;
    let mut got = Vec::new();
    for (i, (_, page, hi, last, blocks)) in pages.iter().enumerate() {
        assert_eq!(*page as usize, i, "pages in order");
        assert_eq!(*last, i + 1 == pages.len());
        assert!(
            blocks.iter().all(|b| b.id >= lo && b.id <= *hi),
            "page {i} outside its range"
        );
        lo = hi.saturating_add(1);
        got.extend(blocks.iter().cloned());
    }
    assert_eq!(
        pages.last().unwrap().2,
        u64::MAX,
        "the last page covers the rest"
    );
    all.sort_by_key(|r| r.id);
    assert_eq!(got, all, "every replica exactly once");
    dn.shutdown().await;
}
