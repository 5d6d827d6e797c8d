//! A seeded randomized test: random creates, appends, truncates (with the
//! recovery committed), deletes, renames, mode changes and snapshot
//! creations and deletions, checked after every step against a model that
//! keeps a full copy of the tree per snapshot; at the end every block must
//! have left exactly once, after the last state holding it went.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};

/// A file as its lengths of blocks, with its mode; or a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
enum M {
    Dir,
    File { blocks: Vec<u64>, mode: u16 },
}

type Tree = BTreeMap<String, M>;

/// The tree the namespace shows under `base` (paths relative to it).
fn read_tree(ns: &Namespace, base: &str) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let full = if rel.is_empty() {
            base.to_string()
        } else {
            format!("{base}/{rel}")
        };
        let l = ns.list(ROOT_USER, &full, None, 10_000).unwrap();
        for e in l.entries {
            let r = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            if e.is_dir() {
                stack.push(r.clone());
                out.insert(r, M::Dir);
            } else {
                let p = format!("{base}/{r}");
                let lb = ns.locate(ROOT_USER, &p, 0, u64::MAX).unwrap();
                let blocks = lb.blocks.iter().map(|b| b.block.len).collect();
                out.insert(
                    r,
                    M::File {
                        blocks,
                        mode: e.mode,
                    },
                );
            }
        }
    }
    out
}

fn pick<'a>(rng: &mut StdRng, keys: &'a [String]) -> Option<&'a String> {
    (!keys.is_empty()).then(|| &keys[rng.gen_range(0..keys.len())])
}

struct Run {
    t: T,
    rng: StdRng,
    /// The current trees under /r (keys `r/...`, snapshottable) and /o
    /// (keys `o/...`), so that inodes move in and out of snapshots.
    cur: Tree,
    /// Each live snapshot's copy of /r (keys relative to it).
    snaps: BTreeMap<String, Tree>,
    next: u32,
}

impl Run {
    fn dirs(&self) -> Vec<String> {
        let mut v = vec!["r".to_string(), "o".to_string()];
        v.extend(
            self.cur
                .iter()
                .filter(|(_, m)| **m == M::Dir)
                .map(|(k, _)| k.clone()),
        );
        v
    }

    fn files(&self) -> Vec<String> {
        self.cur
            .iter()
            .filter(|(_, m)| **m != M::Dir)
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn abs(rel: &str) -> String {
        format!("/{rel}")
    }

    fn fresh(&mut self, dir: &str) -> String {
        self.next += 1;
        format!("{dir}/n{}", self.next)
    }

    /// The model of one of the two trees, keys relative to it.
    fn part(&self, root: &str) -> Tree {
        let prefix = format!("{root}/");
        self.cur
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_string(), v.clone())))
            .collect()
    }

    fn blocks(&mut self, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| self.rng.gen_range(1..=(1u64 << 20)))
            .collect()
    }

    fn step(&mut self) {
        let before = self.cur.clone();
        let snaps: Vec<String> = self.snaps.keys().cloned().collect();
        self.step_inner();
        if std::env::var_os("TDFS_SNAPSHOT_TRACE").is_some() {
            let added: Vec<&String> = self
                .cur
                .keys()
                .filter(|k| !before.contains_key(*k))
                .collect();
            let gone: Vec<&String> = before
                .keys()
                .filter(|k| !self.cur.contains_key(*k))
                .collect();
            let new_snaps: Vec<&String> =
                self.snaps.keys().filter(|k| !snaps.contains(k)).collect();
            println!(
                "step: +{added:?} -{gone:?} snaps+{new_snaps:?} live {:?}",
                self.snaps.keys().collect::<Vec<_>>()
            );
        }
    }

    fn step_inner(&mut self) {
        let op = self.rng.gen_range(0..100);
        match op {
            0..=19 => {
                let d = {
                    let d = self.dirs();
                    pick(&mut self.rng, &d).cloned()
                }
                .as_ref()
                .cloned()
                .unwrap_or_else(|| "r".to_string());
                let rel = self.fresh(&d);
                let n = self.rng.gen_range(0..3);
                let blocks = self.blocks(n);
                self.t
                    .file_of(ROOT_USER, &Self::abs(&rel), &blocks)
                    .unwrap();
                self.cur.insert(
                    rel,
                    M::File {
                        blocks,
                        mode: 0o644,
                    },
                );
            }
            20..=29 => {
                let d = {
                    let d = self.dirs();
                    pick(&mut self.rng, &d).cloned()
                }
                .as_ref()
                .cloned()
                .unwrap_or_else(|| "r".to_string());
                let rel = self.fresh(&d);
                self.t.mkdir(&Self::abs(&rel));
                self.cur.insert(rel, M::Dir);
            }
            30..=41 => self.delete(),
            42..=55 => self.rename(),
            56..=65 => {
                let Some(f) = {
                    let f = self.files();
                    pick(&mut self.rng, &f).cloned()
                }
                .as_ref()
                .cloned() else {
                    return;
                };
                let more = self.blocks(1);
                self.t.append(ROOT_USER, &Self::abs(&f), &more).unwrap();
                if let Some(M::File { blocks, .. }) = self.cur.get_mut(&f) {
                    blocks.extend(more);
                }
            }
            66..=75 => self.truncate(),
            76..=81 => {
                let Some(f) = {
                    let f = self.files();
                    pick(&mut self.rng, &f).cloned()
                }
                .as_ref()
                .cloned() else {
                    return;
                };
                let mode = self.rng.gen_range(0o400..0o777u16);
                self.t
                    .root(LogOp::SetPermission {
                        path: Self::abs(&f),
                        mode,
                    })
                    .unwrap();
                if let Some(M::File { mode: m, .. }) = self.cur.get_mut(&f) {
                    *m = mode;
                }
            }
            82..=91 => {
                self.next += 1;
                let name = format!("s{}", self.next);
                self.t
                    .root(LogOp::CreateSnapshot {
                        path: "/r".into(),
                        name: Some(name.clone()),
                    })
                    .unwrap();
                let copy = self.part("r");
                self.snaps.insert(name, copy);
            }
            _ => {
                let names: Vec<String> = self.snaps.keys().cloned().collect();
                let Some(n) = pick(&mut self.rng, &names).cloned() else {
                    return;
                };
                self.t
                    .root(LogOp::DeleteSnapshot {
                        path: "/r".into(),
                        name: n.clone(),
                    })
                    .unwrap();
                self.snaps.remove(&n);
            }
        }
    }

    fn delete(&mut self) {
        let keys: Vec<String> = self.cur.keys().cloned().collect();
        let Some(p) = pick(&mut self.rng, &keys).cloned() else {
            return;
        };
        self.t
            .root(LogOp::Delete {
                path: Self::abs(&p),
                recursive: true,
            })
            .unwrap();
        let prefix = format!("{p}/");
        self.cur.retain(|k, _| *k != p && !k.starts_with(&prefix));
    }

    fn rename(&mut self) {
        let keys: Vec<String> = self.cur.keys().cloned().collect();
        let Some(src) = pick(&mut self.rng, &keys).cloned() else {
            return;
        };
        let prefix = format!("{src}/");
        let dirs: Vec<String> = self
            .dirs()
            .into_iter()
            .filter(|d| *d != src && !d.starts_with(&prefix))
            .collect();
        let d = pick(&mut self.rng, &dirs)
            .cloned()
            .unwrap_or_else(|| "r".to_string());
        let dst = self.fresh(&d);
        self.t
            .root(LogOp::Rename {
                src: Self::abs(&src),
                dst: Self::abs(&dst),
                into_dir: false,
            })
            .unwrap();
        let moved: Vec<(String, M)> = self
            .cur
            .iter()
            .filter(|(k, _)| **k == src || k.starts_with(&prefix))
            .map(|(k, v)| (format!("{dst}{}", &k[src.len()..]), v.clone()))
            .collect();
        self.cur.retain(|k, _| *k != src && !k.starts_with(&prefix));
        self.cur.extend(moved);
    }

    /// Truncates a file, committing the recovery of a cut block as the
    /// leader would once a datanode stored it.
    fn truncate(&mut self) {
        let Some(f) = {
            let f = self.files();
            pick(&mut self.rng, &f).cloned()
        }
        .as_ref()
        .cloned() else {
            return;
        };
        let Some(M::File { blocks, .. }) = self.cur.get(&f).cloned() else {
            return;
        };
        let total: u64 = blocks.iter().sum();
        let len = self.rng.gen_range(0..=total);
        let out = self
            .t
            .root(LogOp::Truncate {
                path: Self::abs(&f),
                length: len,
            })
            .unwrap();
        if out == Outcome::Bool(false) {
            let p = self
                .t
                .ns
                .pending_truncates()
                .pop()
                .expect("a pending truncate");
            let tr = p.truncation;
            let block = BlockInfo {
                id: tr.target,
                gen: tr.gen,
                len: tr.len,
                sha256: Some([9; 32]),
            };
            let r = self
                .t
                .sys(LogOp::CommitTruncate {
                    file: p.file,
                    block,
                })
                .unwrap();
            assert_eq!(r, Outcome::Bool(true));
        }
        let mut kept = Vec::new();
        let mut left = len;
        for b in blocks {
            if left == 0 {
                break;
            }
            kept.push(b.min(left));
            left -= b.min(left);
        }
        if let Some(M::File { blocks, .. }) = self.cur.get_mut(&f) {
            *blocks = kept;
        }
    }

    fn check(&self, step: usize, seed: u64) {
        for root in ["r", "o"] {
            let got = read_tree(&self.t.ns, &format!("/{root}"));
            assert_eq!(
                got,
                self.part(root),
                "current /{root}, step {step}, seed {seed}"
            );
        }
        for (name, tree) in &self.snaps {
            let got = read_tree(&self.t.ns, &format!("/r/.snapshot/{name}"));
            assert_eq!(&got, tree, "snapshot {name}, step {step}, seed {seed}");
        }
    }
}

#[test]
fn random_histories_read_back_at_every_snapshot() {
    let seed = tdfs_testkit::data::seed("TDFS_SNAPSHOT_SEED", "snapshot model");
    let mut t = T::new();
    t.mkdir("/r");
    t.mkdir("/o");
    t.root(LogOp::AllowSnapshot { path: "/r".into() }).unwrap();
    let mut run = Run {
        t,
        rng: StdRng::seed_from_u64(seed),
        cur: Tree::new(),
        snaps: BTreeMap::new(),
        next: 0,
    };
    for step in 0..500 {
        run.step();
        run.check(step, seed);
    }
    // Everything goes: every block leaves once, nothing is left behind.
    let names: Vec<String> = run.snaps.keys().cloned().collect();
    for n in names {
        run.t
            .root(LogOp::DeleteSnapshot {
                path: "/r".into(),
                name: n,
            })
            .unwrap();
    }
    run.t
        .root(LogOp::Delete {
            path: "/r".into(),
            recursive: true,
        })
        .unwrap();
    run.t
        .root(LogOp::Delete {
            path: "/o".into(),
            recursive: true,
        })
        .unwrap();
    run.t.reclaim_all();
    let mut allocated = BTreeSet::new();
    let mut removed = Vec::new();
    for e in &run.t.events {
        match e {
            NsEvent::BlockOpen { id, .. } => {
                allocated.insert(*id);
            }
            NsEvent::BlockRemoved { id } => removed.push(*id),
            _ => {}
        }
    }
    let unique: BTreeSet<u64> = removed.iter().copied().collect();
    assert_eq!(
        unique.len(),
        removed.len(),
        "a block removed twice (seed {seed})"
    );
    assert_eq!(
        unique, allocated,
        "blocks leaked or removed without being allocated (seed {seed})"
    );
    assert_eq!(
        run.t.ns.inode_count(),
        1,
        "only the root is left (seed {seed})"
    );
    assert!(run.t.ns.snap.diffs.is_empty() && run.t.ns.snap.refs.is_empty());
    assert!(run.t.ns.block_index.is_empty());
}
