//! Figures for the namespace features (docs/benchmarks.md, "Namespace
//! features"): the time and extra memory of creating a snapshot of a
//! directory of N files, and the apply rate of creates with and without a
//! quota on an ancestor, measured in the same run.
//!
//! `cargo run --release -p tdfs-namespace --example ns_features_bench [N]`

use std::time::Instant;
use tdfs_namespace::{LogOp, Namespace, Stamp};
use tdfs_proto::ids::CallId;
use tdfs_proto::quota::QuotaChange;

#[global_allocator]
static A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;

/// A namespace with a clock and call ids, applying as the superuser.
struct Ns {
    ns: Namespace,
    now: u64,
    seq: u64,
}

impl Ns {
    fn new() -> Ns {
        let mut n = Ns {
            ns: Namespace::new(),
            now: 1_700_000_000_000,
            seq: 0,
        };
        n.apply(LogOp::Init {
            superuser: "root".into(),
            supergroup: "supergroup".into(),
        });
        n
    }

    fn apply(&mut self, op: LogOp) {
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
        let mut ev = Vec::new();
        if let Err(e) = self.ns.apply_ignoring_retry_cache(&stamp, &op, &mut ev) {
            panic!("{} failed: {e}", op.name());
        }
    }

    fn mkdir(&mut self, p: &str) {
        self.apply(LogOp::Mkdirs {
            path: p.into(),
            mode: 0o755,
            parents: true,
        });
    }

    fn create(&mut self, p: String) {
        self.apply(LogOp::Create {
            path: p.clone(),
            overwrite: false,
            replication: 3,
            block_size: 128 << 20,
            mode: 0o644,
            create_parents: false,
        });
        self.apply(LogOp::Complete {
            path: p,
            last: None,
        });
    }
}

fn snapshot_figures(n: usize) {
    let base = tdfs_testkit::alloc::live();
    let mut ns = Ns::new();
    ns.mkdir("/snap/d");
    for i in 0..n {
        ns.create(format!("/snap/d/f{i:07}"));
    }
    let whole = tdfs_testkit::alloc::live() - base;
    println!("namespace with {n} files: {whole} bytes");
    ns.apply(LogOp::AllowSnapshot {
        path: "/snap".into(),
    });
    for k in 0..5 {
        let before = tdfs_testkit::alloc::live();
        let t = Instant::now();
        ns.apply(LogOp::CreateSnapshot {
            path: "/snap".into(),
            name: Some(format!("s{k}")),
        });
        let us = t.elapsed().as_secs_f64() * 1e6;
        let extra = tdfs_testkit::alloc::live() as i64 - before as i64;
        println!("snapshot {k} of a directory of {n} files: {us:.1} us, {extra} bytes");
    }
    // What a snapshot costs once files change: one diff per changed file.
    let before = tdfs_testkit::alloc::live();
    for i in 0..1000 {
        ns.apply(LogOp::Delete {
            path: format!("/snap/d/f{i:07}"),
            recursive: false,
        });
    }
    let extra = tdfs_testkit::alloc::live() as i64 - before as i64;
    println!("1000 deletes under the snapshots: {extra} bytes more");
}

/// Creates per second in `dir` (already made), `n` files.
fn create_rate(ns: &mut Ns, dir: &str, n: usize, round: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        ns.create(format!("{dir}/r{round}-{i:07}"));
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Median creates per second in each of `dirs`, rounds interleaved in a
/// rotating order so warm-up and growth hit every directory alike.
fn rates(ns: &mut Ns, dirs: &[&str], n: usize) -> Vec<f64> {
    let mut v = vec![Vec::new(); dirs.len()];
    for round in 0..10 {
        for k in 0..dirs.len() {
            let i = (round + k) % dirs.len();
            v[i].push(create_rate(ns, dirs[i], n, round));
        }
    }
    v.into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.total_cmp(b));
            r[r.len() / 2]
        })
        .collect()
}

fn quota_figures(n: usize) {
    let mut ns = Ns::new();
    let dirs = ["/plain/a/b", "/quota/a/b", "/other/a/b"];
    for d in dirs {
        ns.mkdir(d);
    }
    ns.apply(LogOp::SetQuota {
        path: "/quota".into(),
        namespace: QuotaChange::Set(u64::MAX / 2),
        space: QuotaChange::Set(u64::MAX / 2),
    });
    let r = rates(&mut ns, &dirs, n);
    let pct = |a: f64, b: f64| (b - a) / a * 100.0;
    println!(
        "create+complete apply rate, {n} files x 10 rounds each, median: no quota {:.0}/s, \
         quota on an ancestor {:.0}/s ({:+.1}%); a second directory without quota {:.0}/s \
         ({:+.1}%, the noise)",
        r[0],
        r[1],
        pct(r[0], r[1]),
        r[2],
        pct(r[0], r[2])
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    snapshot_figures(n);
    quota_figures(n / 5);
}
