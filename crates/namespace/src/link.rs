//! Linking inodes into the tree and out of it, carrying usage up to the
//! ancestors, and freeing detached subtrees in bounded steps (or keeping
//! them while a snapshot sees them).

use crate::children::Pos;
use crate::inode::{flags, Body, Delta, Inode};
use crate::ns::{Namespace, INLINE_FREE, MAX_DIR_ITEMS};
use crate::op::NsEvent;
use crate::slab::Slot;
use tdfs_proto::FsError;

impl Namespace {
    // ------------------------------------------------------------------
    // Linking and usage
    // ------------------------------------------------------------------

    /// Adds `delta` to the usage of `dir` and every ancestor.
    pub(crate) fn propagate(&mut self, mut dir: Slot, delta: Delta) {
        if delta.is_zero() {
            return;
        }
        loop {
            let ino = self.slab.at_mut(dir);
            let parent = ino.parent;
            if let Some(d) = ino.dir_mut() {
                d.usage.add(delta);
            }
            // A detached subtree's root still names its old parent.
            if parent == dir || ino.has(flags::DETACHED) {
                return;
            }
            dir = parent;
        }
    }

    /// Allocates `ino` and links it as child `name` of `parent` at `pos`;
    /// it inherits the parent's default ACL.
    pub(crate) fn link_new(
        &mut self,
        parent: Slot,
        pos: Pos,
        mut ino: Inode,
        now: u64,
    ) -> Result<Slot, FsError> {
        if self.slab.at(parent).dir().map_or(0, |d| d.children.len()) >= MAX_DIR_ITEMS {
            return Err(FsError::InvalidArgument(format!(
                "directory {} has the maximum of {MAX_DIR_ITEMS} entries",
                self.path_of(parent)
            )));
        }
        ino.parent = parent;
        let usage = ino.usage();
        let slot = self.slab.alloc(ino);
        if let Err(e) = self.inherit_acl(parent, slot) {
            self.slab.free(slot);
            return Err(e);
        }
        self.insert_child(parent, pos, slot, now);
        self.propagate(parent, Delta::of(&usage));
        Ok(slot)
    }

    /// Inserts an allocated `slot` into `parent`'s children.
    pub(crate) fn insert_child(&mut self, parent: Slot, pos: Pos, slot: Slot, now: u64) {
        self.save_attrs(parent);
        let p = self.slab.at_mut(parent);
        p.mtime = now;
        p.dir_mut()
            .expect("parent is a directory")
            .children
            .insert_at(pos, slot);
        self.snap_child_added(parent, slot);
    }

    /// Unlinks child `name` of `parent` (its inodes stay allocated) and
    /// takes its usage off the ancestors. Returns its slot, and whether a
    /// snapshot still sees it there (so it must be kept).
    pub(crate) fn unlink(&mut self, parent: Slot, name: &str, now: u64) -> Option<(Slot, bool)> {
        let pos = {
            let d = self.slab.at(parent).dir()?;
            d.children
                .find(name, |s| self.slab.at(s).name.as_str())
                .ok()?
        };
        self.save_attrs(parent);
        let p = self.slab.at_mut(parent);
        p.mtime = now;
        let slot = p.dir_mut().expect("a directory").children.remove_at(pos);
        let usage = self.slab.at(slot).usage();
        self.propagate(parent, -Delta::of(&usage));
        let kept = self.snap_child_removed(parent, slot, name);
        Some((slot, kept))
    }

    /// Removes child `name` of `parent` from the tree: freed, or kept
    /// detached while a snapshot sees it.
    pub(crate) fn remove_child(
        &mut self,
        parent: Slot,
        name: &str,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Option<Slot> {
        let (slot, kept) = self.unlink(parent, name, now)?;
        if kept {
            self.retain(slot, ev);
        } else {
            self.dispose(slot, ev);
        }
        Some(slot)
    }

    // ------------------------------------------------------------------
    // Freeing
    // ------------------------------------------------------------------

    /// Frees an unlinked subtree: at once when small, else in `Reclaim`
    /// steps (the subtree is already invisible).
    pub(crate) fn dispose(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        let size = {
            let u = self.slab.at(slot).usage();
            u.files + u.dirs
        };
        self.mark_detached(slot, ev);
        self.reclaim_pending += size.max(1);
        if size <= INLINE_FREE {
            // Ahead of subtrees queued earlier, so this one goes at once.
            self.reclaim.push_front(slot);
            self.reclaim_step(size.max(1), ev);
        } else {
            self.reclaim.push_back(slot);
        }
    }

    /// Keeps an unlinked subtree a snapshot still sees: detached, its
    /// blocks kept; files being written in it are closed (their open
    /// blocks were never part of a snapshot).
    fn retain(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        self.mark_detached(slot, ev);
        let mut open: Vec<Slot> = self
            .leases
            .keys()
            .copied()
            .filter(|f| self.is_ancestor(slot, *f))
            .collect();
        open.sort_unstable();
        for f in open {
            self.drop_open_block(f, ev);
            if let Some(l) = self.leases.remove(&f) {
                ev.push(NsEvent::LeaseClosed {
                    holder: l.holder,
                    file: self.slab.id_of(f),
                });
            }
            self.slab.at_mut(f).set(flags::UNDER_CONSTRUCTION, false);
        }
    }

    fn mark_detached(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        self.slab.at_mut(slot).set(flags::DETACHED, true);
        // A deleted file's lease ends with it; leases of files deeper in a
        // deleted subtree end when their inodes are freed.
        if let Some(l) = self.leases.remove(&slot) {
            ev.push(NsEvent::LeaseClosed {
                holder: l.holder,
                file: self.slab.id_of(slot),
            });
        }
    }

    /// Whether `slot` is in the tree (no ancestor of it was deleted).
    pub(crate) fn attached(&self, mut slot: Slot) -> bool {
        loop {
            let ino = self.slab.at(slot);
            if ino.has(flags::DETACHED) {
                return false;
            }
            if ino.parent == slot {
                return true;
            }
            slot = ino.parent;
        }
    }

    /// Frees up to `budget` inodes of detached subtrees. An inode a
    /// snapshot diff still names is cut off and kept (it is freed when the
    /// last such diff goes).
    pub(crate) fn reclaim_step(&mut self, budget: u64, ev: &mut Vec<NsEvent>) {
        let mut freed = 0;
        while freed < budget {
            let Some(slot) = self.reclaim.pop_front() else {
                break;
            };
            if self.slab.get(slot).is_none_or(|i| i.has(flags::SNAP_REF)) {
                continue;
            }
            let file_id = self.slab.id_of(slot);
            let fl = self.slab.at(slot).flags;
            let mut blocks = Vec::new();
            self.forget_snapshot_state(slot, fl, &mut blocks);
            self.side.forget(slot, fl);
            let ino = self.slab.free(slot);
            freed += 1;
            match ino.body {
                Body::Dir(d) => {
                    // Each child roots a detached subtree now (its parent
                    // slot is free and may be reused). Children go to the
                    // front so a subtree is finished before the next one
                    // starts; one a snapshot diff names is kept.
                    for c in d.children.iter().collect::<Vec<_>>().into_iter().rev() {
                        let child = self.slab.at_mut(c);
                        child.set(flags::DETACHED, true);
                        if !child.has(flags::SNAP_REF) {
                            self.reclaim.push_front(c);
                        }
                    }
                }
                Body::File(f) => {
                    blocks.extend(f.blocks.iter().map(|b| b.id));
                    if let Some(l) = self.leases.remove(&slot) {
                        ev.push(NsEvent::LeaseClosed {
                            holder: l.holder,
                            file: file_id,
                        });
                    }
                }
                Body::Free => {}
            }
            blocks.sort_unstable();
            blocks.dedup();
            for id in blocks {
                self.block_index.remove(&id);
                ev.push(NsEvent::BlockRemoved { id });
            }
        }
        self.reclaim_pending = self.reclaim_pending.saturating_sub(freed);
        if self.reclaim.is_empty() {
            self.reclaim_pending = 0;
        }
    }
}
