//! Each fault of `FaultyDisk`, alone, on an in-memory disk.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_disk::{Disk, Fault, FaultyDisk, MemDisk, Open};

fn setup() -> (MemDisk, FaultyDisk) {
    let mem = MemDisk::new();
    mem.create_dir_all(Path::new("/d")).unwrap();
    let f = FaultyDisk::new(mem.shared());
    (mem, f)
}

fn is(p: &'static str) -> impl Fn(&Path) -> bool + Send + Sync {
    move |x: &Path| x == Path::new(p)
}

fn errno(r: std::io::Result<impl std::fmt::Debug>) -> Option<i32> {
    r.expect_err("the fault did not fire").raw_os_error()
}

#[test]
fn read_error_hits_reads_of_matching_files_only() {
    let (_, d) = setup();
    d.write_atomic(Path::new("/d/bad"), b"bad").unwrap();
    d.write_atomic(Path::new("/d/good"), b"good").unwrap();
    let rule = d.inject(Fault::ReadError(libc::EIO), is("/d/bad"));
    assert_eq!(errno(d.read(Path::new("/d/bad"))), Some(libc::EIO));
    assert_eq!(d.read(Path::new("/d/good")).unwrap(), b"good");
    // Opening and writing still work: only reads fail.
    let h = d.open(Path::new("/d/bad"), Open::ReadWrite).unwrap();
    h.write_all_at(b"BAD", 0).unwrap();
    assert_eq!(errno(h.read_at(&mut [0u8; 3], 0)), Some(libc::EIO));
    assert_eq!(d.fired(rule), 2);
    d.remove(rule);
    assert_eq!(d.read(Path::new("/d/bad")).unwrap(), b"BAD");
}

#[test]
fn write_error_hits_writes_appends_and_set_len() {
    let (_, d) = setup();
    d.inject(Fault::WriteError(libc::EROFS), |p: &Path| {
        p.starts_with("/d")
    });
    let h = d.open(Path::new("/d/f"), Open::Append).unwrap();
    assert_eq!(errno(h.append(b"x")), Some(libc::EROFS));
    assert_eq!(errno(h.write_at(b"x", 0)), Some(libc::EROFS));
    assert_eq!(errno(h.set_len(3)), Some(libc::EROFS));
    assert_eq!(h.size().unwrap(), 0);
}

#[test]
fn open_error_models_eacces_and_emfile() {
    let (_, d) = setup();
    d.write_atomic(Path::new("/d/f"), b"f").unwrap();
    d.inject_times(Fault::OpenError(libc::EMFILE), 1, is("/d/f"));
    d.inject(Fault::OpenError(libc::EACCES), is("/d/locked"));
    assert_eq!(
        errno(d.open(Path::new("/d/f"), Open::Read)),
        Some(libc::EMFILE)
    );
    // Limited to one firing: the descriptor shortage passed.
    assert_eq!(d.read(Path::new("/d/f")).unwrap(), b"f");
    assert_eq!(
        errno(d.try_lock(Path::new("/d/locked"))),
        Some(libc::EACCES)
    );
}

#[test]
fn no_space_after_a_budget_of_bytes() {
    let (_, d) = setup();
    let rule = d.inject(Fault::NoSpaceAfter(10), |p: &Path| p.starts_with("/d"));
    let h = d.open(Path::new("/d/f"), Open::CreateNew).unwrap();
    h.write_all_at(b"12345678", 0).unwrap();
    assert_eq!(errno(h.write_at(b"abc", 8)), Some(libc::ENOSPC));
    assert_eq!(h.size().unwrap(), 8, "a refused write stores nothing");
    h.write_all_at(b"90", 8).unwrap();
    let other = d.open(Path::new("/d/g"), Open::CreateNew).unwrap();
    assert_eq!(errno(other.write_at(b"x", 0)), Some(libc::ENOSPC));
    assert_eq!(d.fired(rule), 2);
}

#[test]
fn slow_sync_delays_fsyncs_of_matching_paths() {
    let (_, d) = setup();
    let delay = Duration::from_millis(300);
    let rule = d.inject(Fault::SlowSync(delay), is("/d/slow"));
    let slow = d.open(Path::new("/d/slow"), Open::CreateNew).unwrap();
    let fast = d.open(Path::new("/d/fast"), Open::CreateNew).unwrap();
    let t = Instant::now();
    fast.sync_data().unwrap();
    d.sync_dir(Path::new("/d")).unwrap();
    assert!(t.elapsed() < delay);
    let t = Instant::now();
    slow.sync_all().unwrap();
    assert!(t.elapsed() >= delay);
    assert_eq!(d.fired(rule), 1);
}

#[test]
fn sync_error_fails_the_fsync() {
    let (mem, d) = setup();
    d.inject(Fault::SyncError(libc::EIO), is("/d"));
    let h = d.open(Path::new("/d/f"), Open::CreateNew).unwrap();
    h.sync_data().unwrap();
    assert_eq!(errno(d.sync_dir(Path::new("/d"))), Some(libc::EIO));
    // The entry never became durable.
    mem.sync_dir(Path::new("/")).unwrap();
    mem.crash();
    assert!(mem
        .restarted()
        .read_dir(Path::new("/d"))
        .unwrap()
        .is_empty());
}

#[test]
fn a_torn_write_stores_a_prefix_and_a_crash_forgets_it() {
    let (mem, d) = setup();
    mem.sync_dir(Path::new("/")).unwrap();
    let h = d.open(Path::new("/d/f"), Open::CreateNew).unwrap();
    h.write_all_at(b"first ", 0).unwrap();
    h.sync_data().unwrap();
    d.sync_dir(Path::new("/d")).unwrap();
    let rule = d.inject_times(Fault::TornWrite { keep: 3 }, 1, is("/d/f"));
    assert_eq!(errno(h.write_at(b"second", 6)), Some(libc::EIO));
    assert_eq!(d.fired(rule), 1);
    assert_eq!(d.read(Path::new("/d/f")).unwrap(), b"first sec");
    mem.crash();
    let after = Arc::new(mem.restarted());
    assert_eq!(after.read(Path::new("/d/f")).unwrap(), b"first ");
}
