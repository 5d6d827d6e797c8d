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

/// One raw finding of the walk, before renames are paired up.
enum Raw {
    Modified(String),
    Created(Slot, String),
    Deleted(Slot, String),
}

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
    fn dir(&mut self, dir: Slot, rel: &str) {
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
            self.raw.push(Raw::Modified(rel.to_string()));
        }
        for (n, c) in created {
            self.raw.push(Raw::Created(c, join(rel, n)));
        }
        for (n, c) in deleted {
            self.raw.push(Raw::Deleted(c, join(rel, n)));
        }
        for (n, c) in both {
            self.node(c, &join(rel, n));
        }
    }

    fn node(&mut self, c: Slot, rel: &str) {
        if self.ns.slab.at(c).is_dir() {
            self.dir(c, rel);
        } else if differs(&self.ns.attrs_at(c, self.a), &self.ns.attrs_at(c, self.b)) {
            self.raw.push(Raw::Modified(rel.to_string()));
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
        let (ea, lb) = if reversed { (tb, fa) } else { (fa, tb) };
        let mut w = Walk {
            ns: self,
            a: ea,
            b: lb,
            raw: Vec::new(),
        };
        w.dir(root, "");
        report.entries = pair_renames(&mut w, reversed);
        Ok(report)
    }
}

/// Turns raw findings into entries: an inode deleted in one place and
/// created in another is a rename (whose content is compared too).
fn pair_renames(w: &mut Walk, reversed: bool) -> Vec<DiffEntry> {
    let created: FxHashMap<Slot, String> = w
        .raw
        .iter()
        .filter_map(|r| match r {
            Raw::Created(c, p) => Some((*c, p.clone())),
            _ => None,
        })
        .collect();
    let deleted: FxHashMap<Slot, String> = w
        .raw
        .iter()
        .filter_map(|r| match r {
            Raw::Deleted(c, p) => Some((*c, p.clone())),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    let mut moved = Vec::new();
    for r in std::mem::take(&mut w.raw) {
        let e = match r {
            Raw::Modified(p) => (DiffType::Modify, p, None),
            Raw::Created(c, _) if deleted.contains_key(&c) => continue,
            Raw::Created(_, p) => (DiffType::Create, p, None),
            Raw::Deleted(c, p) => match created.get(&c) {
                Some(t) => {
                    moved.push((c, t.clone()));
                    (DiffType::Rename, p, Some(t.clone()))
                }
                None => (DiffType::Delete, p, None),
            },
        };
        out.push(e);
    }
    // What changed inside a moved inode shows under its new path.
    for (c, t) in moved {
        w.node(c, &t);
    }
    for r in std::mem::take(&mut w.raw) {
        match r {
            Raw::Modified(p) => out.push((DiffType::Modify, p, None)),
            Raw::Created(_, p) => out.push((DiffType::Create, p, None)),
            Raw::Deleted(_, p) => out.push((DiffType::Delete, p, None)),
        }
    }
    out.into_iter()
        .map(|(kind, source, target)| {
            let (kind, source, target) = if reversed {
                match kind {
                    DiffType::Create => (DiffType::Delete, source, target),
                    DiffType::Delete => (DiffType::Create, source, target),
                    DiffType::Rename => {
                        (kind, target.expect("a rename has a target"), Some(source))
                    }
                    DiffType::Modify => (kind, source, target),
                }
            } else {
                (kind, source, target)
            };
            DiffEntry {
                kind,
                source,
                target,
            }
        })
        .collect()
}
