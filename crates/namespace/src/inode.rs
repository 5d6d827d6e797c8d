//! What one inode holds, packed small: a namespace of tens of millions of
//! files must fit in memory at a couple of hundred bytes per file.
//!
//! Owners and groups are interned ([`crate::strings`]), names are inline up
//! to 24 bytes, a file's blocks are one boxed slice, and what only a few
//! inodes have (the lease of a file being written, a directory's children
//! and usage) lives behind a pointer or in a side table.

use crate::children::Children;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::BlockId;

/// A file or directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inode {
    /// The last path component ("" for the root and for free slots).
    pub name: CompactString,
    /// Milliseconds since the Unix epoch.
    pub mtime: u64,
    pub atime: u64,
    /// Slot of the parent directory (the root is its own parent).
    pub parent: u32,
    /// How many inodes this slot has held; part of the inode's id.
    pub gen: u32,
    /// Interned user name.
    pub owner: u32,
    /// Interned group name.
    pub group: u32,
    /// Permission bits (`0o1777` at most).
    pub mode: u16,
    /// [`flags`] bits.
    pub flags: u16,
    pub body: Body,
}

/// Bits of [`Inode::flags`].
pub mod flags {
    /// A file open for writing (its lease is in the namespace's side table).
    pub const UNDER_CONSTRUCTION: u16 = 1;
    /// The file's last block is not committed yet (length and digest open).
    pub const LAST_OPEN: u16 = 2;
    /// Unlinked from the tree, waiting to be freed in bounded batches.
    pub const DETACHED: u16 = 4;
}

/// What distinguishes files from directories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// An unused slot.
    Free,
    Dir(Box<Dir>),
    File(File),
}

/// A directory's contents and the usage of everything below it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Dir {
    pub children: Children,
    /// Usage of the subtree, this directory included; kept up to date on
    /// every change below, so summaries and quotas never walk the tree.
    pub usage: Usage,
}

/// Counts of a subtree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file data (committed block lengths).
    pub bytes: u64,
    /// Bytes on disk: committed lengths times replication, plus a full
    /// block times replication for every block still being written (what
    /// HDFS charges a space quota).
    pub space: u64,
}

/// A signed change to a [`Usage`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    pub files: i64,
    pub dirs: i64,
    pub bytes: i64,
    pub space: i64,
}

impl Delta {
    pub fn is_zero(&self) -> bool {
        *self == Delta::default()
    }

    pub fn of(u: &Usage) -> Delta {
        Delta {
            files: u.files as i64,
            dirs: u.dirs as i64,
            bytes: u.bytes as i64,
            space: u.space as i64,
        }
    }
}

impl std::ops::Neg for Delta {
    type Output = Delta;
    fn neg(self) -> Delta {
        Delta {
            files: -self.files,
            dirs: -self.dirs,
            bytes: -self.bytes,
            space: -self.space,
        }
    }
}

impl std::ops::Add for Delta {
    type Output = Delta;
    fn add(self, o: Delta) -> Delta {
        Delta {
            files: self.files + o.files,
            dirs: self.dirs + o.dirs,
            bytes: self.bytes + o.bytes,
            space: self.space + o.space,
        }
    }
}

impl std::ops::Sub for Delta {
    type Output = Delta;
    fn sub(self, o: Delta) -> Delta {
        self + -o
    }
}

impl Usage {
    pub fn add(&mut self, d: Delta) {
        self.files = self.files.wrapping_add_signed(d.files);
        self.dirs = self.dirs.wrapping_add_signed(d.dirs);
        self.bytes = self.bytes.wrapping_add_signed(d.bytes);
        self.space = self.space.wrapping_add_signed(d.space);
    }
}

/// A file's replicated metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// Replication (high 16 bits) and preferred block size (low 48 bits),
    /// packed as HDFS packs its file header.
    header: u64,
    /// The blocks in file order.
    pub blocks: Box<[Block]>,
}

const SIZE_BITS: u32 = 48;

/// A block of a file, 56 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub id: BlockId,
    /// Bumped when a pipeline is rebuilt, so stale replicas can be told apart.
    pub gen: u64,
    pub len: u64,
    /// SHA-256 of the block's bytes; all zero while unknown (a block still
    /// being written, or one whose writer did not compute it).
    pub sha256: [u8; 32],
}

impl Block {
    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: (self.sha256 != [0; 32]).then_some(self.sha256),
        }
    }
}

impl File {
    pub fn new(replication: u16, block_size: u64) -> File {
        File {
            header: pack(replication, block_size),
            blocks: Box::new([]),
        }
    }

    pub fn replication(&self) -> u16 {
        (self.header >> SIZE_BITS) as u16
    }

    /// Preferred block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.header & ((1 << SIZE_BITS) - 1)
    }

    pub fn set_replication(&mut self, r: u16) {
        self.header = pack(r, self.block_size());
    }

    /// The file's length: the sum of its blocks.
    pub fn len(&self) -> u64 {
        self.blocks.iter().map(|b| b.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Space charged for the file; `last_open` when its last block is
    /// still being written (charged a whole block).
    pub fn space(&self, last_open: bool) -> u64 {
        let r = self.replication() as u64;
        match (last_open, self.blocks.split_last()) {
            (true, Some((_, done))) => {
                done.iter().map(|b| b.len).sum::<u64>() * r + self.block_size() * r
            }
            _ => self.len() * r,
        }
    }

    /// Appends a block (the boxed slice is reallocated: files rarely have
    /// more than a few hundred blocks).
    pub fn push_block(&mut self, b: Block) {
        let mut v = std::mem::take(&mut self.blocks).into_vec();
        v.push(b);
        self.blocks = v.into_boxed_slice();
    }

    /// Removes the last block.
    pub fn pop_block(&mut self) -> Option<Block> {
        let mut v = std::mem::take(&mut self.blocks).into_vec();
        let b = v.pop();
        self.blocks = v.into_boxed_slice();
        b
    }
}

impl Inode {
    /// A free slot of generation `gen`.
    pub fn free(gen: u32) -> Inode {
        Inode {
            name: CompactString::default(),
            mtime: 0,
            atime: 0,
            parent: 0,
            gen,
            owner: 0,
            group: 0,
            mode: 0,
            flags: 0,
            body: Body::Free,
        }
    }

    /// A new, empty directory.
    pub fn new_dir(name: &str, parent: u32, owner: u32, group: u32, mode: u16, now: u64) -> Inode {
        Inode {
            name: name.into(),
            mtime: now,
            atime: now,
            parent,
            gen: 0,
            owner,
            group,
            mode,
            flags: 0,
            body: Body::Dir(Box::new(Dir {
                children: Children::default(),
                usage: Usage {
                    dirs: 1,
                    ..Usage::default()
                },
            })),
        }
    }

    /// A new, empty file.
    #[allow(clippy::too_many_arguments)]
    pub fn new_file(
        name: &str,
        parent: u32,
        owner: u32,
        group: u32,
        mode: u16,
        now: u64,
        replication: u16,
        block_size: u64,
    ) -> Inode {
        Inode {
            name: name.into(),
            mtime: now,
            atime: now,
            parent,
            gen: 0,
            owner,
            group,
            mode,
            flags: 0,
            body: Body::File(File::new(replication, block_size)),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.body, Body::Dir(_))
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    pub fn set(&mut self, flag: u16, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    pub fn dir(&self) -> Option<&Dir> {
        match &self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn dir_mut(&mut self) -> Option<&mut Dir> {
        match &mut self.body {
            Body::Dir(d) => Some(d),
            _ => None,
        }
    }

    pub fn file(&self) -> Option<&File> {
        match &self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    pub fn file_mut(&mut self) -> Option<&mut File> {
        match &mut self.body {
            Body::File(f) => Some(f),
            _ => None,
        }
    }

    /// The usage this inode contributes to its ancestors.
    pub fn usage(&self) -> Usage {
        match &self.body {
            Body::Free => Usage::default(),
            Body::Dir(d) => d.usage,
            Body::File(f) => Usage {
                files: 1,
                dirs: 0,
                bytes: f.len(),
                space: f.space(self.has(flags::LAST_OPEN)),
            },
        }
    }
}

/// Packs replication and block size (block sizes are far below 2^48).
fn pack(replication: u16, block_size: u64) -> u64 {
    ((replication as u64) << SIZE_BITS) | (block_size & ((1 << SIZE_BITS) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_stay_small() {
        // The memory budget (about 200 bytes per empty file, all overheads
        // included) depends on this.
        assert!(
            std::mem::size_of::<Inode>() <= 96,
            "{}",
            std::mem::size_of::<Inode>()
        );
        assert_eq!(std::mem::size_of::<Block>(), 56);
    }

    #[test]
    fn space_charges_a_whole_block_while_writing() {
        let mut f = File::new(3, 100);
        assert_eq!((f.replication(), f.block_size()), (3, 100));
        let b = |len| Block {
            id: 1,
            gen: 1,
            len,
            sha256: [0; 32],
        };
        f.push_block(b(100));
        f.push_block(b(10));
        assert_eq!(f.len(), 110);
        assert_eq!(f.space(false), 330);
        assert_eq!(f.space(true), 600);
        assert_eq!(f.pop_block().map(|b| b.len), Some(10));
    }
}
