//! A 1,000-member cluster on the simulated network, in virtual time: failure
//! detection time (kill → first member and → every member sees it down) and
//! the steady-state message rate per member.

mod sim;

use sim::{is_down, sim_config, test_seed, SimNet};
use std::time::{Duration, Instant};
use tdfs_gossip::{DatanodeUsage, MemberEvent};

/// `TDFS_SIM_MEMBERS` overrides the size (to explore).
fn members() -> usize {
    std::env::var("TDFS_SIM_MEMBERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000)
}
const SEEDS: usize = 3;

#[test]
fn thousand_members_detect_a_failure_and_report_the_cost() {
    let seed = test_seed("thousand_members");
    let members = members();
    #[allow(non_snake_case)]
    let MEMBERS = members;
    let wall = Instant::now();
    let mut net = SimNet::new(seed);
    net.record = |e| matches!(e, MemberEvent::Down(_));
    for i in 0..MEMBERS {
        net.add(sim_config(i, SEEDS, Some(sim::key(5))));
    }
    // The roster is known up front (as the metadata nodes know their
    // datanodes), so that the test measures detection, not a 1,000-way join.
    let roster: Vec<_> = net
        .nodes
        .iter()
        .map(|n| n.config.identity.clone())
        .collect();
    for i in 0..MEMBERS {
        net.with_core(i, |core, now| {
            core.add_known_members(roster.iter().cloned(), now)
        });
    }
    for i in SEEDS..MEMBERS {
        let usage = DatanodeUsage {
            capacity: 1 << 40,
            used: i as u64,
            pending: 0,
            blocks: 0,
        };
        net.with_core(i, |core, now| core.set_usage(usage, now));
    }
    let setup = wall.elapsed();
    println!("setup {setup:?}");
    net.run_for(Duration::from_secs(5));
    assert!(
        net.log.is_empty(),
        "no member declared down: {:?}",
        net.log.first()
    );

    // Steady state: usage refreshes, probes, acks and gossip.
    let (sent_before, bytes_before) = net.total_sent();
    let window = Duration::from_secs(6);
    net.run_for(window);
    let (sent_after, bytes_after) = net.total_sent();
    let (sent, bytes) = (sent_after - sent_before, bytes_after - bytes_before);
    let per_member = sent as f64 / MEMBERS as f64 / window.as_secs_f64();
    let bytes_per_member = bytes as f64 / MEMBERS as f64 / window.as_secs_f64();

    println!(
        "steady {per_member:.1} pkts/member/s, wall {:?}",
        wall.elapsed()
    );
    let victim = MEMBERS / 2;
    let killed_at = net.now;
    net.kill(victim);
    let victim_id = format!("dn-{victim}");
    let all = net
        .run_until_cond(Duration::from_secs(15), |net| {
            net.log
                .iter()
                .filter(|(_, _, e)| is_down(&victim_id)(e))
                .count()
                >= MEMBERS - 1
        })
        .unwrap_or_else(|| {
            let n = net
                .log
                .iter()
                .filter(|(_, _, e)| is_down(&victim_id)(e))
                .count();
            let saw: Vec<usize> = net
                .log
                .iter()
                .filter(|(_, _, e)| is_down(&victim_id)(e))
                .map(|(_, w, _)| *w)
                .collect();
            let up: Vec<usize> = net.up().collect();
            for i in up {
                if !saw.contains(&i) {
                    let m = net.with_core(i, |c, now| c.members(now));
                    let v = m.iter().find(|m| m.identity.id == victim_id);
                    println!("missing {i}: {v:?} active {}", net.core(i).num_active());
                }
            }
            panic!(
                "only {n} members saw the victim down; wall {:?}",
                wall.elapsed()
            )
        });
    let first = net
        .log
        .iter()
        .filter(|(_, _, e)| is_down(&victim_id)(e))
        .map(|(at, ..)| *at - killed_at)
        .min()
        .expect("someone saw it");
    let last = net
        .log
        .iter()
        .filter(|(_, _, e)| is_down(&victim_id)(e))
        .map(|(at, ..)| *at - killed_at)
        .max()
        .expect("everyone saw it");
    let false_downs = net
        .log
        .iter()
        .filter(|(_, _, e)| !is_down(&victim_id)(e))
        .count();
    println!(
        "{MEMBERS} members: kill -> first Down {first:?}, all Down {last:?} (virtual); \
         steady state {per_member:.1} packets and {bytes_per_member:.0} bytes per member per \
         second; {false_downs} false Down events; setup {setup:?}, total {:?} (wall)",
        wall.elapsed()
    );
    assert_eq!(false_downs, 0);
    assert!(all <= Duration::from_secs(5), "took {all:?}");
    assert!(
        per_member < 40.0,
        "{per_member} packets per member per second"
    );
}
