//! Large clusters on the simulated network, in virtual time: failure
//! detection time (kill → first member and → every member sees it down) and
//! the message rate per member, while the datanodes' usage records first
//! spread and once they have.
//!
//! The 1,000-member run takes minutes of wall time (foca scans its member
//! list for every update it applies, and the simulation runs every member on
//! one core), so it is `#[ignore]`d: run it with
//! `cargo test -p tdfs-gossip --test t50_sim_scale -- --ignored --nocapture`.
//! A 200-member run stays in the normal suite.

mod sim;

use sim::{is_down, sim_config, test_seed, SimNet};
use std::time::{Duration, Instant};
use tdfs_gossip::{DatanodeUsage, MemberEvent};

const SEEDS: usize = 3;

/// What one run measured.
struct Figures {
    /// Packets per member per second in each virtual second after start.
    rates: Vec<f64>,
    /// Packets per member per second, averaged over the last 6 s before the
    /// kill (two usage refresh periods).
    steady_packets: f64,
    /// Bytes per member per second over the same 6 s.
    steady_bytes: f64,
    /// Kill → the first member sees the victim down.
    first_down: Duration,
    /// Kill → every member sees the victim down.
    all_down: Duration,
}

/// Starts `members` members (the first three are seeds, the rest datanodes
/// spreading usage), runs `warmup` of virtual time, kills one, and measures.
fn run(test: &str, members: usize, warmup: Duration) -> Figures {
    let seed = test_seed(test);
    let wall = Instant::now();
    let mut net = SimNet::new(seed);
    net.record = |e| matches!(e, MemberEvent::Down(_));
    for i in 0..members {
        net.add(sim_config(i, SEEDS, Some(sim::key(5))));
    }
    // The roster is known up front (as the metadata nodes know their
    // datanodes), so that the run measures detection rather than an
    // N-way join. Members start 250 µs apart so probe rounds are not in phase.
    let roster: Vec<_> = net
        .nodes
        .iter()
        .map(|n| n.config.identity.clone())
        .collect();
    for i in 0..members {
        net.with_core(i, |core, now| {
            core.add_known_members(roster.iter().cloned(), now);
            if i >= SEEDS {
                let usage = DatanodeUsage {
                    capacity: 1 << 40,
                    used: i as u64,
                    pending: 0,
                    blocks: 0,
                };
                core.set_usage(usage, now);
            }
        });
        net.run_for(Duration::from_micros(250));
    }
    let mut rates = Vec::new();
    let mut last = net.total_sent();
    let mut history = vec![last];
    while net.elapsed() < warmup {
        net.run_for(Duration::from_secs(1));
        let now = net.total_sent();
        rates.push((now.0 - last.0) as f64 / members as f64);
        history.push(now);
        last = now;
    }
    let before = history[history.len().saturating_sub(7)];
    let span = (history.len() - 1).min(6) as f64;
    let steady_packets = (last.0 - before.0) as f64 / members as f64 / span;
    let steady_bytes = (last.1 - before.1) as f64 / members as f64 / span;
    assert!(net.log.is_empty(), "false positive: {:?}", net.log.first());

    let victim = members / 2;
    let victim_id = format!("dn-{victim}");
    let killed_at = net.now;
    net.kill(victim);
    let count = |net: &SimNet| {
        net.log
            .iter()
            .filter(|(_, _, e)| is_down(&victim_id)(e))
            .count()
    };
    net.run_until_cond(Duration::from_secs(15), |net| count(net) >= members - 1)
        .unwrap_or_else(|| {
            panic!(
                "only {} of {} saw the victim down",
                count(&net),
                members - 1
            )
        });
    let times: Vec<Duration> = net.log.iter().map(|(at, ..)| *at - killed_at).collect();
    let false_downs = net
        .log
        .iter()
        .filter(|(_, _, e)| !is_down(&victim_id)(e))
        .count();
    assert_eq!(false_downs, 0, "false positives: {:?}", net.log);
    let figures = Figures {
        rates,
        steady_packets,
        steady_bytes,
        first_down: times.iter().copied().min().unwrap_or_default(),
        all_down: times.iter().copied().max().unwrap_or_default(),
    };
    let rates: Vec<String> = figures.rates.iter().map(|r| format!("{r:.1}")).collect();
    println!(
        "{members} members: kill -> first Down {:?}, all Down {:?} (virtual); packets per \
         member per second, each virtual second: [{}]; over the last 6 s {:.1} packets and \
         {:.0} bytes per member per second; {:?} of wall time",
        figures.first_down,
        figures.all_down,
        rates.join(", "),
        figures.steady_packets,
        figures.steady_bytes,
        wall.elapsed()
    );
    figures
}

/// Detection waits for some member to probe the victim: each of n-1
/// members probes one member per period, so no one does in a given period
/// with probability (1-1/(n-1))^(n-1) ≈ 0.37. Seven such periods in a row
/// (0.1 %) plus suspicion and spreading stay under 4 s.
#[test]
fn two_hundred_members_detect_a_failure_within_four_seconds() {
    let figures = run("two_hundred_members", 200, Duration::from_secs(8));
    assert!(
        figures.all_down <= Duration::from_secs(4),
        "{:?}",
        figures.all_down
    );
    let settled = figures.steady_packets;
    assert!(settled < 15.0, "{settled} packets per member per second");
}

#[test]
#[ignore = "minutes of wall time; run with --ignored"]
fn thousand_members_detect_a_failure_and_report_the_cost() {
    let figures = run("thousand_members", 1_000, Duration::from_secs(25));
    assert!(
        figures.all_down <= Duration::from_secs(4),
        "{:?}",
        figures.all_down
    );
    let settled = figures.steady_packets;
    assert!(settled < 15.0, "{settled} packets per member per second");
}
