//! One behaviour suite run on every disk (the real one in a temporary
//! directory, the in-memory one, and each behind a `FaultyDisk` with no
//! rules), then what only `MemDisk` does: crash.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tdfs_disk::{Disk, FaultyDisk, ForgetfulDisk, MemDisk, Open, RealDisk};

fn names(d: &dyn Disk, dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = d
        .read_dir(dir)
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What every disk must do the same way.
fn suite(d: &dyn Disk, root: &Path) {
    let dir = root.join("a/b");
    d.create_dir_all(&dir).unwrap();
    d.create_dir_all(&dir).unwrap();
    assert!(d.metadata(&dir).unwrap().is_dir);
    let f = dir.join("f");
    assert_eq!(
        d.open(&f, Open::Read).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!d.exists(&f).unwrap());

    // Positional writes and reads, holes read as zeros.
    let h = d.open(&f, Open::CreateNew).unwrap();
    h.write_all_at(b"hello", 0).unwrap();
    h.write_all_at(b"!", 7).unwrap();
    assert_eq!(h.size().unwrap(), 8);
    let mut buf = [0u8; 8];
    h.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello\0\0!");
    assert_eq!(h.read_at(&mut buf, 8).unwrap(), 0);
    let e = h.read_exact_at(&mut buf, 4).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
    h.set_len(5).unwrap();
    h.sync_data().unwrap();
    h.sync_all().unwrap();
    h.start_writeback(0, 5);
    drop(h);
    assert_eq!(
        d.metadata(&f).unwrap(),
        tdfs_disk::Metadata {
            len: 5,
            is_dir: false
        }
    );
    assert_eq!(
        d.open(&f, Open::CreateNew).unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(d.read(&f).unwrap(), b"hello");
    assert_eq!(
        d.read_max(&f, 4).unwrap_err().kind(),
        ErrorKind::InvalidData
    );

    // Append-only files keep what they had.
    let log = dir.join("log");
    let a = d.open(&log, Open::Append).unwrap();
    a.append(b"one ").unwrap();
    drop(a);
    let a = d.open(&log, Open::Append).unwrap();
    a.append(b"two").unwrap();
    a.sync_data().unwrap();
    assert_eq!(d.read(&log).unwrap(), b"one two");
    let t = d.open(&log, Open::Truncate).unwrap();
    assert_eq!(t.size().unwrap(), 0);
    drop(t);

    // Rename replaces; an open handle follows its file.
    let g = dir.join("g");
    let rd = d.open(&f, Open::Read).unwrap();
    d.rename(&f, &g).unwrap();
    assert!(!d.exists(&f).unwrap());
    assert_eq!(d.read(&g).unwrap(), b"hello");
    d.write_atomic(&g, b"replaced").unwrap();
    assert_eq!(d.read(&g).unwrap(), b"replaced");
    let mut old = [0u8; 5];
    rd.read_exact_at(&mut old, 0).unwrap();
    assert_eq!(&old, b"hello", "a handle keeps the file it opened");
    assert!(rd.write_at(b"x", 0).is_err(), "a read handle cannot write");
    d.sync_dir(&dir).unwrap();
    assert_eq!(names(d, &dir), vec!["g", "log"]);

    // Removal.
    d.remove_file(&g).unwrap();
    assert_eq!(d.remove_file(&g).unwrap_err().kind(), ErrorKind::NotFound);
    d.create_dir_all(&dir.join("sub/deeper")).unwrap();
    d.open(&dir.join("sub/deeper/x"), Open::Truncate).unwrap();
    d.remove_dir_all(&dir.join("sub")).unwrap();
    assert_eq!(names(d, &dir), vec!["log"]);
    assert!(d.available_space(root).unwrap() > 0);

    // Locks exclude other handles until dropped.
    let lock = root.join("LOCK");
    let l1 = d.try_lock(&lock).unwrap();
    assert_eq!(d.try_lock(&lock).unwrap_err().kind(), ErrorKind::WouldBlock);
    drop(l1);
    let _l2 = d.try_lock(&lock).unwrap();
}

#[test]
fn real_disk() {
    let t = tempfile::tempdir().unwrap();
    suite(&RealDisk, t.path());
    let t = tempfile::tempdir().unwrap();
    suite(&FaultyDisk::new(Arc::new(RealDisk)), t.path());
}

#[test]
fn forgetful_disk() {
    let t = tempfile::tempdir().unwrap();
    suite(&ForgetfulDisk::new(), t.path());
    let t = tempfile::tempdir().unwrap();
    suite(&FaultyDisk::new(Arc::new(ForgetfulDisk::new())), t.path());
}

/// A "power loss" of a [`ForgetfulDisk`]: the process's cache dropped, the
/// real files read again.
#[test]
fn a_forgetful_disk_loses_unsynced_writes_when_dropped() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let d = ForgetfulDisk::new();
    let f = d.open(&dir.join("f"), Open::CreateNew).unwrap();
    f.write_all_at(b"durable", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b" and not", 7).unwrap();
    f.write_all_at(b"D", 0).unwrap();
    // Reads see the unsynced bytes, through every handle and the path.
    assert_eq!(d.read(&dir.join("f")).unwrap(), b"Durable and not");
    assert_eq!(d.metadata(&dir.join("f")).unwrap().len, 15);
    assert_eq!(std::fs::read(dir.join("f")).unwrap(), b"durable");

    // An append-only log: synced records stay, the tail does not, even
    // after its handle is closed (a page cache keeps dirty pages).
    let log = dir.join("log");
    let a = d.open(&log, Open::Append).unwrap();
    a.append(b"one ").unwrap();
    a.sync_data().unwrap();
    a.append(b"two ").unwrap();
    drop(a);
    let a = d.open(&log, Open::Append).unwrap();
    a.append(b"three").unwrap();
    assert_eq!(d.read(&log).unwrap(), b"one two three");

    // An unsynced truncation and an unsynced replace by Open::Truncate.
    std::fs::write(dir.join("cut"), b"0123456789").unwrap();
    let c = d.open(&dir.join("cut"), Open::ReadWrite).unwrap();
    c.set_len(3).unwrap();
    c.set_len(6).unwrap();
    assert_eq!(d.read(&dir.join("cut")).unwrap(), b"012\0\0\0");
    std::fs::write(dir.join("tr"), b"old").unwrap();
    let tr = d.open(&dir.join("tr"), Open::Truncate).unwrap();
    tr.write_all_at(b"new!", 0).unwrap();
    assert_eq!(d.read(&dir.join("tr")).unwrap(), b"new!");

    // Atomic replaces are synced: they survive.
    d.write_atomic(&dir.join("state"), b"v1").unwrap();
    d.write_atomic(&dir.join("state"), b"v2").unwrap();

    // A synced truncation survives too.
    std::fs::write(dir.join("cut2"), b"0123456789").unwrap();
    let c2 = d.open(&dir.join("cut2"), Open::ReadWrite).unwrap();
    c2.set_len(4).unwrap();
    c2.sync_all().unwrap();
    assert!(d.unsynced_bytes() > 0);

    // Power loss: the process (its cache and handles) is gone.
    drop((f, a, c, tr, c2, d));
    let d = ForgetfulDisk::new();
    assert_eq!(d.read(&dir.join("f")).unwrap(), b"durable");
    assert_eq!(d.read(&log).unwrap(), b"one ");
    assert_eq!(d.read(&dir.join("cut")).unwrap(), b"0123456789");
    assert_eq!(d.read(&dir.join("tr")).unwrap(), b"old");
    assert_eq!(d.read(&dir.join("state")).unwrap(), b"v2");
    assert_eq!(d.read(&dir.join("cut2")).unwrap(), b"0123");
    assert_eq!(d.unsynced_bytes(), 0);
}

/// Written through until armed: a kill keeps what was written before, not
/// what was written unsynced after.
#[test]
fn a_write_through_forgetful_disk_forgets_only_once_armed() {
    let t = tempfile::tempdir().unwrap();
    suite(&ForgetfulDisk::write_through(), t.path());
    let dir = t.path();
    let d = ForgetfulDisk::write_through();
    assert!(!d.forgetting());
    let log = dir.join("log");
    let a = d.open(&log, Open::Append).unwrap();
    a.append(b"kept ").unwrap();
    assert_eq!(std::fs::read(&log).unwrap(), b"kept ");
    d.set_forgetting(true);
    a.append(b"synced ").unwrap();
    a.sync_data().unwrap();
    a.append(b"lost").unwrap();
    assert_eq!(d.read(&log).unwrap(), b"kept synced lost");
    drop((a, d));
    assert_eq!(std::fs::read(&log).unwrap(), b"kept synced ");
}

/// Unsynced bytes follow their file through a rename, and are forgotten
/// with a file that was removed.
#[test]
fn a_forgetful_disk_keys_unsynced_bytes_by_file() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let d = ForgetfulDisk::new();
    let f = d.open(&dir.join("a"), Open::CreateNew).unwrap();
    f.write_all_at(b"moved", 0).unwrap();
    drop(f);
    d.rename(&dir.join("a"), &dir.join("b")).unwrap();
    assert_eq!(d.read(&dir.join("b")).unwrap(), b"moved");
    let g = d.open(&dir.join("b"), Open::ReadWrite).unwrap();
    g.sync_all().unwrap();
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"moved");
    drop(g);
    let h = d.open(&dir.join("c"), Open::CreateNew).unwrap();
    h.write_all_at(b"gone", 0).unwrap();
    drop(h);
    assert_eq!(d.unsynced_bytes(), 4);
    d.remove_file(&dir.join("c")).unwrap();
    assert_eq!(d.unsynced_bytes(), 0);
    // A new file (perhaps on the same inode number) starts clean.
    let n = d.open(&dir.join("c"), Open::CreateNew).unwrap();
    assert_eq!(n.size().unwrap(), 0);
}

#[test]
fn mem_disk() {
    suite(&MemDisk::new(), Path::new("/data"));
    suite(
        &FaultyDisk::new(MemDisk::new().shared()),
        Path::new("/data"),
    );
    // Relative paths name the same tree.
    suite(&MemDisk::new(), Path::new("rel"));
}

fn durable_dir(d: &MemDisk, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    d.create_dir_all(&p).unwrap();
    d.sync_dir(Path::new("/")).unwrap();
    d.sync_dir(&p).unwrap();
    p
}

#[test]
fn a_crash_forgets_unsynced_writes() {
    let d = MemDisk::new();
    let dir = durable_dir(&d, "/d");
    let f = d.open(&dir.join("f"), Open::CreateNew).unwrap();
    f.write_all_at(b"durable", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b" and not", 7).unwrap();
    d.sync_dir(&dir).unwrap();
    d.crash();
    assert_eq!(f.size().unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(
        d.read(&dir.join("f")).unwrap_err().raw_os_error(),
        Some(libc::EIO)
    );
    let d = d.restarted();
    assert_eq!(d.read(&dir.join("f")).unwrap(), b"durable");
    // Dropping a handle from before the crash changes nothing.
    drop(f);
    assert_eq!(d.read(&dir.join("f")).unwrap(), b"durable");
}

#[test]
fn a_crash_forgets_unsynced_creates_renames_and_removals() {
    let d = MemDisk::new();
    let a = durable_dir(&d, "/a");
    let b = durable_dir(&d, "/b");
    // Durable files, renamed and removed without syncing: back as they were.
    d.write_atomic(&a.join("kept"), b"kept").unwrap();
    d.write_atomic(&a.join("gone"), b"gone").unwrap();
    // Created and synced, but its directory never synced: gone.
    let f = d.open(&a.join("new"), Open::CreateNew).unwrap();
    f.write_all_at(b"x", 0).unwrap();
    f.sync_all().unwrap();
    d.rename(&a.join("kept"), &b.join("moved")).unwrap();
    d.remove_file(&a.join("gone")).unwrap();
    // A directory created but its parent never synced: gone with its files.
    d.create_dir_all(Path::new("/c")).unwrap();
    d.write_atomic(Path::new("/c/f"), b"c").unwrap();
    d.crash();
    let d = d.restarted();
    assert_eq!(names(&d, &a), vec!["gone", "kept"]);
    assert!(names(&d, &b).is_empty());
    assert_eq!(d.read(&a.join("kept")).unwrap(), b"kept");
    assert!(!d.exists(Path::new("/c")).unwrap());

    // A rename synced on the destination only leaves the file in both.
    d.rename(&a.join("kept"), &b.join("moved")).unwrap();
    d.sync_dir(&b).unwrap();
    d.crash();
    let d = d.restarted();
    assert_eq!(d.read(&a.join("kept")).unwrap(), b"kept");
    assert_eq!(d.read(&b.join("moved")).unwrap(), b"kept");
    // Synced on both: moved for good.
    d.remove_file(&a.join("kept")).unwrap();
    d.sync_dir(&a).unwrap();
    d.crash();
    let d = d.restarted();
    assert_eq!(names(&d, &a), vec!["gone"]);
    assert_eq!(names(&d, &b), vec!["moved"]);
}

#[test]
fn a_crash_releases_locks_and_keeps_the_root() {
    let d = MemDisk::new();
    let _l = d.try_lock(Path::new("/LOCK")).unwrap();
    d.crash();
    let d = d.restarted();
    assert!(d.read_dir(Path::new("/")).unwrap().is_empty());
    let _again = d.try_lock(Path::new("/LOCK")).unwrap();
}

#[test]
fn available_space_follows_what_files_hold() {
    let d = MemDisk::with_capacity(1000);
    let f = d.open(Path::new("/f"), Open::CreateNew).unwrap();
    f.write_all_at(&[1u8; 300], 0).unwrap();
    assert_eq!(d.available_space(Path::new("/")).unwrap(), 700);
    drop(f);
    d.remove_file(Path::new("/f")).unwrap();
    d.sync_dir(Path::new("/")).unwrap();
    assert_eq!(d.available_space(Path::new("/")).unwrap(), 1000);
}
