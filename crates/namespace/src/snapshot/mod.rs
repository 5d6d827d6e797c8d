//! Snapshots as HDFS builds them (`DirectoryWithSnapshotFeature`,
//! `FileWithSnapshotFeature`): taking one records its id and name on the
//! snapshot root and nothing else, O(1) in time and memory. Differences
//! are recorded afterwards, on the first change of an inode after the
//! latest snapshot that sees it:
//!
//! - an inode's attributes (name, parent, times, owner, group, mode, ACL,
//!   xattrs, and for a file its replication and committed blocks) as they
//!   were, in a [`Diff`] tagged with that snapshot's id;
//! - a directory's children created and deleted since, in the same diff.
//!
//! Snapshot ids are global and increase, so an inode's diffs are ordered
//! by tag. The state at snapshot `s` is, for attributes, the earliest diff
//! tagged `>= s` that holds attributes (else the current inode); for a
//! directory's children, the current children with every diff tagged
//! `>= s` undone, newest first (created ones removed, deleted ones put
//! back). A deleted inode that a diff still names is detached from the
//! tree but kept, with its blocks in the block index (so the datanodes
//! keep them); it is freed, and its blocks leave, when the last diff
//! naming it is merged away by a snapshot deletion ([`gc`]).
//!
//! Which snapshot an inode's change belongs to is the newest one that
//! sees it: the latest of its snapshot root if it existed there then, else
//! for an inode moved out of (or back into) a snapshotted subtree, the
//! latest one that saw it at a place it left (its "pin", on it or an
//! ancestor). Finding it walks the ancestors, O(depth), as the quota
//! check does.

mod gc;
mod ops;
mod record;
mod report;
mod view;

pub(crate) use view::Node;

use crate::acl::Ent;
use crate::inode::{flags, File, Inode};
use crate::ns::Namespace;
use crate::perm::Perms;
use crate::slab::Slot;
use crate::xattr::{XAttrs, XEnt};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One snapshot of a root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Snap {
    pub id: u32,
    pub name: CompactString,
    /// Creation time, ms since the epoch.
    pub ctime: u64,
}

/// A snapshottable directory's snapshots, in id (creation) order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Root {
    pub snaps: Vec<Snap>,
    pub quota: u32,
}

impl Root {
    pub fn latest(&self) -> u32 {
        self.snaps.last().map_or(0, |s| s.id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Snap> {
        self.snaps.iter().find(|s| s.name == name)
    }
}

/// An inode's attributes as a snapshot saw them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attrs {
    pub name: CompactString,
    pub parent: Slot,
    pub mtime: u64,
    pub atime: u64,
    pub owner: u32,
    pub group: u32,
    pub mode: u16,
    /// A file's replication, block size and committed blocks (a block
    /// still being written is not part of any snapshot).
    pub file: Option<File>,
    pub acl: Option<Box<[Ent]>>,
    pub xattrs: Option<XAttrs>,
}

/// Children deleted from a directory since a snapshot: by slot (to test
/// membership) and by the name they had then (to look them up).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Deleted {
    pub by_slot: BTreeSet<Slot>,
    pub by_name: BTreeSet<(CompactString, Slot)>,
}

impl Deleted {
    pub fn contains(&self, s: Slot) -> bool {
        self.by_slot.contains(&s)
    }

    pub fn insert(&mut self, name: &str, s: Slot) -> bool {
        self.by_name.insert((name.into(), s));
        self.by_slot.insert(s)
    }

    /// Entries recorded under `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Slot> + 'a {
        let from = (CompactString::from(name), 0);
        self.by_name
            .range(from..)
            .take_while(move |(n, _)| n == name)
            .map(|(_, s)| *s)
    }
}

impl Serialize for Deleted {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.by_name.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Deleted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let by_name = BTreeSet::<(CompactString, Slot)>::deserialize(d)?;
        let by_slot = by_name.iter().map(|(_, s)| *s).collect();
        Ok(Deleted { by_slot, by_name })
    }
}

/// What changed for one inode after snapshot `tag` (until a newer
/// snapshot saw it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Diff {
    pub tag: u32,
    /// The attributes before the first change after `tag`, if any changed.
    pub attrs: Option<Box<Attrs>>,
    /// Children added since (directories).
    pub created: BTreeSet<Slot>,
    /// Children removed since (directories); each holds a reference.
    pub deleted: Deleted,
}

/// Every snapshot's bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct Snapshots {
    /// The next snapshot id (ids are never reused; 0 means none).
    pub(crate) next_id: u32,
    pub(crate) roots: FxHashMap<Slot, Root>,
    /// Per inode, oldest tag first.
    pub(crate) diffs: FxHashMap<Slot, Vec<Diff>>,
    pub(crate) pins: FxHashMap<Slot, u32>,
    /// How many deleted lists name each slot (derived from `diffs`).
    pub(crate) refs: FxHashMap<Slot, u32>,
    /// Every live snapshot id (derived from `roots`).
    pub(crate) live: BTreeSet<u32>,
}

/// The snapshot state as a Raft snapshot stores it, sorted by slot.
#[derive(Serialize, Deserialize)]
pub(crate) struct SnapImage {
    next_id: u32,
    roots: Vec<(Slot, Root)>,
    diffs: Vec<(Slot, Vec<Diff>)>,
    pins: Vec<(Slot, u32)>,
}

impl Snapshots {
    pub(crate) fn image(&self) -> SnapImage {
        fn sorted<V: Clone>(m: &FxHashMap<Slot, V>) -> Vec<(Slot, V)> {
            let mut v: Vec<(Slot, V)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
            v.sort_unstable_by_key(|(k, _)| *k);
            v
        }
        SnapImage {
            next_id: self.next_id,
            roots: sorted(&self.roots),
            diffs: sorted(&self.diffs),
            pins: sorted(&self.pins),
        }
    }

    pub(crate) fn from_image(img: SnapImage) -> Snapshots {
        let mut s = Snapshots {
            next_id: img.next_id,
            roots: img.roots.into_iter().collect(),
            diffs: img.diffs.into_iter().collect(),
            pins: img.pins.into_iter().collect(),
            ..Default::default()
        };
        s.live = s
            .roots
            .values()
            .flat_map(|r| r.snaps.iter().map(|x| x.id))
            .collect();
        for d in s.diffs.values().flatten() {
            for slot in &d.deleted.by_slot {
                *s.refs.entry(*slot).or_default() += 1;
            }
        }
        s
    }

    /// Whether any snapshot exists (otherwise nothing is ever recorded).
    pub(crate) fn active(&self) -> bool {
        !self.live.is_empty()
    }
}

/// An inode's attributes at some state, borrowed.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub name: &'a str,
    pub mtime: u64,
    pub atime: u64,
    pub owner: u32,
    pub group: u32,
    pub mode: u16,
    pub file: Option<&'a File>,
    pub acl: Option<&'a [Ent]>,
    pub xattrs: Option<&'a [XEnt]>,
}

impl View<'_> {
    pub fn perms(&self) -> Perms<'_> {
        Perms {
            owner: self.owner,
            group: self.group,
            mode: self.mode,
            acl: self.acl,
        }
    }
}

impl Namespace {
    /// The attributes of the inode in `slot` as snapshot `at` saw them
    /// (`None`: now).
    pub(crate) fn attrs_at(&self, slot: Slot, at: Option<u32>) -> View<'_> {
        let ino = self.slab.at(slot);
        if let (Some(s), true) = (at, ino.has(flags::DIFFS)) {
            let diffs = self.snap.diffs.get(&slot).map_or(&[][..], |v| &v[..]);
            let start = diffs.partition_point(|d| d.tag < s);
            if let Some(a) = diffs[start..].iter().find_map(|d| d.attrs.as_deref()) {
                return View {
                    name: &a.name,
                    mtime: a.mtime,
                    atime: a.atime,
                    owner: a.owner,
                    group: a.group,
                    mode: a.mode,
                    file: a.file.as_ref(),
                    acl: a.acl.as_deref(),
                    xattrs: a.xattrs.as_deref(),
                };
            }
        }
        self.current_view(slot, ino)
    }

    fn current_view<'a>(&'a self, slot: Slot, ino: &'a Inode) -> View<'a> {
        View {
            name: &ino.name,
            mtime: ino.mtime,
            atime: ino.atime,
            owner: ino.owner,
            group: ino.group,
            mode: ino.mode,
            file: ino.file(),
            acl: ino
                .has(flags::ACL)
                .then(|| self.side.acls.get(&slot).map(|a| &a[..]))
                .flatten(),
            xattrs: ino
                .has(flags::XATTR)
                .then(|| self.side.xattrs.get(&slot).map(|x| &x[..]))
                .flatten(),
        }
    }

    /// The current attributes of `slot`, to keep in a diff.
    fn capture(&self, slot: Slot) -> Attrs {
        let ino = self.slab.at(slot);
        let file = ino.file().map(|f| {
            let mut f = f.clone();
            if ino.has(flags::LAST_OPEN) {
                f.pop_block();
            }
            f
        });
        let v = self.current_view(slot, ino);
        Attrs {
            name: ino.name.clone(),
            parent: ino.parent,
            mtime: ino.mtime,
            atime: ino.atime,
            owner: ino.owner,
            group: ino.group,
            mode: ino.mode,
            file,
            acl: v.acl.map(Into::into),
            xattrs: v.xattrs.map(Into::into),
        }
    }

    /// Blocks of `slot` that only its diffs hold (not its current body).
    pub(crate) fn snapshot_only_blocks(&self, slot: Slot) -> Vec<crate::inode::Block> {
        let Some(diffs) = self.snap.diffs.get(&slot) else {
            return Vec::new();
        };
        let current: BTreeSet<u64> = self
            .slab
            .get(slot)
            .and_then(|i| i.file())
            .map(|f| f.blocks.iter().map(|b| b.id).collect())
            .unwrap_or_default();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for f in diffs.iter().filter_map(|d| d.attrs.as_ref()?.file.as_ref()) {
            for b in f.blocks.iter() {
                if !current.contains(&b.id) && seen.insert(b.id) {
                    out.push(*b);
                }
            }
        }
        out
    }

    /// The highest replication any state of `slot` asks of block `id`
    /// (HDFS keeps a block at the largest factor a snapshot recorded).
    pub(crate) fn block_replication(&self, slot: Slot, id: u64, current: u16) -> u16 {
        if !self.slab.get(slot).is_some_and(|i| i.has(flags::DIFFS)) {
            return current;
        }
        let Some(diffs) = self.snap.diffs.get(&slot) else {
            return current;
        };
        diffs
            .iter()
            .filter_map(|d| d.attrs.as_ref()?.file.as_ref())
            .filter(|f| f.blocks.iter().any(|b| b.id == id))
            .map(|f| f.replication())
            .fold(current, u16::max)
    }

    /// Queues a detached subtree no snapshot needs any more for freeing.
    pub(crate) fn queue_reclaim(&mut self, slot: Slot) {
        let u = self.slab.at(slot).usage();
        self.reclaim.push_back(slot);
        self.reclaim_pending += (u.files + u.dirs).max(1);
    }
}

impl Snapshots {
    /// Each entry with the flag its inode must carry (load-time checks).
    pub(crate) fn flagged(&self) -> impl Iterator<Item = (Slot, u16)> + '_ {
        let r = self.roots.keys().map(|s| (*s, flags::SNAPSHOTTABLE));
        let d = self.diffs.keys().map(|s| (*s, flags::DIFFS));
        let p = self.pins.keys().map(|s| (*s, flags::PINNED));
        let x = self.refs.keys().map(|s| (*s, flags::SNAP_REF));
        r.chain(d).chain(p).chain(x)
    }
}
