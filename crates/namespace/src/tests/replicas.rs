//! Replicas that apply the same log agree, whatever their history: one
//! member applies every operation from the start, the other restarts now
//! and then from a snapshot of its own state (as a restarted or lagging
//! member does). Every operation must give both the same outcome, and at
//! the end both must write the same snapshot bytes; after every operation
//! the first member's snapshot stream must load (a Raft snapshot may be
//! taken at any index). The operations, directory snapshots of `/a` and
//! budgeted reclaim steps among them, are drawn at random (seeded, the
//! seed printed; `TDFS_TEST_TRACE=1` prints each with its outcome) and the
//! ones that name an inode by id (a truncate's commit) take the id from
//! the first member.

use super::{ROOT_USER, T};
use crate::op::{LogOp, Outcome};
use crate::Namespace;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::DatanodeId;

const DIRS: [&str; 4] = ["/a", "/a/b", "/c", "/a/b/d"];
const NAMES: [&str; 3] = ["f0", "f1", "d"];

fn path(rng: &mut StdRng) -> String {
    format!(
        "{}/{}",
        DIRS[rng.gen_range(0..DIRS.len())],
        NAMES[rng.gen_range(0..NAMES.len())]
    )
}

/// Both members.
struct Pair {
    live: T,
    restarted: T,
}

impl Pair {
    /// Applies `op` to both (as root, client `HOLDER`) and checks the outcomes agree.
    fn both(&mut self, op: LogOp) -> Result<Outcome, tdfs_proto::FsError> {
        if std::env::var("TDFS_TEST_TRACE").is_ok() {
            println!("op {op:?}");
        }
        let a = self.live.root(op.clone());
        let b = self.restarted.root(op.clone());
        assert_eq!(a, b, "the members answered {op:?} differently");
        if std::env::var("TDFS_TEST_TRACE").is_ok() {
            println!("  -> {a:?}");
        }
        self.check_loads();
        a
    }

    /// The same as a system operation (no call id).
    fn both_sys(&mut self, op: LogOp) {
        let a = self.live.sys(op.clone());
        let b = self.restarted.sys(op.clone());
        if std::env::var("TDFS_TEST_TRACE").is_ok() {
            println!("sys {op:?} -> {a:?}");
        }
        assert_eq!(a, b, "the members answered {op:?} differently");
        self.check_loads();
    }

    /// Writes `blocks` blocks into the file open at `p` and closes it.
    fn write(&mut self, p: &str, blocks: usize, rng: &mut StdRng) {
        let mut prev: Option<BlockInfo> = None;
        for _ in 0..blocks {
            let Ok(Outcome::Block { block, .. }) = self.both(LogOp::AddBlock {
                path: p.into(),
                previous: prev.clone(),
                targets: vec![DatanodeId("dn1".into())],
            }) else {
                return;
            };
            prev = Some(BlockInfo {
                len: rng.gen_range(1..=1 << 20),
                sha256: Some([rng.gen(); 32]),
                ..block
            });
        }
        let _ = self.both(LogOp::Complete {
            path: p.into(),
            last: prev,
        });
    }

    /// A Raft snapshot may be taken at any index: the live member's state
    /// must load after every operation.
    fn check_loads(&self) {
        let mut bytes = Vec::new();
        self.live.ns.freeze().write(&mut bytes).unwrap();
        if let Err(e) = Namespace::read_snapshot(&mut bytes.as_slice()) {
            panic!("the live member's snapshot does not load: {e}");
        }
    }

    /// The restarted member loads a snapshot of its own state.
    fn restart(&mut self) {
        if std::env::var("TDFS_TEST_TRACE").is_ok() {
            println!("restart");
        }
        let mut bytes = Vec::new();
        self.restarted.ns.freeze().write(&mut bytes).unwrap();
        self.restarted.ns = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    }

    fn step(&mut self, rng: &mut StdRng) {
        let p = path(rng);
        match rng.gen_range(0..100) {
            0..=14 => {
                let _ = self.both(LogOp::Mkdirs {
                    path: p,
                    mode: 0o755,
                    parents: rng.gen_bool(0.5),
                });
            }
            15..=39 => {
                let created = self.both(LogOp::Create {
                    path: p.clone(),
                    overwrite: rng.gen_bool(0.5),
                    replication: 3,
                    block_size: 1 << 20,
                    mode: 0o644,
                    create_parents: rng.gen_bool(0.5),
                });
                if created.is_ok() {
                    let n = rng.gen_range(0..4);
                    self.write(&p, n, rng);
                }
            }
            40..=54 => {
                let _ = self.both(LogOp::Delete {
                    path: p,
                    recursive: rng.gen_bool(0.7),
                });
            }
            55..=67 => {
                let dst = path(rng);
                let _ = self.both(LogOp::Rename {
                    src: p,
                    dst,
                    into_dir: rng.gen_bool(0.5),
                });
            }
            68..=75 => {
                if self.both(LogOp::Append { path: p.clone() }).is_ok() {
                    let n = rng.gen_range(0..3);
                    self.write(&p, n, rng);
                }
            }
            76..=85 => {
                let len = self.live.ns.stat(ROOT_USER, &p).map(|s| s.length);
                if let Ok(len) = len {
                    let to = rng.gen_range(0..=len);
                    let _ = self.both(LogOp::Truncate {
                        path: p,
                        length: to,
                    });
                }
                self.commit_truncates(rng);
            }
            86..=89 => {
                let _ = self.both(LogOp::AllowSnapshot { path: "/a".into() });
                let _ = self.both(LogOp::CreateSnapshot {
                    path: "/a".into(),
                    name: Some(format!("s{}", rng.gen_range(0..3))),
                });
            }
            90..=92 => {
                let _ = self.both(LogOp::DeleteSnapshot {
                    path: "/a".into(),
                    name: format!("s{}", rng.gen_range(0..3)),
                });
            }
            93..=95 => self.both_sys(LogOp::Reclaim {
                budget: rng.gen_range(1..50),
            }),
            _ => self.restart(),
        }
    }

    /// Commits some of the truncations in progress, naming the file by the
    /// id the live member gives it (as the leader's recovery does).
    fn commit_truncates(&mut self, rng: &mut StdRng) {
        for t in self.live.ns.pending_truncates() {
            if rng.gen_bool(0.5) {
                continue;
            }
            let block = BlockInfo {
                id: t.truncation.target,
                gen: t.truncation.gen,
                len: t.truncation.len,
                sha256: Some([7; 32]),
            };
            self.both_sys(LogOp::CommitTruncate {
                file: t.file,
                block,
            });
        }
    }
}

#[test]
fn replicas_with_and_without_restarts_stay_identical() {
    let base: u64 = std::env::var("TDFS_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    for round in 0..20u64 {
        let seed = base.wrapping_add(round);
        println!("replica equivalence: seed {seed} (replay with TDFS_TEST_SEED={seed})");
        let mut rng = StdRng::seed_from_u64(seed);
        let mut pair = Pair {
            live: T::new(),
            restarted: T::new(),
        };
        for d in DIRS {
            pair.both(LogOp::Mkdirs {
                path: d.into(),
                mode: 0o755,
                parents: true,
            })
            .unwrap();
        }
        for _ in 0..400 {
            pair.step(&mut rng);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        pair.live.ns.freeze().write(&mut a).unwrap();
        pair.restarted.ns.freeze().write(&mut b).unwrap();
        assert!(
            a == b,
            "seed {seed}: the members' states differ after the same log"
        );
    }
}
