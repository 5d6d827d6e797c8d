//! Fencing: the highest leader term this datanode has seen, kept durably in
//! its data directory. Commands from a lower term come from a deposed
//! leader and are refused, so a partitioned old leader that can still
//! reach datanodes destroys nothing. It lives on the block store's disk
//! (the [`Disk`] seam), replaced atomically.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tdfs_disk::Disk;
use tdfs_proto::FsError;

const FILE: &str = "fence";

/// The durable fence of one datanode.
#[derive(Debug)]
pub struct Fence {
    /// The disk the fence file is on (the block store's).
    disk: Arc<dyn Disk>,
    /// `DIR/fence`.
    path: PathBuf,
    /// Highest term seen; raised (on disk first) before acting on it.
    term: Mutex<u64>,
}

/// The verdict on a batch of commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// From the newest leader this node knows: execute.
    Yes,
    /// From a deposed leader: refuse. Carries the term seen.
    Fenced(u64),
}

impl Fence {
    /// Loads the fence of the data directory `dir` (0 when new). A fence
    /// file that does not parse is an error: guessing 0 would let a deposed
    /// leader back in.
    pub fn open(disk: Arc<dyn Disk>, dir: &Path) -> Result<Fence, FsError> {
        let path = dir.join(FILE);
        let read = disk
            .read_max(&path, 64)
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let term = match read {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| {
                FsError::Io(format!(
                    "{} is damaged: {s:?} is not a term",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(FsError::Io(format!("{}: {e}", path.display()))),
        };
        Ok(Fence {
            disk,
            path,
            term: Mutex::new(term),
        })
    }

    pub fn term(&self) -> u64 {
        *self.term.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits commands of `term`: raises the fence first (durably) when the
    /// term is new. Blocking I/O.
    pub fn admit(&self, term: u64) -> Result<Admit, FsError> {
        let mut t = self.term.lock().unwrap_or_else(|e| e.into_inner());
        if term < *t {
            return Ok(Admit::Fenced(*t));
        }
        if term > *t {
            self.disk
                .write_atomic(&self.path, format!("{term}\n").as_bytes())
                .map_err(|e| FsError::Io(format!("{}: {e}", self.path.display())))?;
            *t = term;
        }
        Ok(Admit::Yes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_term_is_refused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Fence::open(tdfs_disk::real(), dir.path());
        let f = open().unwrap();
        assert_eq!(f.admit(3).unwrap(), Admit::Yes);
        assert_eq!(f.admit(3).unwrap(), Admit::Yes);
        assert_eq!(f.admit(2).unwrap(), Admit::Fenced(3));
        drop(f);
        let f = open().unwrap();
        assert_eq!(f.term(), 3);
        assert_eq!(f.admit(1).unwrap(), Admit::Fenced(3));
        assert_eq!(f.admit(5).unwrap(), Admit::Yes);
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(open().is_err());
    }

    #[test]
    fn the_fence_is_durable_on_the_disk_seam() {
        let mem = tdfs_disk::MemDisk::new();
        mem.create_dir_all(Path::new("/dn")).unwrap();
        mem.sync_dir(Path::new("/")).unwrap();
        let f = Fence::open(mem.shared(), Path::new("/dn")).unwrap();
        assert_eq!(f.admit(7).unwrap(), Admit::Yes);
        mem.crash();
        let f = Fence::open(mem.restarted().shared(), Path::new("/dn")).unwrap();
        assert_eq!(f.term(), 7);
    }
}
