//! Reading a snapshot: resolving `DIR/.snapshot/NAME/...`, looking up and
//! listing a directory's children as a snapshot saw them, and summing a
//! subtree at a snapshot.

use crate::inode::{flags, Usage};
use crate::ns::Namespace;
use crate::perm::{denied, permits, Access};
use crate::slab::Slot;
use rustc_hash::FxHashSet;
use tdfs_proto::perm::EXECUTE;
use tdfs_proto::snapshot::DOT_SNAPSHOT;
use tdfs_proto::{path, FsError};

/// What a read path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// An inode, now (`at: None`) or in snapshot `at`.
    At { slot: Slot, at: Option<u32> },
    /// `DIR/.snapshot`: the list of `root`'s snapshots.
    SnapshotDir { root: Slot },
}

impl Namespace {
    /// Resolves a read path, snapshot paths included, checking EXECUTE on
    /// every directory on the way (as the snapshot saw it).
    pub(crate) fn resolve_node(&self, a: &Access, p: &str) -> Result<Node, FsError> {
        let comps = path::components(p)?;
        let mut cur = self.root_slot();
        let mut at = None;
        let mut i = 0;
        while i < comps.len() {
            if !self.slab.at(cur).is_dir() {
                return Err(FsError::NotADirectory(path::join(&comps[..i])));
            }
            let v = self.attrs_at(cur, at);
            if !permits(a, v.perms(), EXECUTE) {
                return Err(denied(a, "EXECUTE", &path::join(&comps[..i])));
            }
            if comps[i] == DOT_SNAPSHOT && at.is_none() {
                let root = self
                    .snap
                    .roots
                    .get(&cur)
                    .filter(|_| self.slab.at(cur).has(flags::SNAPSHOTTABLE))
                    .ok_or_else(|| FsError::FileNotFound(p.to_string()))?;
                let Some(name) = comps.get(i + 1) else {
                    return Ok(Node::SnapshotDir { root: cur });
                };
                let s = root
                    .by_name(name)
                    .ok_or_else(|| FsError::FileNotFound(p.to_string()))?;
                at = Some(s.id);
                i += 2;
                continue;
            }
            cur = self
                .child_at(cur, comps[i], at)
                .ok_or_else(|| FsError::FileNotFound(p.to_string()))?;
            i += 1;
        }
        Ok(Node::At { slot: cur, at })
    }

    /// The diffs of `dir` a read at snapshot `s` undoes (tag >= s).
    fn diffs_from(&self, dir: Slot, s: u32) -> &[super::Diff] {
        if !self.slab.at(dir).has(flags::DIFFS) {
            return &[];
        }
        let v = self.snap.diffs.get(&dir).map_or(&[][..], |v| &v[..]);
        &v[v.partition_point(|d| d.tag < s)..]
    }

    /// Whether `c` is a current child of `dir`.
    fn is_child(&self, dir: Slot, c: Slot) -> bool {
        self.slab
            .get(c)
            .is_some_and(|i| i.parent == dir && !i.has(flags::DETACHED))
    }

    /// Whether `c` was a child of `dir` at snapshot `s`.
    fn present_at(&self, dir: Slot, c: Slot, s: u32) -> bool {
        let mut present = self.is_child(dir, c);
        for d in self.diffs_from(dir, s).iter().rev() {
            if d.deleted.contains(c) {
                present = true;
            } else if d.created.contains(&c) {
                present = false;
            }
        }
        present
    }

    /// The child `name` of `dir`, now or at snapshot `at`.
    pub(crate) fn child_at(&self, dir: Slot, name: &str, at: Option<u32>) -> Option<Slot> {
        let cur = self.child_of(dir, name);
        let Some(s) = at else { return cur };
        let diffs = self.diffs_from(dir, s);
        let changed = |c: Slot| {
            diffs
                .iter()
                .any(|d| d.created.contains(&c) || d.deleted.contains(c))
        };
        if let Some(c) = cur.filter(|c| !changed(*c)) {
            return Some(c);
        }
        diffs
            .iter()
            .flat_map(|d| d.deleted.named(name))
            .find(|c| self.present_at(dir, *c, s) && self.attrs_at(*c, at).name == name)
    }

    /// Children of `dir` at snapshot `s` (sorted by their names then)
    /// after `start_after`, at most `limit`, and how many remain.
    pub(crate) fn list_at(
        &self,
        dir: Slot,
        s: u32,
        start_after: Option<&str>,
        limit: usize,
    ) -> (Vec<Slot>, u64) {
        let d = self.slab.at(dir).dir().expect("a directory");
        let name_of = |c: Slot| self.slab.at(c).name.as_str();
        let diffs = self.diffs_from(dir, s);
        if diffs.is_empty() {
            let page: Vec<Slot> = d
                .children
                .iter_after(start_after, name_of)
                .take(limit)
                .collect();
            let after = d.children.count_after(start_after, name_of);
            return (page.clone(), (after - page.len()) as u64);
        }
        let mut changed = FxHashSet::default();
        for df in diffs {
            changed.extend(df.created.iter().copied());
            changed.extend(df.deleted.by_slot.iter().copied());
        }
        let after = |n: &str| start_after.is_none_or(|a| n > a);
        let mut extra: Vec<(&str, Slot)> = changed
            .iter()
            .filter(|c| self.present_at(dir, **c, s))
            .map(|c| (self.attrs_at(*c, Some(s)).name, *c))
            .filter(|(n, _)| after(n))
            .collect();
        extra.sort_unstable();
        let hidden = changed
            .iter()
            .filter(|c| self.is_child(dir, **c) && after(name_of(**c)))
            .count();
        let total = d.children.count_after(start_after, name_of) - hidden + extra.len();
        let mut a = d
            .children
            .iter_after(start_after, name_of)
            .filter(|c| !changed.contains(c))
            .peekable();
        let mut b = extra.into_iter().peekable();
        let mut page = Vec::with_capacity(limit.min(total));
        while page.len() < limit {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some((n, _))) => name_of(*x) <= *n,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a {
                a.next()
            } else {
                b.next().map(|(_, c)| c)
            };
            page.extend(next);
        }
        let remaining = (total - page.len()) as u64;
        (page, remaining)
    }

    /// Every child of `dir` at `at` (now: the current children).
    pub(crate) fn children_at(&self, dir: Slot, at: Option<u32>) -> Vec<Slot> {
        match at {
            None => self
                .slab
                .at(dir)
                .dir()
                .map_or_else(Vec::new, |d| d.children.iter().collect()),
            Some(s) => self.list_at(dir, s, None, usize::MAX).0,
        }
    }

    /// Entries of the directory `dir` at `at`.
    pub(crate) fn child_count_at(&self, dir: Slot, at: Option<u32>) -> u64 {
        match at {
            None => self
                .slab
                .at(dir)
                .dir()
                .map_or(0, |d| d.children.len() as u64),
            Some(s) => {
                let (_, n) = self.list_at(dir, s, None, 0);
                n
            }
        }
    }

    /// The usage of the subtree at `slot` as snapshot `s` saw it (walks it).
    pub(crate) fn usage_at(&self, slot: Slot, s: u32) -> Usage {
        let mut u = Usage::default();
        let mut stack = vec![slot];
        while let Some(c) = stack.pop() {
            if self.slab.at(c).is_dir() {
                u.dirs += 1;
                stack.extend(self.children_at(c, Some(s)));
            } else if let Some(f) = self.attrs_at(c, Some(s)).file {
                u.files += 1;
                u.bytes += f.len();
                u.space += f.len() * f.replication() as u64;
            }
        }
        u
    }
}
