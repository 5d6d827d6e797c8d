//! Reads: status, listings, summaries, block locations, and resumable walks
//! for fsck. A listing page costs its page; a summary is read from the
//! usage every directory keeps; a walk visits a bounded number of inodes
//! per call so a caller can release its lock between chunks.

use crate::inode::{flags, Block, Inode};
use crate::ns::Namespace;
use crate::perm::{denied, permits};
use crate::slab::{InodeId, Slot};
use crate::snapshot::Node;
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

    /// The status of `path` for `user` (snapshot paths included).
    pub fn stat(&self, user: &str, path: &str) -> Result<FileStatus, FsError> {
        self.ready()?;
        let a = self.access(user);
        match self.resolve_node(&a, path)? {
            Node::At { slot, at } => Ok(self.status_at(slot, at)),
            Node::SnapshotDir { root } => Ok(self.dot_snapshot_status(root)),
        }
    }

    /// The id of the inode at `path`.
    pub fn lookup(&self, user: &str, path: &str) -> Result<InodeId, FsError> {
        self.ready()?;
        let a = self.access(user);
        match self.resolve_node(&a, path)? {
            Node::At { slot, .. } | Node::SnapshotDir { root: slot } => Ok(self.slab.id_of(slot)),
        }
    }

    /// Lists a directory (or a file, which lists as itself) in name order,
    /// starting after `start_after`, at most `limit` entries; as a snapshot
    /// saw it for a path through `.snapshot`, and `DIR/.snapshot` lists the
    /// snapshots.
    pub fn list(
        &self,
        user: &str,
        path: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Listing, FsError> {
        self.ready()?;
        let a = self.access(user);
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let (slot, at) = match self.resolve_node(&a, path)? {
            Node::At { slot, at } => (slot, at),
            Node::SnapshotDir { root } => {
                self.check(&a, root, READ | EXECUTE, path)?;
                return Ok(self.list_snapshots(root, start_after, limit));
            }
        };
        if !self.slab.at(slot).is_dir() {
            return Ok(Listing {
                entries: vec![self.status_at(slot, at)],
                remaining: 0,
            });
        }
        if !permits(&a, self.attrs_at(slot, at).perms(), READ | EXECUTE) {
            return Err(denied(&a, "READ_EXECUTE", path));
        }
        let (page, remaining) = match at {
            Some(s) => self.list_at(slot, s, start_after, limit),
            None => {
                let d = self.slab.at(slot).dir().expect("a directory");
                let name_of = |s: Slot| self.slab.at(s).name.as_str();
                let page: Vec<Slot> = d
                    .children
                    .iter_after(start_after, name_of)
                    .take(limit)
                    .collect();
                let after = d.children.count_after(start_after, name_of);
                let n = page.len();
                (page, (after - n) as u64)
            }
        };
        Ok(Listing {
            entries: page.into_iter().map(|c| self.status_at(c, at)).collect(),
            remaining,
        })
    }

    /// `du`/`count`: read from the usage the directory keeps (a snapshot's
    /// is summed by walking it).
    pub fn summary(&self, user: &str, path: &str) -> Result<ContentSummary, FsError> {
        self.ready()?;
        let a = self.access(user);
        let u = match self.resolve_node(&a, path)? {
            Node::At { slot, at } => {
                let ino = self.slab.at(slot);
                if ino.is_dir() && !permits(&a, self.attrs_at(slot, at).perms(), READ | EXECUTE) {
                    return Err(denied(&a, "READ_EXECUTE", path));
                }
                match at {
                    None => ino.usage(),
                    Some(s) => self.usage_at(slot, s),
                }
            }
            Node::SnapshotDir { .. } => crate::inode::Usage {
                dirs: 1,
                ..Default::default()
            },
        };
        Ok(ContentSummary {
            length: u.bytes,
            file_count: u.files,
            directory_count: u.dirs,
            space_consumed: u.space,
        })
    }

    /// The blocks of `path` overlapping `[offset, offset+len)`, without
    /// locations (the server fills them from its replica map); a snapshot
    /// path gives the blocks the file had then.
    pub fn locate(
        &self,
        user: &str,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<LocatedBlocks, FsError> {
        self.ready()?;
        let a = self.access(user);
        let Node::At { slot, at } = self.resolve_node(&a, path)? else {
            return Err(FsError::IsADirectory(path.to_string()));
        };
        let v = self.attrs_at(slot, at);
        let Some(f) = v.file else {
            return Err(FsError::IsADirectory(path.to_string()));
        };
        if !permits(&a, v.perms(), READ) {
            return Err(denied(&a, "READ", path));
        }
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
            under_construction: at.is_none() && self.slab.at(slot).has(flags::UNDER_CONSTRUCTION),
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

    /// The status of an inode now.
    pub fn status(&self, slot: Slot) -> FileStatus {
        self.status_at(slot, None)
    }

    /// The status of an inode as snapshot `at` saw it (`None`: now).
    pub(crate) fn status_at(&self, slot: Slot, at: Option<u32>) -> FileStatus {
        let ino = self.slab.at(slot);
        let v = self.attrs_at(slot, at);
        let (kind, length, replication, block_size, children) = match (ino.is_dir(), v.file) {
            (true, _) => (FileKind::Dir, 0, 0, 0, self.child_count_at(slot, at)),
            (false, Some(f)) => (FileKind::File, f.len(), f.replication(), f.block_size(), 0),
            _ => unreachable!("a live inode"),
        };
        FileStatus {
            name: v.name.to_string(),
            inode: self.slab.id_of(slot),
            kind,
            length,
            replication,
            block_size,
            mtime: v.mtime,
            atime: v.atime,
            owner: self.strings.get(v.owner).to_string(),
            group: self.strings.get(v.group).to_string(),
            mode: v.mode,
            children,
            under_construction: at.is_none() && ino.has(flags::UNDER_CONSTRUCTION),
            has_acl: v.acl.is_some(),
            snapshot_enabled: at.is_none() && ino.has(flags::SNAPSHOTTABLE),
        }
    }

    /// Where block `id` sits, if the namespace still has it.
    pub fn block(&self, id: BlockId) -> Option<BlockRef> {
        let slot = *self.block_index.get(&id)?;
        let ino = self.slab.get(slot)?;
        let f = ino.file()?;
        let file = self.slab.id_of(slot);
        let Some(i) = f.blocks.iter().rposition(|b| b.id == id) else {
            // A block only a snapshot of the file still holds.
            return self
                .snapshot_only_blocks(slot)
                .into_iter()
                .find(|b| b.id == id)
                .map(|b| BlockRef {
                    block: b,
                    file,
                    replication: self.block_replication(slot, id, 0),
                    committed: true,
                });
        };
        let last = i + 1 == f.blocks.len();
        Some(BlockRef {
            block: f.blocks[i],
            file,
            replication: self.block_replication(slot, id, f.replication()),
            committed: !(last && ino.has(flags::LAST_OPEN)),
        })
    }

    /// Calls `f` on every block of every file, those only snapshots hold
    /// included (to rebuild the leader's block map after a restart or a
    /// snapshot install).
    pub fn for_each_block(&self, mut f: impl FnMut(BlockRef)) {
        for (slot, ino) in self.slab.iter() {
            let Some(file) = ino.file() else { continue };
            let n = file.blocks.len();
            let id = self.slab.id_of(slot);
            for (i, b) in file.blocks.iter().enumerate() {
                f(BlockRef {
                    block: *b,
                    file: id,
                    replication: self.block_replication(slot, b.id, file.replication()),
                    committed: !(i + 1 == n && ino.has(flags::LAST_OPEN)),
                });
            }
            if ino.has(flags::DIFFS) {
                for b in self.snapshot_only_blocks(slot) {
                    f(BlockRef {
                        block: b,
                        file: id,
                        replication: self.block_replication(slot, b.id, 0),
                        committed: true,
                    });
                }
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
