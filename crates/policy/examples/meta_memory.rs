//! Memory per file of what a leader holds for each file: the namespace and
//! the policy's block map, fed the way the state machine feeds them (every
//! `NsEvent` of every apply goes to `ClusterState::ns_event`). Figures for
//! docs/benchmarks.md, "Memory per file".
//!
//! `cargo run --release -p tdfs-policy --example meta_memory -- empty|block N`
//!
//! Creates N files (`empty`: create + complete; `block`: create, one block
//! of 1 MiB on three registered datanodes, committed with its digest,
//! complete, and the three replicas reported as datanodes report them) in
//! directories of 1,000, with a policy tick at every measurement, and prints the growth of live heap bytes (a counting allocator) and of
//! the process's resident memory (`VmRSS`) per file, every tenth of the way.
//! One kind per process, so the resident figure is not blurred by what an
//! earlier run freed.

use std::time::Instant;
use tdfs_namespace::{AdminState, LogOp, Namespace, Stamp};
use tdfs_policy::{ClusterState, LivenessConfig, PolicyConfig};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{BlockInfo, DatanodeUsage, ReplicaReport};
use tdfs_proto::DatanodeId;

#[global_allocator]
static A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;

fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// The leader's two structures, applied to as the state machine does.
struct Leader {
    ns: Namespace,
    view: ClusterState,
    now: u64,
    seq: u64,
    events: Vec<tdfs_namespace::NsEvent>,
}

impl Leader {
    fn new() -> Leader {
        let mut l = Leader {
            ns: Namespace::new(),
            view: ClusterState::new(PolicyConfig::new(LivenessConfig {
                stale_after: std::time::Duration::from_secs(3),
                dead_after: std::time::Duration::from_secs(30),
                gossip: true,
            })),
            now: 1_700_000_000_000,
            seq: 0,
            events: Vec::new(),
        };
        l.apply(LogOp::Init {
            superuser: "root".into(),
            supergroup: "supergroup".into(),
        });
        let now = Instant::now();
        for d in datanodes() {
            l.view.register(&d, &format!("{}:1", d.0), None, None, now);
            l.view.set_registered(&d, AdminState::Normal, now);
            l.view.usage(
                &d,
                DatanodeUsage {
                    capacity: 1 << 50,
                    used: 0,
                    pending: 0,
                    blocks: 0,
                },
            );
        }
        l
    }

    /// A policy tick, as every node runs every 500 ms (datanodes heard).
    fn tick(&mut self) {
        let now = Instant::now();
        for d in datanodes() {
            self.view.contact(&d, now);
        }
        self.view.tick(now);
    }

    /// Applies with a fresh call id of one client (as `tdfs bench meta`
    /// does), through the retry cache (bounded, so it counts once, not per
    /// file).
    fn apply(&mut self, op: LogOp) -> tdfs_namespace::Outcome {
        self.now += 1;
        self.seq += 1;
        let stamp = Stamp {
            user: "root".into(),
            call: Some(CallId {
                client: 1,
                seq: self.seq,
            }),
            now: self.now,
            tick: self.now,
        };
        let r = self.ns.apply(&stamp, &op, &mut self.events);
        let now = Instant::now();
        for ev in self.events.drain(..) {
            self.view.ns_event(&ev, now);
        }
        match r {
            Ok(o) => o,
            Err(e) => panic!("{} failed: {e}", op.name()),
        }
    }

    fn file(&mut self, path: String, with_block: bool) {
        self.apply(LogOp::Create {
            path: path.clone(),
            overwrite: false,
            replication: 3,
            block_size: 128 << 20,
            mode: 0o644,
            create_parents: false,
        });
        let last = if with_block {
            let out = self.apply(LogOp::AddBlock {
                path: path.clone(),
                previous: None,
                targets: datanodes().to_vec(),
            });
            let tdfs_namespace::Outcome::Block { block, .. } = out else {
                panic!("add_block answered {out:?}");
            };
            Some(BlockInfo {
                id: block.id,
                gen: block.gen,
                len: 1 << 20,
                sha256: Some([7; 32]),
            })
        } else {
            None
        };
        self.apply(LogOp::Complete {
            path,
            last: last.clone(),
        });
        if let Some(b) = last {
            let r = ReplicaReport {
                id: b.id,
                gen: b.gen,
                len: b.len,
                sha256: [7; 32],
            };
            for d in datanodes() {
                assert!(self.view.incremental(
                    &d,
                    std::slice::from_ref(&r),
                    &[],
                    &[],
                    Instant::now()
                ));
            }
        }
    }
}

fn datanodes() -> [DatanodeId; 3] {
    ["dn1", "dn2", "dn3"].map(|n| DatanodeId(n.into()))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "empty".into());
    let with_block = match kind.as_str() {
        "empty" => false,
        "block" => true,
        other => panic!("kind must be empty or block, not {other}"),
    };
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut l = Leader::new();
    let (heap0, rss0, t0) = (tdfs_testkit::alloc::live(), rss(), Instant::now());
    let step = (n / 10).max(1);
    for i in 0..n {
        if i % 1000 == 0 {
            l.apply(LogOp::Mkdirs {
                path: format!("/bench/d{}", i / 1000),
                mode: 0o755,
                parents: true,
            });
        }
        l.file(format!("/bench/d{}/f{i}", i / 1000), with_block);
        if (i + 1) % step == 0 {
            l.tick();
            let files = (i + 1) as f64;
            let heap = tdfs_testkit::alloc::live().saturating_sub(heap0) as f64;
            let res = rss().saturating_sub(rss0) as f64;
            println!(
                "{kind} files {:>10}: heap {:6.1} B/file, resident {:6.1} B/file \
                 (resident {:.0} MiB), {:.0} files/s",
                i + 1,
                heap / files,
                res / files,
                rss() as f64 / (1 << 20) as f64,
                files / t0.elapsed().as_secs_f64()
            );
        }
    }
    // Keep both alive until the last measurement.
    assert!(l.ns.is_initialized());
    drop(l.view);
}
