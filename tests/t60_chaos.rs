//! Chaos: three `tdfs meta` and four or more `tdfs datanode` processes in
//! network namespaces under a concurrent, recorded workload while a seeded
//! nemesis kills, pauses, partitions, corrupts and fills; then the data,
//! the cluster's health, the disks and the linearizability of the namespace
//! history are checked. See docs/chaos.md.
//!
//! Replay a run: `TDFS_CHAOS_SEED=<seed> cargo test --test t60_chaos -- --nocapture`.
//! Long profile: `TDFS_CHAOS_PROFILE=long TDFS_CHAOS_SEEDS=20 scripts/chaos-long.sh`.

mod chaos;

use chaos::Profile;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_runs_stay_correct() {
    let long = std::env::var("TDFS_CHAOS_PROFILE").is_ok_and(|p| p == "long");
    let base = env_u64("TDFS_CHAOS_SEED").unwrap_or_else(rand::random);
    let (profile, seeds) = if long {
        let faults = env_u64("TDFS_CHAOS_FAULTS").unwrap_or(30) as usize;
        (
            Profile::long(faults),
            env_u64("TDFS_CHAOS_SEEDS").unwrap_or(5),
        )
    } else {
        (Profile::short(), 1)
    };
    let mut failed = Vec::new();
    for k in 0..seeds {
        let seed = base.wrapping_add(k);
        println!(
            "chaos: seed {seed} ({} profile); replay with TDFS_CHAOS_SEED={seed}{} \
             cargo test --test t60_chaos -- --nocapture",
            profile.name,
            if long {
                " TDFS_CHAOS_PROFILE=long TDFS_CHAOS_SEEDS=1"
            } else {
                ""
            }
        );
        let s = chaos::run(seed, &profile).await;
        println!("chaos: result {}", s.row());
        if let Ok(path) = std::env::var("TDFS_CHAOS_RESULTS") {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            writeln!(f, "{}", s.row()).unwrap();
            for v in &s.violations {
                writeln!(f, "  violation (seed {seed}): {}", v.replace('\n', " / ")).unwrap();
            }
        }
        if !s.violations.is_empty() {
            for v in &s.violations {
                eprintln!("chaos: VIOLATION (seed {seed}): {v}");
            }
            failed.push(seed);
        }
    }
    assert!(
        failed.is_empty(),
        "chaos found violations with seeds {failed:?}; replay with TDFS_CHAOS_SEED=<seed>"
    );
}
