//! A crash at every step of publishing and quarantining a replica (the
//! `failpoints` feature, on for this crate's tests through its
//! dev-dependency on itself): the crash point's callback crashes the
//! in-memory disk, the store is reopened on what the disk kept, and it
//! holds either no replica or a complete one, never one that reads wrong;
//! a replica acknowledged before the crash is always there.
//!
//! Failpoints are process-wide, so every test here holds
//! `fail::FailScenario` (one at a time) and this file is its own test
//! binary.

mod common;

use common::pattern;
use common::store::*;
use std::path::Path;
use tdfs_datanode::block_store::failpoints::{PUBLISH, QUARANTINE};
use tdfs_datanode::block_store::Check;
use tdfs_disk::{Disk, MemDisk};

/// Whether the view of the disk the store used is dead (the point fired).
fn crashed(view: &MemDisk) -> bool {
    view.read_dir(Path::new("/"))
        .is_err_and(|e| e.raw_os_error() == Some(libc::EIO))
}

#[test]
fn a_crash_at_any_publish_step_leaves_no_replica_or_a_complete_one() {
    let scenario = fail::FailScenario::setup();
    for &point in PUBLISH {
        for with_old in [false, true] {
            let mem = MemDisk::new();
            let store = open_on(mem.shared());
            let bystander = pattern(CHUNK_3, 70);
            put(&store, 7, 1, &bystander).unwrap();
            let old = pattern(1000, 1);
            if with_old {
                put(&store, 1, 1, &old).unwrap();
            }
            let m = mem.clone();
            fail::cfg_callback(point, move || m.crash()).unwrap();
            let data = pattern(CHUNK_3, 2);
            let acked = put(&store, 1, 2, &data).is_ok();
            fail::remove(point);
            assert!(crashed(&mem), "{point} did not fire");
            drop(store);

            let disk = mem.restarted();
            let store = open_on(disk.shared());
            let case =
                format!("crash at {point} (older generation present: {with_old}, acked: {acked})");
            match store.get(1) {
                Some(r) if r.gen == 2 => {
                    assert_eq!(read_all(&store, 1, 2).unwrap(), data, "{case}");
                    assert!(store.verify(1).unwrap(), "{case}");
                }
                Some(r) => {
                    assert!(with_old && !acked, "{case}: gen {}", r.gen);
                    assert_eq!(read_all(&store, 1, 1).unwrap(), old, "{case}");
                }
                None => assert!(!with_old && !acked, "{case}: no replica"),
            }
            assert!(store.quarantined().is_empty(), "{case}");
            assert!(names(&disk, "rbw").is_empty(), "{case}");
            assert_eq!(read_all(&store, 7, 1).unwrap(), bystander, "{case}");
            println!("{case}: replica {:?}", store.get(1).map(|r| r.gen));
        }
    }
    scenario.teardown();
}

#[test]
fn a_crash_at_any_quarantine_step_keeps_the_replica_whole_in_one_place() {
    let scenario = fail::FailScenario::setup();
    for &point in QUARANTINE {
        let mem = MemDisk::new();
        let store = open_on(mem.shared());
        put(&store, 1, 1, &pattern(CHUNK_3, 3)).unwrap();
        flip(&mem, "current/blk_1_1.data", 17);
        let damaged = mem.read(Path::new("/dn/current/blk_1_1.data")).unwrap();
        let m = mem.clone();
        fail::cfg_callback(point, move || m.crash()).unwrap();
        let _ = store.check(1);
        fail::remove(point);
        assert!(crashed(&mem), "{point} did not fire");
        drop(store);

        let disk = mem.restarted();
        let store = open_on(disk.shared());
        let (cur, quar) = (names(&disk, "current"), names(&disk, "quarantine"));
        let both = vec!["blk_1_1.data".to_string(), "blk_1_1.meta".to_string()];
        let dir = if store.get(1).is_some() {
            // The move never became durable: the replica is as it was, and
            // the next check finds it again.
            assert!(store.quarantined().is_empty(), "{point}");
            assert_eq!((&cur, &quar), (&both, &vec![]), "{point}");
            "current"
        } else {
            assert_eq!(store.quarantined(), vec![(1, 1)], "{point}");
            assert_eq!((&cur, &quar), (&vec![], &both), "{point}");
            "quarantine"
        };
        let kept = disk
            .read(&Path::new(DIR).join(dir).join("blk_1_1.data"))
            .unwrap();
        assert_eq!(kept, damaged, "{point}: the bytes are kept");
        if dir == "current" {
            assert_eq!(store.check(1).unwrap(), Check::Quarantined { gen: 1 });
        }
        println!("crash at {point}: replica in {dir}");
    }
    scenario.teardown();
}

/// Three chunks and a bit.
const CHUNK_3: usize = 3 * tdfs_transfer::CHUNK + 11;
