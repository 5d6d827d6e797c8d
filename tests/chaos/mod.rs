//! The chaos suite: a real cluster of `tdfs` processes in network
//! namespaces, a seeded nemesis, a recorded concurrent workload, and the
//! checks at the end (see docs/chaos.md).

// Shared by t60_chaos and t62_chaos_bugs, which use different parts.
#![allow(dead_code)]

pub mod checker;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod metalog;
pub mod nemesis;
pub mod netns;
pub mod power;
pub mod progress;
pub mod safety;
pub mod snap;
pub mod tree;
pub mod verify;
pub mod workload;

use cluster::Cluster;
use history::{key_count, NS_DIR};
use nemesis::{Fault, Nemesis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use workload::{Shared, DATA_DIR};

/// How long and how hard a run is.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: &'static str,
    pub datanodes: usize,
    /// `None`: every fault once; `Some(n)`: n faults drawn at random.
    pub faults: Option<usize>,
    /// Pause between two faults (the workload runs on), ms range.
    pub gap_ms: (u64, u64),
    /// Bug switches for the daemons (`TDFS_BUGS`); empty: they inherit
    /// this process's environment.
    pub bugs: &'static str,
    /// The fault kinds to draw from (`None`: all); `TDFS_CHAOS_ONLY`
    /// overrides it.
    pub kinds: Option<&'static [Fault]>,
}

impl Profile {
    pub fn short() -> Profile {
        Profile {
            name: "short",
            datanodes: 4,
            faults: None,
            gap_ms: (300, 1000),
            bugs: "",
            kinds: None,
        }
    }

    pub fn long(faults: usize) -> Profile {
        Profile {
            name: "long",
            datanodes: 5,
            faults: Some(faults),
            gap_ms: (500, 3000),
            bugs: "",
            kinds: None,
        }
    }
}

/// What one run did and found.
#[derive(Debug)]
pub struct Summary {
    pub seed: u64,
    pub faults: Vec<Fault>,
    pub ns_ops: usize,
    pub ns_unknown: usize,
    pub keys: usize,
    pub files: usize,
    pub files_ok: u64,
    pub appends_ok: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub replicas_scrubbed_bad: usize,
    /// Final reads recorded (one per path of every key).
    pub final_reads: usize,
    /// Most linearizability search steps of a key (budget: checker::BUDGET).
    pub max_steps: usize,
    /// Data check: files read back, reads retried as "unavailable".
    pub data_checked: (usize, u64),
    /// Fewest successful namespace / data ops in a fault's window.
    pub fewest: Option<(u64, u64)>,
    /// Acknowledged truncates at a block boundary / inside a block, unknown.
    pub truncs: (u64, u64, u64),
    /// Snapshot: files checked, snapshot-only blocks freed after deletion.
    pub snap: (usize, usize),
    pub seconds: f64,
    pub violations: Vec<String>,
}

impl Summary {
    /// One row of the results table in docs/chaos.md.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} on {} keys ({} unknown, {} final reads, ≤ {} search steps) | {} files ({} ok, {} appends, {}+{} truncates at/inside a block, {} unknown), {} reads ({} failed); checked after healing: {} files, {} retries as unavailable; snapshot: {} files intact, {} snapshot-only blocks freed | {} | {} | {:.0} s | {} |",
            self.seed,
            self.faults.len(),
            self.ns_ops,
            self.keys,
            self.ns_unknown,
            self.final_reads,
            self.max_steps,
            self.files,
            self.files_ok,
            self.appends_ok,
            self.truncs.0,
            self.truncs.1,
            self.truncs.2,
            self.reads_ok,
            self.reads_failed,
            self.data_checked.0,
            self.data_checked.1,
            self.snap.0,
            self.snap.1,
            self.replicas_scrubbed_bad,
            match self.fewest {
                Some((ns, data)) => format!("{ns} ns / {data} data"),
                None => "-".into(),
            },
            self.seconds,
            if self.violations.is_empty() {
                "none".to_string()
            } else {
                format!("{} VIOLATIONS", self.violations.len())
            }
        )
    }
}

/// One seeded run: start the cluster, run workload + nemesis, heal, check.
pub async fn run(seed: u64, p: &Profile) -> Summary {
    let t0 = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cl = Cluster::start_with_bugs(p.datanodes, p.bugs);
    let ctl = cl.client(Duration::from_secs(30));
    cl.wait_settled(&ctl, Duration::from_secs(60)).await;
    ctl.mkdirs(NS_DIR, true)
        .await
        .expect("mkdir the namespace dir");
    for key in (0..key_count()).filter(|&k| history::is_tree(k)) {
        ctl.mkdirs(&history::tree_root(key), false)
            .await
            .expect("mkdir a tree key's root");
    }
    ctl.mkdirs(DATA_DIR, true)
        .await
        .expect("mkdir the data dir");

    let sh = Shared::new();
    let snap_files = snap::setup(&sh, &ctl, &mut rng).await;
    // The workload's tasks run on threads in the client namespace, so the
    // nemesis can cut them off without cutting itself (see cluster.rs).
    let wl = cl.client_runtime();
    let mut tasks = Vec::new();
    let addrs = cl.meta_addrs();
    tasks.push(wl.spawn(snap::mutator(
        sh.clone(),
        cl.client(Duration::from_secs(15)),
        snap_files.clone(),
        rng.gen(),
    )));
    // Namespace workers: each starts at a different metadata node. A short
    // deadline, so that faults leave operations with unknown outcomes.
    for w in 0..3 {
        let mut a = addrs.clone();
        a.rotate_left(w);
        let c = cl.client_of(a, Duration::from_secs(3));
        tasks.push(wl.spawn(workload::ns_worker(sh.clone(), c, w, rng.gen())));
    }
    // Readers pinned to one metadata node each.
    for (i, a) in addrs.iter().enumerate() {
        let c = cl.client_of(vec![a.clone()], Duration::from_secs(3));
        let w = 10 + i;
        tasks.push(wl.spawn(workload::stat_worker(sh.clone(), c, w, rng.gen())));
    }
    for w in 0..2 {
        let c = cl.client(Duration::from_secs(15));
        let a2 = addrs.clone();
        let mk = move || {
            let mut cfg = tdfs_client::ClientConfig::new(a2.clone(), "root");
            cfg.deadline = Duration::from_secs(10);
            cfg.attempt_timeout = Duration::from_millis(1500);
            std::sync::Arc::new(tdfs_client::MetaClient::new(cfg).unwrap())
        };
        tasks.push(wl.spawn(workload::writer(sh.clone(), c, mk, w, rng.gen())));
    }
    let rc = cl.client(Duration::from_secs(10));
    tasks.push(wl.spawn(workload::reader(sh.clone(), rc, rng.gen())));

    let sched = nemesis::schedule(&mut rng, p.faults, p.kinds);
    println!("chaos: schedule {sched:?}");
    let mut nem = Nemesis::new(StdRng::seed_from_u64(rng.gen()), ctl.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut windows = Vec::new();
    for f in &sched {
        let from = sh.hist.now();
        nem.run(&mut cl, &sh, *f).await;
        windows.push(progress::Window::new(*f, from, sh.hist.now()));
        let gap = rng.gen_range(p.gap_ms.0..=p.gap_ms.1);
        tokio::time::sleep(Duration::from_millis(gap)).await;
    }

    // The last fault's window runs to its tail (progress after healing).
    tokio::time::sleep(Duration::from_micros(progress::TAIL)).await;
    // Stop the workload; a call in flight ends within its client deadline.
    sh.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        if tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .is_err()
        {
            panic!("a workload task did not stop within 60 s");
        }
    }
    let mut violations = sh.violations.lock().unwrap().clone();
    violations.extend(nem.violations.iter().cloned());
    cl.wait_settled(&ctl, Duration::from_secs(60)).await;
    println!("chaos: workload stopped at {:.1?}; checking", t0.elapsed());

    // Every check runs under a deadline of its own: a check that hangs is
    // a violation that names it, never a run that waits for ever.
    let mut late = Vec::new();
    let leases = within(
        "lease recovery",
        120,
        verify::leases_recovered(&ctl),
        &mut late,
    );
    if let Some(Err(e)) = leases.await {
        violations.push(format!("lease recovery: {e}"));
    }
    let (final_reads, bad) = within(
        "final reads",
        300,
        verify::final_reads(&ctl, &sh),
        &mut late,
    )
    .await
    .unwrap_or_default();
    violations.extend(bad);
    let data = within("data check", 600, verify::check_data(&ctl, &sh), &mut late)
        .await
        .unwrap_or_default();
    println!(
        "chaos: data check: {} files read back once each, {} retries as unavailable {:?}",
        data.files,
        data.retries.values().sum::<u64>(),
        data.retries
    );
    violations.extend(data.violations);
    let snap_report = match within(
        "snapshot check",
        180,
        snap::check(&ctl, &cl, &snap_files),
        &mut late,
    )
    .await
    .unwrap_or_else(|| Err("did not finish".into()))
    {
        Ok(r) => {
            println!(
                "chaos: snapshot: {} files read back as taken (live files since: {} deleted, \
                 {} overwritten); {} snapshot-only blocks, gone from every disk {:.1?} after \
                 the snapshot was deleted",
                r.files,
                sh.counters.snap_deletes.load(Ordering::Relaxed),
                sh.counters.snap_overwrites.load(Ordering::Relaxed),
                r.snapshot_only,
                r.freed_in
            );
            r
        }
        Err(e) => {
            violations.push(format!("snapshot: {e}"));
            Default::default()
        }
    };
    let scrubbed_bad = match within(
        "scrub",
        180,
        verify::scrub(&ctl, &cl, &nem.damaged),
        &mut late,
    )
    .await
    .unwrap_or_else(|| Err("did not finish".into()))
    {
        Ok(n) => n,
        Err(e) => {
            violations.push(format!("scrub: {e}"));
            0
        }
    };
    match within("fsck", 180, verify::fsck_healthy(&ctl), &mut late)
        .await
        .unwrap_or_else(|| Err("did not finish".into()))
    {
        Ok(f) => println!("chaos: fsck healthy: {f:?}"),
        Err(e) => violations.push(format!("fsck did not become healthy in time: {e}")),
    }
    match within("disk check", 180, verify::disks_clean(&ctl, &cl), &mut late)
        .await
        .unwrap_or_else(|| Err("did not finish".into()))
    {
        Ok(n) => println!("chaos: {n} replicas on disk, none orphan or damaged"),
        Err(e) => violations.push(format!("disks not clean: {e}")),
    }
    violations.extend(late);
    // Members that applied the same log must hold the same namespace.
    for (log, line) in cl.logged("CONSISTENCY ALARM") {
        violations.push(format!("consistency alarm in {log}: {line}"));
    }
    let panics = cl.panicked();
    if !panics.is_empty() {
        violations.push(format!("panics logged in {panics:?}"));
    }
    let ops = sh.hist.ops();
    let verdict = checker::check(&ops);
    println!(
        "chaos: linearizability: {} ops on {} keys ({} unknown, {final_reads} final reads), \
         {} inconclusive keys, at most {} search steps on a key (budget {})",
        verdict.ops,
        verdict.keys,
        verdict.unknown,
        verdict.inconclusive.len(),
        verdict.max_steps,
        checker::BUDGET
    );
    violations.extend(verdict.violations);
    println!(
        "chaos: tree keys, (succeeded, recorded) by kind: {:?}",
        history::tree_tally(&ops)
    );
    let counts = progress::count(&windows, &ops, &sh.data_acks.lock().unwrap());
    for c in &counts {
        println!(
            "chaos: window {:?} {:.1} s: {} ns ops ({} by pinned stat workers), {} data ops; \
             floors {:?}",
            c.w.fault,
            c.secs(),
            c.ns,
            c.pinned,
            c.data,
            c.floors()
        );
    }
    violations.extend(progress::violations(&counts));
    if !violations.is_empty() {
        cl.dump_logs(60);
        cl.keep_logs();
    }
    let c = &sh.counters;
    let s = Summary {
        seed,
        faults: sched,
        ns_ops: verdict.ops,
        ns_unknown: verdict.unknown,
        keys: key_count(),
        files: sh.files.lock().unwrap().len(),
        files_ok: c.files_ok.load(Ordering::Relaxed),
        appends_ok: c.appends_ok.load(Ordering::Relaxed),
        reads_ok: c.reads_ok.load(Ordering::Relaxed),
        reads_failed: c.reads_failed.load(Ordering::Relaxed),
        replicas_scrubbed_bad: scrubbed_bad,
        final_reads,
        max_steps: verdict.max_steps,
        data_checked: (data.files, data.retries.values().sum()),
        fewest: progress::fewest(&counts),
        truncs: (
            c.truncs_boundary.load(Ordering::Relaxed),
            c.truncs_inside.load(Ordering::Relaxed),
            c.truncs_unknown.load(Ordering::Relaxed),
        ),
        snap: (snap_report.files, snap_report.snapshot_only),
        seconds: t0.elapsed().as_secs_f64(),
        violations,
    };
    for l in &nem.log {
        println!("chaos: fault {l}");
    }
    for (why, n) in sh.read_errors.lock().unwrap().iter() {
        println!("chaos: {n} reads failed: {why}");
    }
    s
}

/// `fut` under a deadline of `secs`: `None`, and a violation naming the
/// check in `late`, when it runs out.
async fn within<T>(
    what: &str,
    secs: u64,
    fut: impl std::future::Future<Output = T>,
    late: &mut Vec<String>,
) -> Option<T> {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => Some(v),
        Err(_) => {
            late.push(format!(
                "the {what} did not finish within {secs} s after healing"
            ));
            None
        }
    }
}
