//! The log store on a disk that crashes, fills up and tears writes
//! (`tdfs_disk::MemDisk`, `FaultyDisk`): what was acknowledged survives,
//! what was not is never acknowledged, and nothing panics.

use super::*;
use openraft::{CommittedLeaderId, EntryPayload};
use std::sync::mpsc;
use tdfs_disk::{Fault, FaultyDisk, MemDisk};

fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Blank,
    }
}

fn entries(r: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    r.map(entry).collect()
}

fn dir() -> PathBuf {
    PathBuf::from("/data/raft")
}

fn is_log(p: &Path) -> bool {
    p.ends_with(LOG_FILE)
}

/// Appends and returns the channel `done` reports on.
fn append(
    store: &LogStore,
    es: Vec<Entry>,
) -> Result<mpsc::Receiver<std::io::Result<()>>, StorageError> {
    let (tx, rx) = mpsc::channel();
    store.append_entries(es, Box::new(move |r| drop(tx.send(r))))?;
    Ok(rx)
}

fn acked(rx: &mpsc::Receiver<std::io::Result<()>>) -> bool {
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(r) => r.is_ok(),
        Err(mpsc::RecvTimeoutError::Disconnected) => false,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no answer within 10 s"),
    }
}

async fn indexes(store: &LogStore) -> Vec<u64> {
    let mut r = store.clone();
    let es = r.try_get_log_entries(0..).await.unwrap();
    es.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test]
async fn a_crash_loses_only_unacknowledged_entries() {
    let mem = MemDisk::new();
    let faulty = Arc::new(FaultyDisk::new(mem.shared()));
    let store = LogStore::open(faulty.clone(), &dir(), true).unwrap();
    assert!(acked(&append(&store, entries(1..=5)).unwrap()));
    // The next fsync is slow: the crash comes while entries 6..=8 are
    // written but not yet durable, so not yet acknowledged.
    faulty.inject(Fault::SlowSync(Duration::from_millis(300)), is_log);
    let rx = append(&store, entries(6..=8)).unwrap();
    assert!(rx.try_recv().is_err(), "acknowledged before its fsync");
    mem.crash();
    assert!(!acked(&rx), "entries lost in the crash were acknowledged");
    drop(store);
    let store = LogStore::open(mem.restarted().shared(), &dir(), true).unwrap();
    assert_eq!(indexes(&store).await, (1..=5).collect::<Vec<_>>());
    // And the log goes on from there.
    assert!(acked(&append(&store, entries(6..=7)).unwrap()));
    assert_eq!(store.last_index(), Some(7));
}

#[tokio::test]
async fn a_full_disk_refuses_the_append_and_acknowledges_nothing() {
    let mem = MemDisk::new();
    let faulty = Arc::new(FaultyDisk::new(mem.shared()));
    let store = LogStore::open(faulty.clone(), &dir(), true).unwrap();
    assert!(acked(&append(&store, entries(1..=3)).unwrap()));
    let rule = faulty.inject(Fault::NoSpaceAfter(10), is_log);
    let err = append(&store, entries(4..=40)).expect_err("ENOSPC must fail the append");
    let msg = err.to_string();
    assert!(msg.contains("log.dat"), "{msg}");
    assert!(faulty.fired(rule) > 0);
    assert_eq!(store.last_index(), Some(3), "a refused entry was indexed");
    // Once a write failed the log takes no more, even with space again.
    faulty.remove(rule);
    let again = append(&store, entries(4..=4)).expect_err("a failed log takes no writes");
    assert!(
        again.to_string().contains("takes no more writes"),
        "{again}"
    );
    drop(store);
    let store = LogStore::open(mem.shared(), &dir(), true).unwrap();
    assert_eq!(indexes(&store).await, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_torn_append_then_a_crash_keeps_the_acknowledged_prefix() {
    let mem = MemDisk::new();
    let faulty = Arc::new(FaultyDisk::new(mem.shared()));
    let store = LogStore::open(faulty.clone(), &dir(), true).unwrap();
    assert!(acked(&append(&store, entries(1..=4)).unwrap()));
    faulty.inject_times(Fault::TornWrite { keep: 30 }, 1, is_log);
    assert!(append(&store, entries(5..=9)).is_err());
    drop(store);
    mem.crash();
    let store = LogStore::open(mem.restarted().shared(), &dir(), true).unwrap();
    assert_eq!(indexes(&store).await, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn a_failed_fsync_fails_the_entries_and_stops_the_log() {
    let mem = MemDisk::new();
    let faulty = Arc::new(FaultyDisk::new(mem.shared()));
    let store = LogStore::open(faulty.clone(), &dir(), true).unwrap();
    assert!(acked(&append(&store, entries(1..=2)).unwrap()));
    faulty.inject_times(Fault::SyncError(EIO), 1, is_log);
    assert!(!acked(&append(&store, entries(3..=3)).unwrap()));
    assert!(append(&store, entries(4..=4)).is_err());
}

/// `EIO` on Linux.
const EIO: i32 = 5;

#[tokio::test]
async fn damage_before_valid_records_is_fatal_on_any_disk() {
    let mem = MemDisk::new();
    let store = LogStore::open(mem.shared(), &dir(), true).unwrap();
    assert!(acked(&append(&store, entries(1..=20)).unwrap()));
    drop(store);
    let path = dir().join(LOG_FILE);
    let f = mem.open(&path, Open::ReadWrite).unwrap();
    let at = f.size().unwrap() / 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
    drop(f);
    let err = LogStore::open(mem.shared(), &dir(), true)
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(
        msg.contains("valid records follow") && msg.contains("log.dat"),
        "{msg}"
    );
}
