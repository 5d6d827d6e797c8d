//! Fencing: the highest leader term this datanode has seen, kept durably in
//! its data directory. Commands from a lower term come from a deposed
//! leader and are refused, so a partitioned old leader that can still
//! reach datanodes destroys nothing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tdfs_proto::FsError;

const FILE: &str = "fence";

/// The durable fence of one datanode.
#[derive(Debug)]
pub struct Fence {
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
    pub fn open(dir: &Path) -> Result<Fence, FsError> {
        let path = dir.join(FILE);
        let term = match std::fs::read_to_string(&path) {
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
            write_durably(&self.path, term)?;
            *t = term;
        }
        Ok(Admit::Yes)
    }
}

fn write_durably(path: &Path, term: u64) -> Result<(), FsError> {
    use std::io::Write;
    let io = |e: std::io::Error| FsError::Io(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format!("{term}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lower_term_is_refused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let f = Fence::open(dir.path()).unwrap();
        assert_eq!(f.admit(3).unwrap(), Admit::Yes);
        assert_eq!(f.admit(3).unwrap(), Admit::Yes);
        assert_eq!(f.admit(2).unwrap(), Admit::Fenced(3));
        drop(f);
        let f = Fence::open(dir.path()).unwrap();
        assert_eq!(f.term(), 3);
        assert_eq!(f.admit(1).unwrap(), Admit::Fenced(3));
        assert_eq!(f.admit(5).unwrap(), Admit::Yes);
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(Fence::open(dir.path()).is_err());
    }
}
