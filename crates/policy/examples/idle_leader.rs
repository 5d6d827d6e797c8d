//! What the leader's soft state costs at scale (docs/benchmarks.md,
//! "Leader policy state at scale"): N committed blocks at replication 3 on
//! four datanodes, loaded as a restarted leader loads its namespace, then
//! the datanodes' full reports in pages of 10,000 replicas (the datanode's
//! page size; each page is applied under the soft-state lock, so its time is
//! how long a report page can hold other callers), then idle policy rounds
//! (`tick` + `round`, every 500 ms on the leader): the CPU an idle leader
//! spends on its policies, as a share of one core. Then one datanode is
//! declared down by gossip and dead 31 s later: how many rounds until
//! every block it held is reclassified (a rescan of that node's blocks,
//! 100,000 per round), and what each of those rounds costs.
//!
//! `cargo run --release -p tdfs-policy --example idle_leader [N]` (default
//! 10,000,000).

use std::time::{Duration, Instant};
use tdfs_namespace::inode::Block;
use tdfs_namespace::{AdminState, BlockRef};
use tdfs_policy::{ClusterState, LivenessConfig, PolicyConfig};
use tdfs_proto::meta::{DatanodeUsage, ReplicaReport};
use tdfs_proto::DatanodeId;

#[global_allocator]
static A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;

/// The datanode's full-report page (`REPORT_PAGE` in `tdfs-datanode`).
const PAGE: usize = 10_000;
const NODES: u64 = 4;
const LEN: u64 = 1 << 20;
const GB: u64 = 1 << 30;

fn dn(i: u64) -> DatanodeId {
    DatanodeId(format!("dn-{i}"))
}

fn mib(b: usize) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let t0 = Instant::now();
    let mut now = t0;
    let mut c = ClusterState::new(PolicyConfig::new(LivenessConfig {
        stale_after: Duration::from_secs(3),
        dead_after: Duration::from_secs(30),
        gossip: true,
    }));
    for i in 0..NODES {
        let id = dn(i);
        c.register(&id, &format!("127.0.0.1:{}", 9000 + i), None, None, now);
        c.set_registered(&id, AdminState::Normal, now);
        c.usage(
            &id,
            DatanodeUsage {
                capacity: 100_000 * GB,
                used: n * 3 / NODES * LEN,
                pending: 0,
                blocks: n * 3 / NODES,
            },
        );
    }
    let base = tdfs_testkit::alloc::live();
    let started = Instant::now();
    c.load_namespace(
        (1..=n).map(|id| BlockRef {
            block: Block {
                id,
                gen: 1,
                len: LEN,
                sha256: [0; 32],
            },
            file: id,
            replication: 3,
            committed: true,
        }),
        n + 1,
        std::iter::empty(),
        Vec::new(),
        now,
    );
    c.become_leader(now);
    println!(
        "{n} blocks loaded in {:.2?}: {:.0} MiB, {:.0} bytes per block",
        started.elapsed(),
        mib(tdfs_testkit::alloc::live() - base),
        (tdfs_testkit::alloc::live() - base) as f64 / n as f64
    );

    // Full reports: block b on nodes b%4, (b+1)%4, (b+2)%4.
    let mut page_times = Vec::new();
    let started = Instant::now();
    for node in 0..NODES {
        let id = dn(node);
        let mine: Vec<u64> = (1..=n)
            .filter(|b| (b % NODES) != (node + 1) % NODES)
            .collect();
        let pages: Vec<&[u64]> = mine.chunks(PAGE).collect();
        for (i, page) in pages.iter().enumerate() {
            let last = i + 1 == pages.len();
            let hi = if last {
                u64::MAX
            } else {
                *page.last().unwrap()
            };
            let blocks: Vec<ReplicaReport> = page
                .iter()
                .map(|&b| ReplicaReport {
                    id: b,
                    gen: 1,
                    len: LEN,
                    sha256: [0; 32],
                })
                .collect();
            let t = Instant::now();
            assert!(c.report_page(&id, node, i as u32, hi, &blocks, &[], last, now));
            page_times.push(t.elapsed());
        }
    }
    page_times.sort();
    println!(
        "{} full-report pages of {PAGE} applied in {:.2?}: p50 {:.1?}, max {:.1?} per page; \
         soft state now {:.0} MiB ({:.0} bytes per block)",
        page_times.len(),
        started.elapsed(),
        page_times[page_times.len() / 2],
        page_times.last().unwrap(),
        mib(tdfs_testkit::alloc::live() - base),
        (tdfs_testkit::alloc::live() - base) as f64 / n as f64
    );

    // Let the load's rescan and the young grace finish, then idle rounds.
    let mut settle = 0;
    loop {
        now += Duration::from_millis(500);
        let drained = c.tick(now);
        c.round(now, Some(10.0), drained);
        settle += 1;
        let h = c.blocks.health();
        if settle > 40 && h.under_replicated == 0 && h.missing == 0 && !c.blocks.rescanning() {
            break;
        }
        assert!(settle < 10_000, "never settled: {h:?}");
    }
    let h = c.blocks.health();
    println!(
        "settled after {settle} rounds: {} blocks, {} under-replicated, {} over, {} missing",
        h.blocks, h.under_replicated, h.over_replicated, h.missing
    );
    let rounds = 200;
    let started = Instant::now();
    let mut commands = 0;
    for _ in 0..rounds {
        now += Duration::from_millis(500);
        // Gossip keeps every node alive between rounds.
        for i in 0..NODES {
            c.contact(&dn(i), now);
        }
        let drained = c.tick(now);
        c.round(now, Some(10.0), drained);
        for i in 0..NODES {
            commands += c.take_commands(&dn(i)).len();
        }
    }
    let per_round = started.elapsed() / rounds;
    println!(
        "idle: {per_round:.1?} per policy round ({rounds} rounds, {commands} commands): \
         {:.3} % of one core at one round per 500 ms",
        per_round.as_secs_f64() / 0.5 * 100.0
    );

    // dn-0 dies: only its blocks are rescanned.
    let held = c.nodes.ix(&dn(0)).map_or(0, |ix| c.blocks.replicas_on(ix));
    c.gossip(&dn(0), true, now);
    let down = now;
    let (mut rounds, mut times) = (0u32, Vec::new());
    let mut started = Instant::now();
    loop {
        now += Duration::from_millis(500);
        for i in 1..NODES {
            c.contact(&dn(i), now);
        }
        let dead = now.duration_since(down) > Duration::from_secs(30);
        if dead && rounds == 0 {
            started = Instant::now();
        }
        let t = Instant::now();
        let drained = c.tick(now);
        c.round(now, Some(10.0), drained);
        for i in 0..NODES {
            c.take_commands(&dn(i));
        }
        if dead {
            times.push(t.elapsed());
            rounds += 1;
            if !c.blocks.rescanning() {
                break;
            }
        }
        assert!(rounds < 100_000, "the rescan never ended");
    }
    times.sort();
    let h = c.blocks.health();
    println!(
        "dn-0 dead ({held} replicas): its blocks reclassified in {rounds} rounds \
         ({:.1?} at 500 ms a round, {:.1?} spent in them); round p50 {:.1?}, max {:.1?}; {} blocks under-replicated",
        Duration::from_millis(500) * rounds,
        started.elapsed(),
        times[times.len() / 2],
        times.last().unwrap(),
        h.under_replicated
    );
}
