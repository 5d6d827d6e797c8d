//! [`ForgetfulDisk`]: the real file system with a page cache of its own in
//! process memory, so that killing the process (kill -9) is a power loss
//! for its files.
//!
//! Writes, appends, `set_len` and the truncation of [`Open::Truncate`]
//! stay in this process's memory, per file (per inode: every handle of the
//! file, and a handle that outlives a rename, sees the same bytes, as with
//! a page cache), and reads see them. [`DiskFile::sync_data`] and
//! [`DiskFile::sync_all`] write them through to the real file and fsync it.
//! When the process dies, whatever was not synced is gone: the real file
//! holds what it held at the last sync (a file's synced bytes survive, its
//! unsynced writes do not, an unsynced truncation is undone, a file grown
//! but not synced is back at its synced length).
//!
//! What it does not model:
//! - directory entries: creates, renames and removals go to the real file
//!   system at once and survive a kill whether or not the directory was
//!   synced ([`crate::MemDisk`] models those, in process);
//! - partial write-back: a real kernel may write some dirty pages back
//!   before a crash; here nothing unsynced survives (the harshest case
//!   for data, the kindest for torn writes);
//! - writers outside this disk: a change made to the real file by another
//!   process while this one holds unsynced bytes of it is seen only where
//!   this process wrote nothing (tests that damage files on disk do it
//!   while the daemon is stopped, or to files it has synced).
//!
//! [`ForgetfulDisk::write_through`] starts with the cache off (writes go
//! to the real file at once, so a kill is only a process kill) until
//! [`ForgetfulDisk::set_forgetting`] turns it on: the chaos suite's daemons
//! run so, and its `PowerLoss` fault turns it on in every daemon (SIGUSR1),
//! lets them run on, then kills them all. The switch is meant to go on
//! once per process.
//!
//! Selected in the daemons only by test builds (`TDFS_TEST_DISK`, see
//! `tdfs_rpc::bugs::test_disk` and `crates/cli/src/daemon.rs`); never in a
//! release.

use crate::real::options;
use crate::{DirEntry, Disk, DiskFile, Metadata, Open, RealDisk};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// (device, inode): which real file a cache entry is for.
type Key = (u64, u64);

/// The real file system behind a per-process cache of unsynced writes.
/// Clones share the cache and the switch.
#[derive(Clone, Debug, Default)]
pub struct ForgetfulDisk {
    cache: Arc<Mutex<HashMap<Key, Arc<Cached>>>>,
    /// Off: writes go straight to the real file (as [`RealDisk`]'s do)
    /// unless the file already holds unsynced bytes here.
    forgetting: Arc<AtomicBool>,
}

/// One real file's cache entry, shared by its handles. Kept while a handle
/// is open or while it holds unsynced bytes (its `file` keeps the inode
/// allocated, so the key cannot name another file meanwhile).
#[derive(Debug)]
struct Cached {
    /// Read-write handle of the real file (not `O_APPEND`): write-back.
    file: File,
    /// `None`: clean, the real file is the truth.
    dirty: Mutex<Option<Dirty>>,
}

/// What this process wrote and did not sync.
#[derive(Debug)]
struct Dirty {
    /// The file's length as readers see it.
    len: u64,
    /// Bytes of the real file still visible: the lowest unsynced
    /// truncation (`u64::MAX`: none).
    keep: u64,
    /// Written bytes by offset, non-overlapping, within `len`.
    extents: BTreeMap<u64, Vec<u8>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn key(m: &std::fs::Metadata) -> Key {
    (m.dev(), m.ino())
}

impl Dirty {
    fn new(real_len: u64) -> Dirty {
        Dirty {
            len: real_len,
            keep: u64::MAX,
            extents: BTreeMap::new(),
        }
    }

    /// Drops written bytes at or past `at`.
    fn cut(&mut self, at: u64) {
        let _ = self.extents.split_off(&at);
        if let Some((&off, buf)) = self.extents.range_mut(..at).next_back() {
            if off + buf.len() as u64 > at {
                buf.truncate((at - off) as usize);
            }
        }
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            self.cut(len);
            self.keep = self.keep.min(len);
        }
        self.len = len;
    }

    fn write(&mut self, buf: &[u8], offset: u64) {
        if buf.is_empty() {
            return;
        }
        let end = offset + buf.len() as u64;
        // Cut out what the new bytes cover, keeping the parts outside.
        let mut tail = self.extents.split_off(&offset);
        if let Some((&off, prev)) = self.extents.range_mut(..offset).next_back() {
            let prev_end = off + prev.len() as u64;
            if prev_end > end {
                let rest = prev[(end - off) as usize..].to_vec();
                tail.insert(end, rest);
            }
            if prev_end > offset {
                prev.truncate((offset - off) as usize);
            }
        }
        let mut after = tail.split_off(&end);
        if let Some((&off, last)) = tail.iter().next_back() {
            let last_end = off + last.len() as u64;
            if last_end > end {
                after.insert(end, last[(end - off) as usize..].to_vec());
            }
        }
        // Appending to the extent just before: grow it in place.
        match self.extents.iter_mut().next_back() {
            Some((&off, prev)) if off + prev.len() as u64 == offset => prev.extend_from_slice(buf),
            _ => {
                self.extents.insert(offset, buf.to_vec());
            }
        }
        self.extents.append(&mut after);
        self.len = self.len.max(end);
    }

    /// Reads at `offset` into `buf`: the real file's visible bytes, zeros
    /// past them, the written bytes over both.
    fn read(&self, real: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let n = (self.len - offset).min(buf.len() as u64) as usize;
        let buf = &mut buf[..n];
        let end = offset + n as u64;
        // The real file's part.
        let base_end = end.min(self.keep);
        let mut got = 0usize;
        if base_end > offset {
            let want = (base_end - offset) as usize;
            while got < want {
                match real.read_at(&mut buf[got..want], offset + got as u64) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        buf[got..].fill(0);
        // The written bytes over it.
        let first = self
            .extents
            .range(..=offset)
            .next_back()
            .map_or(offset, |(&o, _)| o);
        for (&off, data) in self.extents.range(first..end) {
            let d_end = off + data.len() as u64;
            if d_end <= offset {
                continue;
            }
            let from = off.max(offset);
            let to = d_end.min(end);
            buf[(from - offset) as usize..(to - offset) as usize]
                .copy_from_slice(&data[(from - off) as usize..(to - off) as usize]);
        }
        Ok(n)
    }
}

impl Cached {
    fn real_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The dirty state, made so from the real file if it was clean.
    fn dirty<'a>(&self, g: &'a mut Option<Dirty>) -> io::Result<&'a mut Dirty> {
        if g.is_none() {
            *g = Some(Dirty::new(self.real_len()?));
        }
        Ok(g.as_mut().expect("just set"))
    }

    /// Writes the unsynced bytes to the real file (under the entry's lock,
    /// so readers see one or the other), then fsyncs it without the lock.
    fn sync(&self, all: bool) -> io::Result<()> {
        {
            let mut g = lock(&self.dirty);
            if let Some(d) = g.as_ref() {
                if d.keep < self.real_len()? {
                    self.file.set_len(d.keep)?;
                }
                for (&off, data) in &d.extents {
                    self.file.write_all_at(data, off)?;
                }
                if self.real_len()? != d.len {
                    self.file.set_len(d.len)?;
                }
                *g = None;
            }
        }
        if all {
            self.file.sync_all()
        } else {
            self.file.sync_data()
        }
    }
}

/// A handle: the real file as opened (for its mode and its lock) and the
/// file's shared cache entry.
#[derive(Debug)]
struct ForgetfulFile {
    /// The real handle as the caller opened it: holds an `flock`, and
    /// refuses writes when opened for reading.
    real: File,
    writable: bool,
    cached: Arc<Cached>,
    disk: ForgetfulDisk,
}

fn not_writable() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl ForgetfulDisk {
    /// A disk over the real file system with an empty cache, forgetting
    /// from the start.
    pub fn new() -> ForgetfulDisk {
        let d = ForgetfulDisk::default();
        d.set_forgetting(true);
        d
    }

    /// A disk that writes through to the real file system (a kill keeps
    /// everything, as a process kill does) until
    /// [`set_forgetting`](ForgetfulDisk::set_forgetting) arms it.
    pub fn write_through() -> ForgetfulDisk {
        ForgetfulDisk::default()
    }

    /// From now on, writes stay in this process until synced (`true`), or
    /// go to the real file again (`false`; a file that holds unsynced bytes
    /// keeps caching until its next sync).
    pub fn set_forgetting(&self, on: bool) {
        self.forgetting.store(on, Ordering::SeqCst);
    }

    /// Whether writes stay in this process until synced.
    pub fn forgetting(&self) -> bool {
        self.forgetting.load(Ordering::SeqCst)
    }

    /// Bytes held unsynced in this process, over every file.
    pub fn unsynced_bytes(&self) -> u64 {
        lock(&self.cache)
            .values()
            .map(|c| {
                lock(&c.dirty)
                    .as_ref()
                    .map_or(0, |d| d.extents.values().map(|v| v.len() as u64).sum())
            })
            .sum()
    }

    fn wrap(&self, real: File, how: Option<Open>) -> io::Result<Box<dyn DiskFile>> {
        let k = key(&real.metadata()?);
        let cached = {
            let mut cache = lock(&self.cache);
            match cache.get(&k) {
                Some(c) => c.clone(),
                None => {
                    // The same inode again, read-write and without O_APPEND.
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(format!("/proc/self/fd/{}", real.as_raw_fd()))?;
                    let c = Arc::new(Cached {
                        file,
                        dirty: Mutex::new(None),
                    });
                    cache.insert(k, c.clone());
                    c
                }
            }
        };
        let f = ForgetfulFile {
            real,
            writable: how != Some(Open::Read),
            cached,
            disk: self.clone(),
        };
        if how == Some(Open::Truncate) && self.forgetting() {
            f.set_len(0)?;
        }
        Ok(Box::new(f))
    }

    /// Forgets entries no handle uses whose file no name reaches any more
    /// (removed or renamed over): their bytes can never be read.
    fn forget_unlinked(&self) {
        lock(&self.cache).retain(|_, c| {
            Arc::strong_count(c) > 1 || c.file.metadata().is_ok_and(|m| m.nlink() > 0)
        });
    }
}

impl Drop for ForgetfulFile {
    fn drop(&mut self) {
        let mut cache = lock(&self.disk.cache);
        // The cache's reference and this one: the last handle. A clean
        // entry goes; one with unsynced bytes stays (a page cache keeps
        // them after close).
        if Arc::strong_count(&self.cached) == 2 && lock(&self.cached.dirty).is_none() {
            if let Ok(m) = self.cached.file.metadata() {
                cache.remove(&key(&m));
            }
        }
    }
}

impl Disk for ForgetfulDisk {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut o = options(how);
        if how == Open::Truncate && self.forgetting() {
            // The truncation is a write like any other: unsynced, it is undone.
            o.truncate(false);
        }
        self.wrap(o.open(path)?, Some(how))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let f = RealDisk::lock_file(path)?;
        self.wrap(f, None)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealDisk.create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        RealDisk.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let m = std::fs::metadata(path)?;
        let mut len = m.len();
        if m.is_file() {
            let c = lock(&self.cache).get(&key(&m)).cloned();
            if let Some(d) = c
                .as_ref()
                .and_then(|c| lock(&c.dirty).as_ref().map(|d| d.len))
            {
                len = d;
            }
        }
        Ok(Metadata {
            len,
            is_dir: m.is_dir(),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealDisk.rename(from, to)?;
        self.forget_unlinked();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove_file(path)?;
        self.forget_unlinked();
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove_dir_all(path)?;
        self.forget_unlinked();
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        RealDisk.sync_dir(path)
    }

    fn available_space(&self, path: &Path) -> io::Result<u64> {
        RealDisk.available_space(path)
    }
}

impl DiskFile for ForgetfulFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let g = lock(&self.cached.dirty);
        match g.as_ref() {
            Some(d) => d.read(&self.cached.file, buf, offset),
            None => self.real.read_at(buf, offset),
        }
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        if !self.writable {
            return Err(not_writable());
        }
        let mut g = lock(&self.cached.dirty);
        if g.is_none() && !self.disk.forgetting() {
            return self.real.write_at(buf, offset);
        }
        self.cached.dirty(&mut g)?.write(buf, offset);
        Ok(buf.len())
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        if !self.writable {
            return Err(not_writable());
        }
        let mut g = lock(&self.cached.dirty);
        if g.is_none() && !self.disk.forgetting() {
            return (&self.real).write_all(buf);
        }
        let d = self.cached.dirty(&mut g)?;
        let at = d.len;
        d.write(buf, at);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut g = lock(&self.cached.dirty);
        if g.is_none() && (!self.disk.forgetting() || self.cached.real_len()? == len) {
            return self.real.set_len(len);
        }
        self.cached.dirty(&mut g)?.set_len(len);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        match lock(&self.cached.dirty).as_ref() {
            Some(d) => Ok(d.len),
            None => self.cached.real_len(),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.cached.sync(false)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.cached.sync(true)
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        // Written through: as the real disk does. Cached: nothing to start.
        if lock(&self.cached.dirty).is_none() && !self.disk.forgetting() {
            crate::real::start_writeback(&self.real, offset, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirty_read(d: &Dirty, real: &File) -> Vec<u8> {
        let mut buf = vec![0xaa; d.len as usize + 3];
        let n = d.read(real, &mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn extents_overlay_in_write_order() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let real = File::open(&p).unwrap();
        let mut d = Dirty::new(10);
        d.write(b"ab", 2);
        d.write(b"cd", 4); // grows the extent at 2
        assert_eq!(d.extents.len(), 1);
        d.write(b"XYZ", 3); // inside it
        assert_eq!(dirty_read(&d, &real), b"01aXYZ6789");
        d.write(b"pq", 8);
        d.write(b"lmnopqrs", 1); // covers both but the last byte
        assert_eq!(dirty_read(&d, &real), b"0lmnopqrsq");
        d.write(b"!", 12); // a hole of zeros before it
        assert_eq!(dirty_read(&d, &real), b"0lmnopqrsq\0\0!");
        d.set_len(4);
        assert_eq!(dirty_read(&d, &real), b"0lmn");
        d.set_len(6); // extended: zeros, not the real file's old bytes
        assert_eq!(dirty_read(&d, &real), b"0lmn\0\0");
        // Reads at an offset.
        let mut b = [0u8; 3];
        assert_eq!(d.read(&real, &mut b, 2).unwrap(), 3);
        assert_eq!(&b, b"mn\0");
        assert_eq!(d.read(&real, &mut b, 6).unwrap(), 0);
    }
}
