//! `snapshotDiff DIR FROM TO`: what was created, deleted, modified and
//! renamed under a snapshot root between two snapshots (or a snapshot and
//! the current state), as HDFS's `SnapshotDiffReport` lists it: each
//! modified directory, followed by its created, deleted and renamed
//! children, and each modified file. Inodes are matched by identity, so a
//! move shows as a rename even across directories. The walk reads both
//! states of the subtree.

use super::View;
use crate::inode::Block;
use crate::ns::Namespace;
use crate::perm::Access;
use crate::slab::Slot;
use rustc_hash::FxHashMap;
use tdfs_proto::perm::{EXECUTE, READ};
use tdfs_proto::snapshot::{DiffEntry, DiffType, SnapshotDiffReport};
use tdfs_proto::FsError;

/// What the walk found of one inode.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Found {
    Modified,
    Created,
    Deleted,
}

/// One raw finding of the walk, before renames are paired up: the inode,
/// the directory it was found in, its path.
struct Raw(Found, Slot, Slot, String);

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

fn same_blocks(a: &[Block], b: &[Block]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.id, x.gen, x.len) == (y.id, y.gen, y.len))
}

/// Whether an inode's metadata or content differs between two states
/// (times aside, as HDFS's `metadataEquals`).
fn differs(x: &View, y: &View) -> bool {
    let meta = (x.owner, x.group, x.mode) != (y.owner, y.group, y.mode)
        || x.acl != y.acl
        || x.xattrs != y.xattrs;
    let content = match (x.file, y.file) {
        (Some(f), Some(g)) => {
            f.replication() != g.replication() || !same_blocks(&f.blocks, &g.blocks)
        }
        _ => false,
    };
    meta || content
}

struct Walk<'n> {
    ns: &'n Namespace,
    a: Option<u32>,
    b: Option<u32>,
    raw: Vec<Raw>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: Slot, parent: Slot, rel: &str) {
        let ns = self.ns;
        let names = |at| -> FxHashMap<Slot, String> {
            ns.children_at(dir, at)
                .into_iter()
                .map(|c| (c, ns.attrs_at(c, at).name.to_string()))
                .collect()
        };
        let (ca, cb) = (names(self.a), names(self.b));
        let mut created: Vec<(&String, Slot)> = Vec::new();
        let mut deleted: Vec<(&String, Slot)> = Vec::new();
        let mut both: Vec<(&String, Slot)> = Vec::new();
        for (c, n) in &cb {
            match ca.get(c) {
                None => created.push((n, *c)),
                Some(m) if m != n => {
                    created.push((n, *c));
                    deleted.push((m, *c));
                }
                Some(_) => both.push((n, *c)),
            }
        }
        deleted.extend(
            ca.iter()
                .filter(|(c, _)| !cb.contains_key(c))
                .map(|(c, n)| (n, *c)),
        );
        for v in [&mut created, &mut deleted, &mut both] {
            v.sort_unstable();
        }
        let attrs = differs(&ns.attrs_at(dir, self.a), &ns.attrs_at(dir, self.b));
        if attrs || !created.is_empty() || !deleted.is_empty() {
            self.raw
                .push(Raw(Found::Modified, dir, parent, rel.to_string()));
        }
        for (n, c) in created {
            self.raw.push(Raw(Found::Created, c, dir, join(rel, n)));
        }
        for (n, c) in deleted {
            self.raw.push(Raw(Found::Deleted, c, dir, join(rel, n)));
        }
        for (n, c) in both {
            self.node(c, dir, &join(rel, n));
        }
    }

    fn node(&mut self, c: Slot, parent: Slot, rel: &str) {
        if self.ns.slab.at(c).is_dir() {
            self.dir(c, parent, rel);
        } else if differs(&self.ns.attrs_at(c, self.a), &self.ns.attrs_at(c, self.b)) {
            self.raw
                .push(Raw(Found::Modified, c, parent, rel.to_string()));
        }
    }
}

impl Namespace {
    pub(crate) fn snapshot_diff_report(
        &self,
        a: &Access,
        p: &str,
        from: &str,
        to: &str,
    ) -> Result<SnapshotDiffReport, FsError> {
        let root = self.resolve(a, p)?;
        let r = self.snap.roots.get(&root).ok_or_else(|| {
            FsError::Snapshot(format!("Directory is not a snapshottable directory: {p}"))
        })?;
        self.check(a, root, READ | EXECUTE, p)?;
        let id = |name: &str| -> Result<Option<u32>, FsError> {
            if name.is_empty() || name == "." {
                return Ok(None);
            }
            r.by_name(name).map(|s| Some(s.id)).ok_or_else(|| {
                FsError::Snapshot(format!(
                    "Cannot find the snapshot of directory {p} with name {name}"
                ))
            })
        };
        let (fa, tb) = (id(from)?, id(to)?);
        let label = |s: &str| {
            if s == "." {
                String::new()
            } else {
                s.to_string()
            }
        };
        let mut report = SnapshotDiffReport {
            root: self.path_of(root),
            from: label(from),
            to: label(to),
            from_earlier: true,
            entries: Vec::new(),
        };
        if fa == tb {
            return Ok(report);
        }
        // Walk from the earlier state to the later (None is the latest).
        let reversed = match (fa, tb) {
            (None, _) => true,
            (Some(x), Some(y)) => x > y,
            _ => false,
        };
        report.from_earlier = !reversed;
        let (ea, lb) = if reversed { (tb, fa) } else { (fa, tb) };
        let mut w = Walk {
            ns: self,
            a: ea,
            b: lb,
            raw: Vec::new(),
        };
        w.dir(root, root, "");
        report.entries = pair_renames(&mut w, reversed);
        Ok(report)
    }
}

/// One entry before it is oriented: kind, inode, directory, path, and a
/// rename's target and its directory.
type Entry = (DiffType, Slot, Slot, String, Option<(String, Slot)>);

/// Turns raw findings into entries: an inode deleted in one place and
/// created in another is a rename (whose content is compared too).
fn pair_renames(w: &mut Walk, reversed: bool) -> Vec<DiffEntry> {
    let found = |w: &Walk, kind: Found| -> FxHashMap<Slot, (String, Slot)> {
        w.raw
            .iter()
            .filter(|r| r.0 == kind)
            .map(|r| (r.1, (r.3.clone(), r.2)))
            .collect()
    };
    let (created, deleted) = (found(w, Found::Created), found(w, Found::Deleted));
    let mut out: Vec<Entry> = Vec::new();
    let mut moved = Vec::new();
    for Raw(kind, c, dir, p) in std::mem::take(&mut w.raw) {
        let e = match kind {
            Found::Modified => (DiffType::Modify, c, dir, p, None),
            Found::Created if deleted.contains_key(&c) => continue,
            Found::Created => (DiffType::Create, c, dir, p, None),
            Found::Deleted => match created.get(&c) {
                Some(t) => {
                    moved.push((c, t.clone()));
                    (DiffType::Rename, c, dir, p, Some(t.clone()))
                }
                None => (DiffType::Delete, c, dir, p, None),
            },
        };
        out.push(e);
    }
    // What changed inside a moved inode shows under its new path.
    for (c, (t, dir)) in moved {
        w.node(c, dir, &t);
    }
    for Raw(kind, c, dir, p) in std::mem::take(&mut w.raw) {
        let kind = match kind {
            Found::Modified => DiffType::Modify,
            Found::Created => DiffType::Create,
            Found::Deleted => DiffType::Delete,
        };
        out.push((kind, c, dir, p, None));
    }
    let ns = w.ns;
    out.into_iter()
        .map(|(kind, c, dir, source, target)| {
            let id = |s: Slot| ns.slab.id_of(s);
            let (kind, source, parent, target) = if reversed {
                let kind = match kind {
                    DiffType::Create => DiffType::Delete,
                    DiffType::Delete => DiffType::Create,
                    k => k,
                };
                match target {
                    Some((t, to)) => (kind, t, to, Some((source, dir))),
                    None => (kind, source, dir, None),
                }
            } else {
                (kind, source, dir, target)
            };
            DiffEntry {
                kind,
                source,
                id: id(c),
                dir: ns.slab.at(c).is_dir(),
                parent: id(parent),
                target_parent: target.as_ref().map(|t| id(t.1)),
                target: target.map(|t| t.0),
            }
        })
        .collect()
}
