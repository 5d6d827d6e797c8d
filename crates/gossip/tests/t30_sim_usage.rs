//! Datanode usage spread by gossip on the simulated network: it reaches every
//! member, newer versions replace older ones, a metadata node that joins late
//! gets every record at once, and a restarted datanode's records win over its
//! old ones.

mod sim;

use sim::{sim_config, test_seed, SimNet};
use std::time::Duration;
use tdfs_gossip::{DatanodeUsage, MemberEvent, Role};

const NODES: usize = 6;
const SEEDS: usize = 3;

fn usage(used: u64) -> DatanodeUsage {
    DatanodeUsage {
        capacity: 1 << 40,
        used,
        pending: used / 10,
        blocks: used / 1000,
    }
}

/// Whether every up member other than `id` lists `id` with `expected`.
fn everyone_sees(net: &mut SimNet, id: &str, expected: DatanodeUsage) -> bool {
    let up: Vec<usize> = net.up().collect();
    up.into_iter().all(|i| {
        if net.core(i).identity().id == id {
            return true;
        }
        net.with_core(i, |core, now| core.members(now))
            .iter()
            .any(|m| m.identity.id == id && m.usage == Some(expected))
    })
}

fn joined(seed: u64) -> SimNet {
    let mut net = SimNet::new(seed);
    for i in 0..NODES {
        net.add(sim_config(i, SEEDS, Some(sim::key(3))));
    }
    net.run_until_cond(Duration::from_secs(5), |net| {
        (0..NODES).all(|i| net.core(i).num_active() == NODES - 1)
    })
    .expect("joins");
    net
}

#[test]
fn usage_reaches_every_member_and_newer_replaces_older() {
    let seed = test_seed("usage");
    let mut net = joined(seed);
    let since = net.now;
    for i in SEEDS..NODES {
        net.with_core(i, |core, now| core.set_usage(usage(i as u64 * 1000), now));
    }
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            (SEEDS..NODES).all(|i| everyone_sees(net, &format!("dn-{i}"), usage(i as u64 * 1000)))
        })
        .expect("usage reaches everyone");
    println!("usage of 3 datanodes reached all 6 members after {took:?} (virtual)");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    // Every member got one Usage event per other datanode.
    for observer in 0..NODES {
        let events = net
            .log
            .iter()
            .filter(|(at, who, e)| {
                *at >= since && *who == observer && matches!(e, MemberEvent::Usage(..))
            })
            .count();
        let expected = if observer >= SEEDS { 2 } else { 3 };
        assert_eq!(events, expected, "observer {observer}");
    }
    let members = net.with_core(0, |core, now| core.members(now));
    let dn3 = members
        .iter()
        .find(|m| m.identity.id == "dn-3")
        .expect("listed");
    assert_eq!(dn3.data_addr, Some(sim::sim_addr(3)));

    net.with_core(3, |core, now| core.set_usage(usage(99_000), now));
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            everyone_sees(net, "dn-3", usage(99_000))
        })
        .expect("the newer version replaces the older everywhere");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
    // And stays: the old record is never resurrected by the refresh.
    net.run_for(Duration::from_secs(10));
    assert!(everyone_sees(&mut net, "dn-3", usage(99_000)));
}

#[test]
fn late_joiners_learn_usage_and_restarts_supersede_old_records() {
    let seed = test_seed("usage_late");
    let mut net = joined(seed);
    net.with_core(4, |core, now| core.set_usage(usage(4_000), now));
    net.run_for(Duration::from_secs(5));
    // A metadata node that joins late (or restarts) gets every datanode's
    // record sent to it directly.
    let mut config = sim_config(NODES, SEEDS, Some(sim::key(3)));
    config.identity.role = Role::Meta;
    let late = net.add(config);
    let took = net
        .run_until_cond(Duration::from_secs(15), |net| {
            net.with_core(late, |core, now| core.members(now))
                .iter()
                .any(|m| m.identity.id == "dn-4" && m.usage == Some(usage(4_000)))
        })
        .expect("the late joiner learns dn-4's usage");
    println!("late joiner learned existing usage after {took:?} (virtual)");
    assert!(took <= Duration::from_secs(1), "took {took:?}");

    // Restart dn-4: its first record of the new run (seq 1) outranks the
    // last one of the previous run.
    net.with_core(4, |core, now| core.set_usage(usage(5_000), now));
    net.run_for(Duration::from_secs(1));
    net.kill(4);
    net.run_for(Duration::from_secs(3));
    net.restart(4);
    net.with_core(4, |core, now| core.set_usage(usage(1), now));
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            everyone_sees(net, "dn-4", usage(1))
        })
        .expect("the restarted datanode's usage wins");
    assert!(took <= Duration::from_secs(1), "took {took:?}");
}
