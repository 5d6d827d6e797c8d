//! [`MemDisk`]: an in-memory file system that knows what is durable, so a
//! test can crash it.
//!
//! Files and directories are inodes. A file keeps its current bytes and the
//! bytes last synced; a directory keeps its current entries and the entries
//! last synced. [`MemDisk::crash`] reverts every inode to its synced state
//! and drops what no directory reaches any more. Paths are taken lexically
//! (`/`, `.` and a leading prefix are skipped, `..` goes up a level); every
//! disk starts with an empty, durable root.

use crate::{DirEntry, Disk, DiskFile, Metadata, Open};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex, MutexGuard};

const ROOT: u64 = 0;

/// An in-memory disk whose [`crash`](MemDisk::crash) forgets everything not
/// made durable. Clones share the same file system.
#[derive(Clone)]
pub struct MemDisk {
    /// The file system, shared by clones and handles.
    fs: Arc<Mutex<MemFs>>,
    /// The life this view belongs to: once the disk has crashed since, the
    /// view and its handles fail with `EIO`.
    epoch: u64,
}

impl std::fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemDisk")
            .field("epoch", &self.epoch)
            .finish()
    }
}

enum Inode {
    File {
        /// What reads see.
        data: Vec<u8>,
        /// What survives a crash.
        synced: Vec<u8>,
    },
    Dir {
        /// What lookups see.
        entries: BTreeMap<OsString, u64>,
        /// What survives a crash.
        synced: BTreeMap<OsString, u64>,
    },
}

struct MemFs {
    /// Bumped by every crash.
    epoch: u64,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    /// Total bytes, for `available_space`.
    capacity: u64,
    /// Inodes locked by a live handle.
    locked: HashSet<u64>,
    /// Open handles per inode (an unlinked file lives while it is open).
    open: HashMap<u64, usize>,
}

fn dead() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

fn names(path: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => v.push(s.to_os_string()),
            Component::ParentDir => {
                v.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    v
}

impl MemFs {
    fn dir(&self, ino: u64) -> io::Result<&BTreeMap<OsString, u64>> {
        match self.inodes.get(&ino) {
            Some(Inode::Dir { entries, .. }) => Ok(entries),
            Some(Inode::File { .. }) => Err(errno(libc::ENOTDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> io::Result<&mut BTreeMap<OsString, u64>> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::Dir { entries, .. }) => Ok(entries),
            Some(Inode::File { .. }) => Err(errno(libc::ENOTDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    /// The inode at `names`.
    fn walk(&self, names: &[OsString]) -> io::Result<u64> {
        let mut at = ROOT;
        for n in names {
            at = *self.dir(at)?.get(n).ok_or_else(|| errno(libc::ENOENT))?;
        }
        Ok(at)
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        self.walk(&names(path))
    }

    /// The directory holding `path` and the last name.
    fn parent(&self, path: &Path) -> io::Result<(u64, OsString)> {
        let mut n = names(path);
        let last = n.pop().ok_or_else(|| errno(libc::EINVAL))?;
        Ok((self.walk(&n)?, last))
    }

    fn alloc(&mut self, inode: Inode) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        ino
    }

    fn file_mut(&mut self, ino: u64) -> io::Result<(&mut Vec<u8>, &mut Vec<u8>)> {
        match self.inodes.get_mut(&ino) {
            Some(Inode::File { data, synced }) => Ok((data, synced)),
            Some(Inode::Dir { .. }) => Err(errno(libc::EISDIR)),
            None => Err(errno(libc::EBADF)),
        }
    }

    /// Whether any directory, current or synced, names `ino`.
    fn referenced(&self, ino: u64) -> bool {
        self.inodes.values().any(|i| match i {
            Inode::Dir { entries, synced } => {
                entries.values().any(|&x| x == ino) || synced.values().any(|&x| x == ino)
            }
            Inode::File { .. } => false,
        })
    }

    /// Drops a file inode nothing can reach or restore any more.
    fn maybe_free(&mut self, ino: u64) {
        let open = self.open.get(&ino).copied().unwrap_or(0);
        if ino != ROOT && open == 0 && !self.referenced(ino) {
            self.inodes.remove(&ino);
        }
    }

    fn used(&self) -> u64 {
        self.inodes
            .values()
            .map(|i| match i {
                Inode::File { data, .. } => data.len() as u64,
                Inode::Dir { .. } => 0,
            })
            .sum()
    }

    fn crash(&mut self) {
        self.epoch += 1;
        for inode in self.inodes.values_mut() {
            match inode {
                Inode::File { data, synced } => data.clone_from(synced),
                Inode::Dir { entries, synced } => entries.clone_from(synced),
            }
        }
        self.locked.clear();
        self.open.clear();
        // Keep what the root still reaches.
        let mut keep = HashSet::from([ROOT]);
        let mut todo = vec![ROOT];
        while let Some(ino) = todo.pop() {
            if let Some(Inode::Dir { entries, .. }) = self.inodes.get(&ino) {
                for &child in entries.values() {
                    if keep.insert(child) {
                        todo.push(child);
                    }
                }
            }
        }
        self.inodes.retain(|ino, _| keep.contains(ino));
    }
}

impl Default for MemDisk {
    fn default() -> Self {
        Self::new()
    }
}

impl MemDisk {
    /// An empty disk of 1 TiB.
    pub fn new() -> Self {
        Self::with_capacity(1 << 40)
    }

    /// An empty disk whose `available_space` is `capacity` less the bytes
    /// its files hold (writes are not refused: inject
    /// [`Fault::NoSpaceAfter`](crate::Fault::NoSpaceAfter) for that).
    pub fn with_capacity(capacity: u64) -> Self {
        let root = Inode::Dir {
            entries: BTreeMap::new(),
            synced: BTreeMap::new(),
        };
        let fs = MemFs {
            epoch: 0,
            inodes: HashMap::from([(ROOT, root)]),
            next_ino: 1,
            capacity,
            locked: HashSet::new(),
            open: HashMap::new(),
        };
        MemDisk {
            fs: Arc::new(Mutex::new(fs)),
            epoch: 0,
        }
    }

    fn lock_fs(&self) -> MutexGuard<'_, MemFs> {
        self.fs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file system, if this view is still alive.
    fn live(&self) -> io::Result<MutexGuard<'_, MemFs>> {
        let g = self.lock_fs();
        if g.epoch != self.epoch {
            return Err(dead());
        }
        Ok(g)
    }

    /// Simulates a power loss: every file goes back to the bytes it last
    /// synced, every directory to the entries it last synced, locks are
    /// released, and this view, its clones and every open handle fail with
    /// `EIO` from now on. Get the disk back with [`restarted`](Self::restarted).
    pub fn crash(&self) {
        self.lock_fs().crash();
    }

    /// The disk as the next process finds it (after a crash, a view that
    /// works again; otherwise a plain clone).
    pub fn restarted(&self) -> MemDisk {
        MemDisk {
            fs: self.fs.clone(),
            epoch: self.lock_fs().epoch,
        }
    }

    /// The disk as a shared [`Disk`].
    pub fn shared(&self) -> Arc<dyn Disk> {
        Arc::new(self.clone())
    }

    fn handle(&self, g: &mut MemFs, ino: u64, how: Open, locked: bool) -> Box<dyn DiskFile> {
        *g.open.entry(ino).or_default() += 1;
        Box::new(MemFile {
            fs: self.fs.clone(),
            epoch: self.epoch,
            ino,
            how,
            locked,
        })
    }

    fn open_inode(&self, g: &mut MemFs, path: &Path, how: Open) -> io::Result<u64> {
        let (dir, name) = g.parent(path)?;
        let existing = g.dir(dir)?.get(&name).copied();
        match (existing, how) {
            (Some(ino), _) if matches!(g.inodes.get(&ino), Some(Inode::Dir { .. })) => {
                Err(errno(libc::EISDIR))
            }
            (Some(_), Open::CreateNew) => Err(errno(libc::EEXIST)),
            (Some(ino), Open::Truncate) => {
                g.file_mut(ino)?.0.clear();
                Ok(ino)
            }
            (Some(ino), _) => Ok(ino),
            (None, Open::Read | Open::ReadWrite) => Err(errno(libc::ENOENT)),
            (None, Open::CreateNew | Open::Truncate | Open::Append) => {
                let ino = g.alloc(Inode::File {
                    data: Vec::new(),
                    synced: Vec::new(),
                });
                g.dir_mut(dir)?.insert(name, ino);
                Ok(ino)
            }
        }
    }
}

impl Disk for MemDisk {
    fn open(&self, path: &Path, how: Open) -> io::Result<Box<dyn DiskFile>> {
        let mut g = self.live()?;
        let ino = self.open_inode(&mut g, path, how)?;
        Ok(self.handle(&mut g, ino, how, false))
    }

    fn try_lock(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut g = self.live()?;
        let ino = self.open_inode(&mut g, path, Open::Append)?;
        if !g.locked.insert(ino) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is locked by another holder", path.display()),
            ));
        }
        Ok(self.handle(&mut g, ino, Open::ReadWrite, true))
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut g = self.live()?;
        let mut at = ROOT;
        for n in names(path) {
            at = match g.dir(at)?.get(&n) {
                Some(&child) => child,
                None => {
                    let child = g.alloc(Inode::Dir {
                        entries: BTreeMap::new(),
                        synced: BTreeMap::new(),
                    });
                    g.dir_mut(at)?.insert(n, child);
                    child
                }
            };
        }
        g.dir(at).map(|_| ())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let g = self.live()?;
        let dir = g.lookup(path)?;
        Ok(g.dir(dir)?
            .iter()
            .map(|(name, ino)| DirEntry {
                name: name.clone(),
                is_dir: matches!(g.inodes.get(ino), Some(Inode::Dir { .. })),
            })
            .collect())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let g = self.live()?;
        match g.inodes.get(&g.lookup(path)?) {
            Some(Inode::File { data, .. }) => Ok(Metadata {
                len: data.len() as u64,
                is_dir: false,
            }),
            Some(Inode::Dir { .. }) => Ok(Metadata {
                len: 0,
                is_dir: true,
            }),
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut g = self.live()?;
        let (src, src_name) = g.parent(from)?;
        let ino = *g
            .dir(src)?
            .get(&src_name)
            .ok_or_else(|| errno(libc::ENOENT))?;
        let (dst, dst_name) = g.parent(to)?;
        let replaced = g.dir(dst)?.get(&dst_name).copied();
        if replaced == Some(ino) {
            return Ok(());
        }
        if let Some(r) = replaced {
            if matches!(g.inodes.get(&r), Some(Inode::Dir { .. })) {
                return Err(errno(libc::EISDIR));
            }
        }
        g.dir_mut(src)?.remove(&src_name);
        g.dir_mut(dst)?.insert(dst_name, ino);
        if let Some(r) = replaced {
            g.maybe_free(r);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut g = self.live()?;
        let (dir, name) = g.parent(path)?;
        let ino = *g.dir(dir)?.get(&name).ok_or_else(|| errno(libc::ENOENT))?;
        if matches!(g.inodes.get(&ino), Some(Inode::Dir { .. })) {
            return Err(errno(libc::EISDIR));
        }
        g.dir_mut(dir)?.remove(&name);
        g.maybe_free(ino);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut g = self.live()?;
        let (dir, name) = g.parent(path)?;
        let ino = *g.dir(dir)?.get(&name).ok_or_else(|| errno(libc::ENOENT))?;
        g.dir(ino)?;
        // The subtree stays as it is: a crash before the parent is synced
        // brings it back whole.
        g.dir_mut(dir)?.remove(&name);
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut g = self.live()?;
        let ino = g.lookup(path)?;
        match g.inodes.get_mut(&ino) {
            Some(Inode::Dir { entries, synced }) => {
                synced.clone_from(entries);
                Ok(())
            }
            Some(Inode::File { .. }) => Err(errno(libc::ENOTDIR)),
            None => Err(errno(libc::ENOENT)),
        }
    }

    fn available_space(&self, path: &Path) -> io::Result<u64> {
        let g = self.live()?;
        g.lookup(path)?;
        Ok(g.capacity.saturating_sub(g.used()))
    }
}

/// A handle on a [`MemDisk`] inode, valid while the disk has not crashed.
struct MemFile {
    /// The file system (shared with the disk).
    fs: Arc<Mutex<MemFs>>,
    /// The disk's life this handle was opened in.
    epoch: u64,
    /// The file: renames and unlinks do not affect an open handle.
    ino: u64,
    /// What the handle may do.
    how: Open,
    /// Whether this handle holds the inode's lock.
    locked: bool,
}

impl std::fmt::Debug for MemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemFile")
            .field("ino", &self.ino)
            .field("how", &self.how)
            .finish()
    }
}

impl MemFile {
    fn live(&self) -> io::Result<MutexGuard<'_, MemFs>> {
        let g = self.fs.lock().unwrap_or_else(|p| p.into_inner());
        if g.epoch != self.epoch {
            return Err(dead());
        }
        Ok(g)
    }

    fn writable(&self) -> io::Result<()> {
        match self.how {
            Open::Read => Err(errno(libc::EBADF)),
            _ => Ok(()),
        }
    }

    fn with_data<T>(&self, f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> T) -> io::Result<T> {
        let mut g = self.live()?;
        let (data, synced) = g.file_mut(self.ino)?;
        Ok(f(data, synced))
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut g = self.fs.lock().unwrap_or_else(|p| p.into_inner());
        if g.epoch != self.epoch {
            return;
        }
        if self.locked {
            g.locked.remove(&self.ino);
        }
        if let Some(n) = g.open.get_mut(&self.ino) {
            *n = n.saturating_sub(1);
        }
        g.maybe_free(self.ino);
    }
}

impl DiskFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with_data(|data, _| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            n
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.writable()?;
        let start = usize::try_from(offset).map_err(|_| errno(libc::EFBIG))?;
        self.with_data(|data, _| {
            let end = start + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(buf);
            buf.len()
        })
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.with_data(|data, _| data.extend_from_slice(buf))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.writable()?;
        let len = usize::try_from(len).map_err(|_| errno(libc::EFBIG))?;
        self.with_data(|data, _| data.resize(len, 0))
    }

    fn size(&self) -> io::Result<u64> {
        self.with_data(|data, _| data.len() as u64)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_data(|data, synced| synced.clone_from(data))
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}
