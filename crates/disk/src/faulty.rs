//! [`FaultyDisk`]: another disk with faults injected on the paths a
//! predicate picks (see the crate docs for what each fault models).

use crate::{DirEntry, Disk, DiskFile, Metadata, Open};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// A fault to inject; see the crate docs for what each one models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Reads of a matching file fail with this errno.
    ReadError(i32),
    /// Writes, appends and `set_len` of a matching file fail with this errno.
    WriteError(i32),
    /// Opening (or locking) a matching file fails with this errno.
    OpenError(i32),
    /// Matching files take this many bytes in all; a write that would go
    /// past it stores nothing and fails with `ENOSPC`.
    NoSpaceAfter(u64),
    /// An fsync of a matching file or directory waits this long first.
    SlowSync(Duration),
    /// An fsync of a matching file or directory fails with this errno.
    SyncError(i32),
    /// A write to a matching file stores only its first `keep` bytes, then
    /// fails with `EIO`.
    TornWrite {
        /// Bytes of the write that reach the file.
        keep: usize,
    },
}

/// Names an injected rule, to remove it or ask how often it fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

type Predicate = Box<dyn Fn(&Path) -> bool + Send + Sync>;

struct Rule {
    id: RuleId,
    fault: Fault,
    when: Predicate,
    /// Fires left (`None`: unlimited).
    left: Option<u64>,
    /// Times it fired.
    fired: u64,
    /// Bytes counted so far by a `NoSpaceAfter` rule.
    written: u64,
}

#[derive(Default)]
struct Rules {
    list: Vec<Rule>,
    next: u64,
}

/// The operations faults apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Open,
    Read,
    Write,
    /// `set_len`: a write that moves no bytes.
    Truncate,
    Sync,
}

/// What an operation must do, decided under the rules' lock.
enum Verdict {
    Pass,
    Fail(io::Error),
    Delay(Duration),
    Torn(usize),
}

fn applies(fault: &Fault, op: OpKind) -> bool {
    matches!(
        (fault, op),
        (Fault::ReadError(_), OpKind::Read)
            | (Fault::WriteError(_), OpKind::Write | OpKind::Truncate)
            | (Fault::OpenError(_), OpKind::Open)
            | (Fault::NoSpaceAfter(_), OpKind::Write)
            | (Fault::TornWrite { .. }, OpKind::Write)
            | (Fault::SlowSync(_), OpKind::Sync)
            | (Fault::SyncError(_), OpKind::Sync)
    )
}

/// The rules shared by a [`FaultyDisk`] and the files it opened.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Rules>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Rules> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Decides an operation of `op` on `path` moving `len` bytes: the first
    /// matching rule that fires decides.
    fn check(&self, op: OpKind, path: &Path, len: usize) -> Verdict {
        let mut rules = self.lock();
        for r in rules.list.iter_mut() {
            if r.left == Some(0) || !applies(&r.fault, op) || !(r.when)(path) {
                continue;
            }
            let verdict = match r.fault {
                Fault::NoSpaceAfter(limit) => {
                    if r.written.saturating_add(len as u64) <= limit {
                        r.written += len as u64;
                        continue;
                    }
                    Verdict::Fail(io::Error::from_raw_os_error(libc::ENOSPC))
                }
                Fault::ReadError(e)
                | Fault::WriteError(e)
                | Fault::OpenError(e)
                | Fault::SyncError(e) => Verdict::Fail(io::Error::from_raw_os_error(e)),
                Fault::SlowSync(d) => Verdict::Delay(d),
                Fault::TornWrite { keep } => Verdict::Torn(keep.min(len)),
            };
            r.fired += 1;
            if let Some(n) = r.left.as_mut() {
                *n -= 1;
            }
            return verdict;
        }
        Verdict::Pass
    }

    /// Runs `f` unless a rule fails the operation first (a delay is waited
    /// out, outside the lock).
    fn guard<T>(
        &self,
        op: OpKind,
        path: &Path,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        match self.check(op, path, 0) {
            Verdict::Pass | Verdict::Torn(_) => f(),
            Verdict::Fail(e) => Err(e),
            Verdict::Delay(d) => {
                std::thread::sleep(d);
                f()
            }
        }
    }
}

/// Wraps a disk and injects [`Fault`]s. Clones share the rules.
#[derive(Clone)]
pub struct FaultyDisk {
    /// The disk that does the work.
    inner: Arc<dyn Disk>,
    /// The rules, shared with every file opened through this disk.
    rules: Shared,
}

impl std::fmt::Debug for FaultyDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyDisk")
            .field("inner", &self.inner)
            .field("rules", &self.rules.lock().list.len())
            .finish()
    }
}

impl FaultyDisk {
    /// `inner` with no faults yet.
    pub fn new(inner: Arc<dyn Disk>) -> Self {
        FaultyDisk {
            inner,
            rules: Shared::default(),
        }
    }

    /// Injects `fault` on every path `when` accepts, until removed.
    pub fn inject(
        &self,
        fault: Fault,
        when: impl Fn(&Path) -> bool + Send + Sync + 'static,
    ) -> RuleId {
        self.add(fault, None, Box::new(when))
    }

    /// Injects `fault` on the paths `when` accepts for its first `times`
    /// firings only.
    pub fn inject_times(
        &self,
        fault: Fault,
        times: u64,
        when: impl Fn(&Path) -> bool + Send + Sync + 'static,
    ) -> RuleId {
        self.add(fault, Some(times), Box::new(when))
    }

    fn add(&self, fault: Fault, left: Option<u64>, when: Predicate) -> RuleId {
        let mut rules = self.rules.lock();
        let id = RuleId(rules.next);
        rules.next += 1;
        rules.list.push(Rule {
            id,
            fault,
            when,
            left,
            fired: 0,
            written: 0,
        });
        id
    }

    /// Removes one rule.
    pub fn remove(&self, id: RuleId) {
        self.rules.lock().list.retain(|r| r.id != id);
    }

    /// Removes every rule: the disk behaves as the one it wraps.
    pub fn clear(&self) {
        self.rules.lock().list.clear();
    }

    /// How many times rule `id` fired (0 once removed). A delay counts
    /// when it starts, so a test can wait for a slow fsync to be under way.
    pub fn fired(&self, id: RuleId) -> u64 {
        self.rules
            .lock()
            .list
            .iter()
            .find(|r| r.id == id)
            .map_or(0, |r| r.fired)
    }

    fn wrap(&self, path: &Path, f: Box<dyn DiskFile>) -> Box<dyn DiskFile> {
        Box::new(FaultyFile {
            inner: f,
            path: path.to_path_buf(),
            rules: self.rules.clone(),
        })
    }
}

impl Disk for FaultyDisk {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let f = self
            .rules
            .guard(OpKind::Open, path, || self.inner.open(path, how))?;
        Ok(self.wrap(path, f))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let f = self
            .rules
            .guard(OpKind::Open, path, || self.inner.try_lock(path))?;
        Ok(self.wrap(path, f))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        self.inner.read_dir(path)
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.inner.metadata(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.rules
            .guard(OpKind::Sync, path, || self.inner.sync_dir(path))
    }

    fn available_space(&self, path: &Path) -> io::Result<u64> {
        self.inner.available_space(path)
    }
}

/// A file opened through a [`FaultyDisk`].
struct FaultyFile {
    /// The real handle.
    inner: Box<dyn DiskFile>,
    /// The path it was opened with: what the rules match.
    path: PathBuf,
    /// The disk's rules.
    rules: Shared,
}

impl std::fmt::Debug for FaultyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyFile")
            .field("path", &self.path)
            .finish()
    }
}

impl FaultyFile {
    /// A write of `buf`, as the rules allow; `write` stores a slice.
    fn write_with(
        &self,
        buf: &[u8],
        write: impl FnOnce(&[u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        match self.rules.check(OpKind::Write, &self.path, buf.len()) {
            Verdict::Pass => write(buf),
            Verdict::Fail(e) => Err(e),
            Verdict::Delay(d) => {
                std::thread::sleep(d);
                write(buf)
            }
            Verdict::Torn(keep) => {
                if keep > 0 {
                    write(&buf[..keep])?;
                }
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
    }
}

impl DiskFile for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.rules
            .guard(OpKind::Read, &self.path, || self.inner.read_at(buf, offset))
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.write_with(buf, |b| {
            self.inner.write_all_at(b, offset)?;
            Ok(b.len())
        })
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.write_with(buf, |b| {
            self.inner.append(b)?;
            Ok(b.len())
        })
        .map(|_| ())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.rules
            .guard(OpKind::Truncate, &self.path, || self.inner.set_len(len))
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.rules
            .guard(OpKind::Sync, &self.path, || self.inner.sync_data())
    }

    fn sync_all(&self) -> io::Result<()> {
        self.rules
            .guard(OpKind::Sync, &self.path, || self.inner.sync_all())
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        self.inner.start_writeback(offset, len)
    }
}
