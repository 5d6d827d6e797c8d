//! Reads: status, listings, summaries, block locations, and resumable walks
//! for fsck. A listing page costs its page; a summary is read from the
//! usage every directory keeps; a walk visits a bounded number of inodes
//! per call so a caller can release its lock between chunks.

use crate::inode::{flags, Block, Inode};
use crate::ns::Namespace;
use crate::slab::{InodeId, Slot};
use compact_str::CompactString;
use tdfs_proto::meta::{ContentSummary, FileKind, FileStatus, LocatedBlock, LocatedBlocks};
use tdfs_proto::perm::{EXECUTE, READ};
use tdfs_proto::{BlockId, DatanodeId, FsError};

/// Entries a listing page holds at most.
pub const MAX_PAGE: u32 = 10_000;

/// A page of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<FileStatus>,
    /// Entries left after this page.
    pub remaining: u64,
}

/// Where a block sits in the namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub block: Block,
    /// The owning file's id.
    pub file: InodeId,
    pub replication: u16,
    /// Length and digest are final.
    pub committed: bool,
}

/// A file under construction, for lease recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenFile {
    pub path: String,
    pub holder: u64,
    /// The open last block, if any.
    pub open_block: Option<Block>,
    /// Its pipeline.
    pub targets: Vec<DatanodeId>,
}

/// What a walk shows of one inode.
pub struct Visit<'a> {
    pub slot: Slot,
    pub inode: &'a Inode,
}

/// A resumable depth-first walk in name order (see [`Namespace::walk`]).
#[derive(Clone, Debug)]
pub struct Walk {
    /// Directories being walked, with the last child name visited.
    stack: Vec<(InodeId, Option<CompactString>)>,
    /// The inode the walk starts at, not yet visited.
    start: Option<InodeId>,
}

impl Walk {
    /// Whether the walk has visited everything.
    pub fn done(&self) -> bool {
        self.start.is_none() && self.stack.is_empty()
    }
}

impl Namespace {
    fn ready(&self) -> Result<(), FsError> {
        if self.is_initialized() {
            Ok(())
        } else {
            Err(FsError::Unavailable("namespace not initialized".into()))
        }
    }

    /// The status of `path` for `user`.
    pub fn stat(&self, user: &str, path: &str) -> Result<FileStatus, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        Ok(self.status(slot))
    }

    /// The id of the inode at `path`.
    pub fn lookup(&self, user: &str, path: &str) -> Result<InodeId, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        Ok(self.slab.id_of(slot))
    }

    /// Lists a directory (or a file, which lists as itself) in name order,
    /// starting after `start_after`, at most `limit` entries.
    pub fn list(
        &self,
        user: &str,
        path: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Listing, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        let ino = self.slab.at(slot);
        let Some(d) = ino.dir() else {
            return Ok(Listing {
                entries: vec![self.status(slot)],
                remaining: 0,
            });
        };
        self.check(&a, slot, READ | EXECUTE, path)?;
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let name_of = |s: Slot| self.slab.at(s).name.as_str();
        let entries: Vec<FileStatus> = d
            .children
            .iter_after(start_after, name_of)
            .take(limit)
            .map(|c| self.status(c))
            .collect();
        let after = d.children.count_after(start_after, name_of);
        Ok(Listing {
            remaining: (after - entries.len()) as u64,
            entries,
        })
    }

    /// `du`/`count`: read from the usage the directory keeps.
    pub fn summary(&self, user: &str, path: &str) -> Result<ContentSummary, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        let ino = self.slab.at(slot);
        if ino.is_dir() {
            self.check(&a, slot, READ | EXECUTE, path)?;
        }
        let u = ino.usage();
        Ok(ContentSummary {
            length: u.bytes,
            file_count: u.files,
            directory_count: u.dirs,
            space_consumed: u.space,
        })
    }

    /// The blocks of `path` overlapping `[offset, offset+len)`, without
    /// locations (the server fills them from its replica map).
    pub fn locate(
        &self,
        user: &str,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<LocatedBlocks, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        let ino = self.slab.at(slot);
        let Some(f) = ino.file() else {
            return Err(FsError::IsADirectory(path.to_string()));
        };
        self.check(&a, slot, READ, path)?;
        let end = offset.saturating_add(len);
        let mut blocks = Vec::new();
        let mut pos = 0u64;
        for b in f.blocks.iter() {
            let (bstart, bend) = (pos, pos + b.len);
            pos = bend;
            let overlaps = bstart < end && (bend > offset || (b.len == 0 && bstart >= offset));
            if overlaps {
                blocks.push(LocatedBlock {
                    block: b.info(),
                    offset: bstart,
                    locations: Vec::new(),
                    token: None,
                });
            }
        }
        Ok(LocatedBlocks {
            file_length: pos,
            blocks,
            under_construction: ino.has(flags::UNDER_CONSTRUCTION),
        })
    }

    /// Replication and block size of the file at `path`.
    pub fn file_params(&self, user: &str, path: &str) -> Result<(u16, u64), FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        match self.slab.at(slot).file() {
            Some(f) => Ok((f.replication(), f.block_size())),
            None => Err(FsError::IsADirectory(path.to_string())),
        }
    }

    /// The status of an inode.
    pub fn status(&self, slot: Slot) -> FileStatus {
        let ino = self.slab.at(slot);
        let (kind, length, replication, block_size, children) = match (ino.dir(), ino.file()) {
            (Some(d), _) => (FileKind::Dir, 0, 0, 0, d.children.len() as u64),
            (_, Some(f)) => (FileKind::File, f.len(), f.replication(), f.block_size(), 0),
            _ => unreachable!("a live inode"),
        };
        FileStatus {
            name: ino.name.to_string(),
            inode: self.slab.id_of(slot),
            kind,
            length,
            replication,
            block_size,
            mtime: ino.mtime,
            atime: ino.atime,
            owner: self.strings.get(ino.owner).to_string(),
            group: self.strings.get(ino.group).to_string(),
            mode: ino.mode,
            children,
            under_construction: ino.has(flags::UNDER_CONSTRUCTION),
        }
    }

    /// Where block `id` sits, if the namespace still has it.
    pub fn block(&self, id: BlockId) -> Option<BlockRef> {
        let slot = *self.block_index.get(&id)?;
        let ino = self.slab.get(slot)?;
        let f = ino.file()?;
        let i = f.blocks.iter().rposition(|b| b.id == id)?;
        let last = i + 1 == f.blocks.len();
        Some(BlockRef {
            block: f.blocks[i],
            file: self.slab.id_of(slot),
            replication: f.replication(),
            committed: !(last && ino.has(flags::LAST_OPEN)),
        })
    }

    /// Calls `f` on every block of every file (to rebuild the leader's
    /// block map after a restart or a snapshot install).
    pub fn for_each_block(&self, mut f: impl FnMut(BlockRef)) {
        for (slot, ino) in self.slab.iter() {
            let Some(file) = ino.file() else { continue };
            let n = file.blocks.len();
            for (i, b) in file.blocks.iter().enumerate() {
                f(BlockRef {
                    block: *b,
                    file: self.slab.id_of(slot),
                    replication: file.replication(),
                    committed: !(i + 1 == n && ino.has(flags::LAST_OPEN)),
                });
            }
        }
    }

    /// Every file under construction: (file id, holder).
    pub fn open_files(&self) -> Vec<(InodeId, u64)> {
        let mut v: Vec<(InodeId, u64)> = self
            .leases
            .iter()
            .map(|(s, l)| (self.slab.id_of(*s), l.holder))
            .collect();
        v.sort_unstable();
        v
    }

    /// A file under construction, if `file` still is one and is in the tree.
    pub fn open_file(&self, file: InodeId) -> Option<OpenFile> {
        let slot = self.slab.resolve_id(file)?;
        let l = self.leases.get(&slot)?;
        if !self.attached(slot) {
            return None;
        }
        let ino = self.slab.at(slot);
        let open_block = ino
            .has(flags::LAST_OPEN)
            .then(|| ino.file().and_then(|f| f.blocks.last().copied()))
            .flatten();
        Some(OpenFile {
            path: self.path_of(slot),
            holder: l.holder,
            open_block,
            targets: l.targets.clone(),
        })
    }

    /// The path of file `id`, if it is live and in the tree.
    pub fn path_of_id(&self, id: InodeId) -> Option<String> {
        let slot = self.slab.resolve_id(id)?;
        self.attached(slot).then(|| self.path_of(slot))
    }

    /// Starts a walk of the subtree at `path` (checked for `user`).
    pub fn walk_start(&self, user: &str, path: &str) -> Result<Walk, FsError> {
        self.ready()?;
        let a = self.access(user);
        let slot = self.resolve(&a, path)?;
        Ok(Walk {
            stack: Vec::new(),
            start: Some(self.slab.id_of(slot)),
        })
    }

    /// Visits up to `budget` inodes of the walk, in name order, and returns
    /// how many it visited. Changes between calls are tolerated: a
    /// directory deleted meanwhile is skipped, children added after the
    /// walk passed their place are not seen (as HDFS's fsck).
    pub fn walk(&self, w: &mut Walk, budget: usize, visit: &mut dyn FnMut(Visit)) -> usize {
        let mut n = 0;
        if let Some(id) = w.start.take() {
            let Some(slot) = self.slab.resolve_id(id) else {
                return 0;
            };
            let inode = self.slab.at(slot);
            visit(Visit { slot, inode });
            n += 1;
            if inode.is_dir() {
                w.stack.push((id, None));
            }
        }
        while n < budget {
            let Some((dir_id, after)) = w.stack.last().cloned() else {
                break;
            };
            let Some(dir) = self
                .slab
                .resolve_id(dir_id)
                .filter(|s| self.slab.at(*s).is_dir())
            else {
                w.stack.pop();
                continue;
            };
            let d = self.slab.at(dir).dir().expect("a directory");
            let next = d
                .children
                .iter_after(after.as_deref(), |s| self.slab.at(s).name.as_str())
                .next();
            let Some(c) = next else {
                w.stack.pop();
                continue;
            };
            let inode = self.slab.at(c);
            w.stack.last_mut().expect("non-empty").1 = Some(inode.name.clone());
            visit(Visit { slot: c, inode });
            n += 1;
            if inode.is_dir() {
                w.stack.push((self.slab.id_of(c), None));
            }
        }
        n
    }
}
