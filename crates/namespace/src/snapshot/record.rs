//! Recording differences: every mutation calls [`Namespace::save_attrs`]
//! before it changes an inode, and the linking code calls the child hooks
//! when a directory gains or loses a child. With no snapshot anywhere each
//! is one branch.

use super::Diff;
use crate::inode::flags;
use crate::ns::Namespace;
use crate::slab::Slot;

impl Namespace {
    /// The snapshots that may see `x` where it is now, newest first: the
    /// latest of its snapshot root, and the pins on it and its ancestors
    /// (each the latest snapshot that saw a moved inode where it was).
    fn candidates(&self, x: Slot) -> Vec<u32> {
        let mut v = Vec::new();
        if !self.snap.active() {
            return v;
        }
        let mut c = x;
        loop {
            let ino = self.slab.at(c);
            if ino.has(flags::SNAPSHOTTABLE) {
                v.extend(
                    self.snap
                        .roots
                        .get(&c)
                        .map(|r| r.latest())
                        .filter(|l| *l > 0),
                );
            }
            if ino.has(flags::PINNED) {
                v.extend(self.snap.pins.get(&c).copied());
            }
            if ino.parent == c || ino.has(flags::DETACHED) {
                break;
            }
            c = ino.parent;
        }
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.dedup();
        v
    }

    /// The latest snapshot that sees `x` (0: none), and whether `x`
    /// already has a diff recording its state for it.
    fn seen_by(&self, x: Slot) -> (u32, bool) {
        let newest = self.newest_tag(x);
        for t in self.candidates(x) {
            if newest.is_some_and(|n| n >= t) {
                return (t, true);
            }
            if self.existed_at(x, t) {
                return (t, false);
            }
        }
        (0, false)
    }

    fn newest_tag(&self, x: Slot) -> Option<u32> {
        if !self.slab.at(x).has(flags::DIFFS) {
            return None;
        }
        self.snap.diffs.get(&x)?.last().map(|d| d.tag)
    }

    /// Whether `x` existed (where a snapshot of tag `l` looks for it) when
    /// snapshot `l` was taken: not created after it in its parent, nor in
    /// any ancestor on the way to what provides `l`.
    fn existed_at(&self, x: Slot, l: u32) -> bool {
        let mut c = x;
        loop {
            if self.newest_tag(c).is_some_and(|t| t >= l) {
                return true;
            }
            let ino = self.slab.at(c);
            if ino.has(flags::SNAPSHOTTABLE)
                && self.snap.roots.get(&c).is_some_and(|r| r.latest() >= l)
            {
                return true;
            }
            if ino.has(flags::PINNED) && self.snap.pins.get(&c).is_some_and(|p| *p >= l) {
                return true;
            }
            let p = ino.parent;
            if p == c || ino.has(flags::DETACHED) {
                return true;
            }
            if self.created_after(p, l, c) {
                return false;
            }
            c = p;
        }
    }

    fn created_after(&self, dir: Slot, l: u32, c: Slot) -> bool {
        if !self.slab.at(dir).has(flags::DIFFS) {
            return false;
        }
        self.snap.diffs.get(&dir).is_some_and(|ds| {
            ds.iter()
                .rev()
                .take_while(|d| d.tag >= l)
                .any(|d| d.created.contains(&c))
        })
    }

    /// Records the attributes of `x` before a change, if a snapshot sees
    /// `x` and they are not recorded for it yet. Returns the latest
    /// snapshot that sees `x` (0: none), for which its state is now kept.
    pub(crate) fn save_attrs(&mut self, x: Slot) -> u32 {
        let (t, recorded) = self.seen_by(x);
        if t == 0 {
            return 0;
        }
        if recorded {
            let missing = self
                .snap
                .diffs
                .get(&x)
                .and_then(|v| v.last())
                .is_some_and(|d| d.attrs.is_none());
            if missing {
                let a = Box::new(self.capture(x));
                if let Some(d) = self.snap.diffs.get_mut(&x).and_then(|v| v.last_mut()) {
                    d.attrs = Some(a);
                }
            }
            return t;
        }
        let attrs = Some(Box::new(self.capture(x)));
        self.push_diff(
            x,
            Diff {
                tag: t,
                attrs,
                ..Diff::default()
            },
        );
        t
    }

    fn push_diff(&mut self, x: Slot, d: Diff) {
        self.snap.diffs.entry(x).or_default().push(d);
        self.slab.at_mut(x).set(flags::DIFFS, true);
    }

    /// The diff a change to the children of `dir` goes into, if a snapshot
    /// sees `dir`'s children.
    fn dir_diff(&mut self, dir: Slot) -> Option<&mut Diff> {
        let (t, recorded) = self.seen_by(dir);
        if t == 0 {
            return None;
        }
        if !recorded {
            self.push_diff(
                dir,
                Diff {
                    tag: t,
                    ..Diff::default()
                },
            );
        }
        self.snap.diffs.get_mut(&dir)?.last_mut()
    }

    /// `c` became a child of `dir`.
    pub(crate) fn snap_child_added(&mut self, dir: Slot, c: Slot) {
        if !self.snap.active() {
            return;
        }
        if let Some(d) = self.dir_diff(dir) {
            d.created.insert(c);
        }
    }

    /// `c` (named `name`) stopped being a child of `dir`. Returns whether
    /// a snapshot still sees it, so it must be kept.
    pub(crate) fn snap_child_removed(&mut self, dir: Slot, c: Slot, name: &str) -> bool {
        if !self.snap.active() && self.snap.refs.is_empty() {
            return false;
        }
        match self.dir_diff(dir) {
            Some(d) => {
                let was_created = d.created.remove(&c);
                if d.deleted.contains(c) {
                    // Removed, re-added and removed again since the
                    // snapshot: already recorded (under its old name).
                    return true;
                }
                if was_created {
                    // Added after the snapshot: no snapshot of this
                    // directory saw it here.
                    return self.snap.refs.get(&c).is_some_and(|n| *n > 0);
                }
                d.deleted.insert(name, c);
                *self.snap.refs.entry(c).or_default() += 1;
                self.slab.at_mut(c).set(flags::SNAP_REF, true);
                true
            }
            None => {
                // No snapshot sees these children now; older diffs must
                // not name a slot that may be freed and reused.
                if let Some(ds) = self.snap.diffs.get_mut(&dir) {
                    for d in ds.iter_mut() {
                        d.created.remove(&c);
                    }
                }
                self.snap.refs.get(&c).is_some_and(|n| *n > 0)
            }
        }
    }

    /// After `x` moved: snapshot `old`, the latest that saw it at its old
    /// place, keeps seeing it there, so its later changes must still be
    /// recorded for that snapshot wherever it goes.
    pub(crate) fn pin_moved(&mut self, x: Slot, old: u32) {
        if old == 0 {
            return;
        }
        let p = self.snap.pins.entry(x).or_default();
        *p = (*p).max(old);
        self.slab.at_mut(x).set(flags::PINNED, true);
    }
}

impl Namespace {
    /// Whether the latest snapshot over `x` sees it (HDFS's
    /// `isInLatestSnapshot`).
    pub(crate) fn in_latest_snapshot(&self, x: Slot) -> bool {
        self.seen_by(x).0 > 0
    }
}
