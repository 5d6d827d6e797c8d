//! Forgetting what no snapshot needs: after a snapshot is deleted, every
//! diff no live snapshot reads any more is merged into the diff before it
//! (or dropped when there is none), as HDFS's `combinePosteriorAndCollect
//! Blocks`. Inodes no deleted list names any more are freed, and blocks
//! no state of their file holds any more leave (a `BlockRemoved` each).
//! The work is proportional to the diffs recorded, not to the tree.

use super::{Diff, Snapshots};
use crate::inode::flags;
use crate::ns::Namespace;
use crate::op::NsEvent;
use crate::slab::Slot;
use std::collections::BTreeSet;

impl Snapshots {
    /// Whether a live snapshot reads diff `tag` whose predecessor is `prev`.
    fn reads(&self, prev: u32, tag: u32) -> bool {
        self.live
            .range(prev.saturating_add(1)..=tag)
            .next()
            .is_some()
    }

    /// Drops one reference to `c`; true when none is left.
    fn unref(&mut self, c: Slot) -> bool {
        match self.refs.get_mut(&c) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                self.refs.remove(&c);
                true
            }
        }
    }
}

fn blocks_of(diffs: &[Diff]) -> BTreeSet<u64> {
    diffs
        .iter()
        .filter_map(|d| d.attrs.as_ref()?.file.as_ref())
        .flat_map(|f| f.blocks.iter().map(|b| b.id))
        .collect()
}

/// Merges `d` (newer) into `p`: reading at or before `p` must undo both.
fn merge(p: &mut Diff, d: Diff, released: &mut Vec<Slot>) {
    if p.attrs.is_none() {
        p.attrs = d.attrs;
    }
    for (name, c) in d.deleted.by_name {
        if p.created.contains(&c) && !p.deleted.contains(c) {
            // Added after `p` and removed after `d`: no snapshot saw it.
            if !d.created.contains(&c) {
                p.created.remove(&c);
            }
            released.push(c);
        } else if p.deleted.contains(c) {
            // `p` already holds it as deleted (removed, re-added, removed).
            p.created.remove(&c);
            released.push(c);
        } else {
            p.deleted.insert(&name, c);
        }
    }
    for c in d.created {
        let p_created = p.created.contains(&c) && !p.deleted.contains(c);
        if !p_created {
            p.created.insert(c);
        }
    }
}

impl Namespace {
    /// Merges away the diffs no live snapshot reads (after a deletion).
    pub(crate) fn snapshot_gc(&mut self, ev: &mut Vec<NsEvent>) {
        let mut slots: Vec<Slot> = self.snap.diffs.keys().copied().collect();
        slots.sort_unstable();
        let mut released = Vec::new();
        for slot in slots {
            let diffs = self.snap.diffs.remove(&slot).expect("listed");
            let before = blocks_of(&diffs);
            let mut out: Vec<Diff> = Vec::with_capacity(diffs.len());
            for d in diffs {
                let prev = out.last().map_or(0, |p| p.tag);
                if self.snap.reads(prev, d.tag) {
                    out.push(d);
                } else if let Some(p) = out.last_mut() {
                    merge(p, d, &mut released);
                } else {
                    released.extend(d.deleted.by_slot.iter().copied());
                }
            }
            let after = blocks_of(&out);
            if out.is_empty() {
                self.slab.at_mut(slot).set(flags::DIFFS, false);
            } else {
                self.snap.diffs.insert(slot, out);
            }
            self.release_blocks(slot, before.difference(&after).copied(), ev);
        }
        self.release_refs(released);
        self.gc_pins();
    }

    /// Blocks a file's states no longer hold leave, unless its current
    /// body still has them.
    fn release_blocks(
        &mut self,
        slot: Slot,
        gone: impl Iterator<Item = u64>,
        ev: &mut Vec<NsEvent>,
    ) {
        let ino = self.slab.at(slot);
        let current: BTreeSet<u64> = ino
            .file()
            .map(|f| f.blocks.iter().map(|b| b.id).collect())
            .unwrap_or_default();
        for id in gone.filter(|id| !current.contains(id)) {
            self.block_index.remove(&id);
            ev.push(NsEvent::BlockRemoved { id });
        }
        if let Some(f) = self.slab.at(slot).file() {
            for b in f.blocks.iter() {
                let r = self.block_replication(slot, b.id, f.replication());
                ev.push(NsEvent::Replication {
                    id: b.id,
                    replication: r,
                });
            }
        }
    }

    /// Drops one reference for each of `released`; a detached inode left
    /// with none is freed.
    fn release_refs(&mut self, mut released: Vec<Slot>) {
        released.sort_unstable();
        for c in released {
            if !self.snap.unref(c) {
                continue;
            }
            if let Some(ino) = self.slab.get(c) {
                let detached = ino.has(flags::DETACHED) && ino.has(flags::SNAP_REF);
                self.slab.at_mut(c).set(flags::SNAP_REF, false);
                if detached {
                    self.queue_reclaim(c);
                }
            }
        }
    }

    /// Pins no live snapshot needs any more go.
    fn gc_pins(&mut self) {
        let first = self.snap.live.first().copied();
        let mut gone: Vec<Slot> = self
            .snap
            .pins
            .iter()
            .filter(|(_, p)| first.is_none_or(|f| **p < f))
            .map(|(s, _)| *s)
            .collect();
        gone.sort_unstable();
        for s in gone {
            self.snap.pins.remove(&s);
            if self.slab.get(s).is_some() {
                self.slab.at_mut(s).set(flags::PINNED, false);
            }
        }
    }

    /// Forgets the snapshot state of a slot being freed: its diffs (their
    /// references released, their blocks collected into `blocks`), pin
    /// and root. Inodes its diffs alone kept are queued for freeing.
    pub(crate) fn forget_snapshot_state(
        &mut self,
        slot: Slot,
        inode_flags: u16,
        blocks: &mut Vec<u64>,
    ) {
        if inode_flags & flags::DIFFS != 0 {
            if let Some(diffs) = self.snap.diffs.remove(&slot) {
                blocks.extend(blocks_of(&diffs));
                let released: Vec<Slot> = diffs
                    .iter()
                    .flat_map(|d| d.deleted.by_slot.iter().copied())
                    .collect();
                self.release_refs(released);
            }
        }
        if inode_flags & flags::PINNED != 0 {
            self.snap.pins.remove(&slot);
        }
        if inode_flags & flags::SNAPSHOTTABLE != 0 {
            if let Some(r) = self.snap.roots.remove(&slot) {
                for s in r.snaps {
                    self.snap.live.remove(&s.id);
                }
            }
        }
        self.snap.refs.remove(&slot);
    }
}
