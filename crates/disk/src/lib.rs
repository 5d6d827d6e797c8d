//! The disk seam: every file operation a tdfs store performs goes through
//! [`Disk`] and the [`DiskFile`]s it opens, so a test can swap the world
//! under the store without touching the store's code.
//!
//! - [`RealDisk`] is the production path: `std::fs` and a few system calls
//!   (`statvfs`, `sync_file_range`, `flock`), one virtual call per
//!   operation and nothing else on the data path.
//! - [`MemDisk`] is an in-memory file system that keeps, for every file,
//!   the contents last made durable (`sync_data`/`sync_all`) beside the
//!   current ones, and for every directory the entries last made durable
//!   (`sync_dir`) beside the current ones. [`MemDisk::crash`] throws away
//!   everything that was not made durable, as a power loss does: writes not
//!   fsync'd, and creates, renames and removals whose directory was not
//!   fsync'd. After a crash every handle and every clone of the disk from
//!   before it fails with `EIO` (the process that held them is dead), and
//!   [`MemDisk::restarted`] gives the disk to the next process.
//! - [`ForgetfulDisk`] is the real file system with a page cache of its own
//!   in process memory: writes, appends and truncations stay there (reads
//!   see them) until `sync_data`/`sync_all` writes them to the real file,
//!   so killing the process loses what was not synced, as a power loss
//!   does (directory entries are not modelled: they reach the real file
//!   system at once). The chaos suite's daemons run on it in test builds
//!   (`TDFS_TEST_DISK=forget-unsynced`) for its `PowerLoss` fault.
//! - [`FaultyDisk`] wraps another disk and injects [`Fault`]s on the paths
//!   a predicate picks.
//!
//! # What each fault models
//!
//! | fault | what a caller sees | what it stands for |
//! | --- | --- | --- |
//! | [`Fault::ReadError`] | reads of the file fail with the errno (`EIO`, `EACCES`, …) | a bad sector or a failing device under a replica; a file whose permissions changed |
//! | [`Fault::WriteError`] | writes, appends and `set_len` fail with the errno | a device that fails writes, a read-only remount |
//! | [`Fault::OpenError`] | opening (and locking) the file fails with the errno | `EACCES` (permissions), `EMFILE`/`ENFILE` (out of file descriptors) |
//! | [`Fault::NoSpaceAfter`] | once the matching files received that many bytes, writes fail with `ENOSPC` and store nothing | a disk filling up under a write in progress |
//! | [`Fault::SlowSync`] | `fsync` of the file or directory takes that long, then succeeds | a slow or saturated device, a flush behind a large writeback |
//! | [`Fault::SyncError`] | `fsync` fails with the errno | a device that lost data it had accepted (Linux then forgets the dirty pages: the data is gone) |
//! | [`Fault::TornWrite`] | the write stores only its first `keep` bytes, then fails with `EIO` | a write cut short by a crash or a failing device; follow it with [`MemDisk::crash`] to model the crash itself |
//!
//! Faults are matched by the path a file was opened with (a later rename
//! does not change which rules apply to an open handle).
//!
//! # What a Raft log store finds here
//!
//! An append-only file ([`Open::Append`], [`DiskFile::append`],
//! [`DiskFile::sync_data`]), an atomic replace ([`Disk::write_atomic`]:
//! temporary file, fsync, rename, fsync of the directory) and a whole-file
//! read ([`Disk::read`], [`Disk::read_max`]). Handles take `&self` for
//! every operation, so one handle can be shared (`Arc`) between a writer
//! and a flusher thread instead of being cloned.

mod faulty;
mod forgetful;
mod mem;
mod real;
mod stream;

pub use faulty::{Fault, FaultyDisk, RuleId};
pub use forgetful::ForgetfulDisk;
pub use mem::MemDisk;
pub use real::RealDisk;
pub use stream::{seek_to, FileReader, FileWriter};

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How [`Disk::open`] opens a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// An existing file, for reading.
    Read,
    /// An existing file, for reading and writing; its contents are kept.
    ReadWrite,
    /// A new file, for reading and writing; fails with `AlreadyExists`
    /// when the name is taken (`O_CREAT | O_EXCL`).
    CreateNew,
    /// Creates the file or empties an existing one, for reading and writing.
    Truncate,
    /// Creates the file if missing and keeps its contents; every
    /// [`DiskFile::append`] goes to its end (`O_APPEND`).
    Append,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name within its directory.
    pub name: OsString,
    /// Whether it is a directory (else a file).
    pub is_dir: bool,
}

/// What [`Disk::metadata`] tells about a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// Length in bytes (of a file; unspecified for a directory).
    pub len: u64,
    /// Whether the path is a directory.
    pub is_dir: bool,
}

/// An open file. Every operation takes `&self` and is positional or an
/// append, so a handle can be shared between threads.
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at or past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes up to `buf.len()` bytes at `offset`, extending the file with
    /// zeros when `offset` is past its end. Not for [`Open::Append`] files.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at the end of a file opened with [`Open::Append`].
    fn append(&self, buf: &[u8]) -> io::Result<()>;

    /// Truncates or extends the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's current length.
    fn size(&self) -> io::Result<u64>;

    /// Makes the file's contents durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's contents and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// Asks the device to start writing `[offset, offset+len)` back without
    /// waiting (best effort, no durability promise). A no-op by default.
    fn start_writeback(&self, _offset: u64, _len: u64) {}

    /// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` if the
    /// file ends first.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ends before offset {}", offset + buf.len() as u64),
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// A file system as a store sees it. Object safe: stores hold an
/// `Arc<dyn Disk>`.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Opens the file at `path` as `how` says.
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>>;

    /// Opens (creating if needed, contents kept) the file at `path` and
    /// takes an exclusive advisory lock on it (`flock`), held until the
    /// returned handle is dropped. `WouldBlock` when another handle holds
    /// it, in this process or another.
    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;

    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// The entries of a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;

    /// Length and kind of the file or directory at `path`.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;

    /// Renames a file, replacing `to` if it exists (atomic, as `rename(2)`).
    /// Durable only once both directories are synced.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes a file. Durable once its directory is synced.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Makes the entries of a directory durable: files created, renamed
    /// into or out of it, or removed.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Bytes free for an unprivileged writer on the file system of `path`.
    fn available_space(&self, path: &Path) -> io::Result<u64>;

    /// Creates a directory and its missing parents, durably: the parent of
    /// every directory it created is synced, so a crash keeps them.
    fn create_dir_all_durable(&self, path: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(path);
        while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
            if self.exists(p)? {
                break;
            }
            missing.push(p);
            at = p.parent();
        }
        self.create_dir_all(path)?;
        for p in missing.iter().rev() {
            self.sync_dir(parent_dir(p))?;
        }
        Ok(())
    }

    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool> {
        match self.metadata(path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_max(path, u64::MAX)
    }

    /// Reads a whole file of at most `max` bytes; a larger file is refused
    /// (`InvalidData`) before anything is allocated for it.
    fn read_max(&self, path: &Path, max: u64) -> io::Result<Vec<u8>> {
        let f = self.open(path, Open::Read)?;
        let len = f.size()?;
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is {len} bytes, more than {max}", path.display()),
            ));
        }
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// Replaces the file at `path` with `bytes` atomically and durably:
    /// writes `path.tmp`, fsyncs it, renames it over `path` and fsyncs the
    /// directory. A crash leaves either the old contents or the new ones.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let tmp = temp_path(path);
        let f = self.open(&tmp, Open::Truncate)?;
        f.write_all_at(bytes, 0)?;
        f.sync_all()?;
        drop(f);
        self.rename(&tmp, path)?;
        self.sync_dir(parent_dir(path))
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary name [`Disk::write_atomic`] writes before renaming.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(OsString::from).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The production disk, shared.
pub fn real() -> Arc<dyn Disk> {
    Arc::new(RealDisk)
}

/// A [`ForgetfulDisk`] with an empty cache, shared.
pub fn forgetful() -> Arc<dyn Disk> {
    Arc::new(ForgetfulDisk::new())
}
