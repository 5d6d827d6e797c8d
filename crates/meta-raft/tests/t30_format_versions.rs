//! The log and snapshot formats of the previous version (1, stamps without
//! a log tick) still load — the log is rewritten in the current version on
//! open — with tick = the stamp's wall time; an unknown version is refused
//! naming the versions this build reads. The fixtures in `fixtures/v1/`
//! were written by the version-1 build (see `fixtures/v1/README.md`).

use openraft::storage::RaftLogReader;
use openraft::EntryPayload;
use std::path::Path;
use tdfs_meta_raft::log_store::{log_file_path, LogStore};
use tdfs_meta_raft::snapshot::read_snapshot_file;
use tdfs_namespace::{FORMAT_VERSION, PREVIOUS_FORMAT_VERSION};
use tdfs_proto::ids::CallId;

const T0: u64 = 1_764_000_000_000;
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1");

fn version_of(path: &Path) -> u16 {
    let b = std::fs::read(path).unwrap();
    u16::from_le_bytes([b[8], b[9]])
}

fn set_version(path: &Path, v: u16) {
    let mut b = std::fs::read(path).unwrap();
    b[8..10].copy_from_slice(&v.to_le_bytes());
    std::fs::write(path, b).unwrap();
}

async fn entries(dir: &Path) -> Vec<tdfs_meta_raft::types::Entry> {
    let mut store = LogStore::open(tdfs_disk::real(), dir, true).unwrap();
    store.try_get_log_entries(0..).await.unwrap()
}

#[tokio::test]
async fn a_version_1_log_is_read_and_rewritten_in_the_current_version() {
    assert_eq!((PREVIOUS_FORMAT_VERSION, FORMAT_VERSION), (1, 2));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("raft");
    std::fs::create_dir_all(&dir).unwrap();
    let log = log_file_path(&dir);
    std::fs::copy(Path::new(FIXTURES).join("log.dat"), &log).unwrap();
    assert_eq!(version_of(&log), 1);
    let es = entries(&dir).await;
    assert_eq!(version_of(&log), FORMAT_VERSION, "not rewritten");
    let idx: Vec<u64> = es.iter().map(|e| e.log_id.index).collect();
    assert_eq!(idx, [1, 2, 3, 4]);
    assert!(matches!(es[0].payload, EntryPayload::Blank));
    assert!(matches!(es[1].payload, EntryPayload::Membership(_)));
    let EntryPayload::Normal(b) = &es[3].payload else {
        panic!("entry 4 is not a batch: {:?}", es[3].payload);
    };
    let stamps: Vec<(u64, u64, Option<CallId>)> = b
        .ops
        .iter()
        .map(|o| (o.stamp.now, o.stamp.tick, o.stamp.call))
        .collect();
    let call = |seq| Some(CallId { client: 7, seq });
    assert_eq!(
        stamps,
        [
            (T0 + 1_000, T0 + 1_000, call(1)),
            (T0 + 2_000, T0 + 2_000, call(2))
        ],
        "a version-1 stamp's tick is its wall time"
    );
    // Reopened: the rewritten file reads the same.
    assert_eq!(entries(&dir).await, es);

    set_version(&log, 3);
    let Err(e) = LogStore::open(tdfs_disk::real(), &dir, true) else {
        panic!("a version-3 log was opened");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("format version 3, this build reads versions 1 and 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_version_1_snapshot_file_is_read_with_its_clock_as_the_tick() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(FIXTURES).join("snapshot.bin"),
        tmp.path().join("snapshot.bin"),
    )
    .unwrap();
    let (meta, ns) = read_snapshot_file(&tdfs_disk::RealDisk, tmp.path())
        .unwrap()
        .expect("the snapshot file");
    assert_eq!(meta.last_log_id.map(|l| l.index), Some(4));
    assert_eq!((ns.clock(), ns.tick()), (T0 + 2_000, T0 + 2_000));
    let created = ns.retry_result(CallId { client: 7, seq: 2 });
    assert!(matches!(created, Some(Ok(_))), "{created:?}");

    set_version(&tmp.path().join("snapshot.bin"), 3);
    let Err(e) = read_snapshot_file(&tdfs_disk::RealDisk, tmp.path()) else {
        panic!("a version-3 snapshot file was read");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("format version 3, this build reads versions 1 and 2"),
        "{msg}"
    );
}
