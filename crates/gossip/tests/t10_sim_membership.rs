//! Membership on the simulated network, in virtual time: join, failure
//! detection, restart, seeds that come up late, partitions.

mod sim;

use sim::{is_down, is_up, sim_config, test_seed, SimNet, Verdict};
use std::time::Duration;
use tdfs_gossip::{MemberEvent, MemberState};

/// Three seeds (meta-0..2) and two datanodes (dn-3, dn-4).
const NODES: usize = 5;
const SEEDS: usize = 3;

/// Starts a five-member cluster and waits until everyone knows everyone.
fn joined_cluster(seed: u64) -> (SimNet, Duration) {
    let mut net = SimNet::new(seed);
    for i in 0..NODES {
        net.add(sim_config(i, SEEDS, Some(sim::key(7))));
    }
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            (0..NODES).all(|i| net.core(i).num_active() == NODES - 1)
        })
        .expect("five members join within 5 s of virtual time");
    (net, took)
}

#[test]
fn five_members_join() {
    let seed = test_seed("five_members_join");
    let (mut net, took) = joined_cluster(seed);
    println!("five_members_join: everyone knows everyone after {took:?}");
    assert!(took <= Duration::from_secs(1), "join took {took:?}");
    let members = net.with_core(3, |core, now| core.members(now));
    assert_eq!(members.len(), NODES - 1);
    assert!(members.iter().all(|m| m.state == MemberState::Alive));
}

#[test]
fn killed_member_is_seen_down_by_all_within_two_seconds_then_rejoins() {
    let seed = test_seed("kill_and_restart");
    let (mut net, _) = joined_cluster(seed);
    net.run_for(Duration::from_secs(2));
    let killed_at = net.now;
    net.kill(4);
    let took = net
        .run_until_cond(Duration::from_secs(10), |net| {
            net.all_saw(killed_at, &[4], is_down("dn-4"))
        })
        .expect("every survivor sees dn-4 down");
    let first = (0..4)
        .filter_map(|i| net.first_seen(i, killed_at, is_down("dn-4")))
        .min()
        .expect("someone saw it");
    let last = (0..4)
        .filter_map(|i| net.first_seen(i, killed_at, is_down("dn-4")))
        .max()
        .expect("everyone saw it");
    println!(
        "kill -> first Down {:?}, all Down {:?} (virtual)",
        first - killed_at,
        last - killed_at
    );
    assert!(last - killed_at <= Duration::from_secs(2), "took {took:?}");
    let false_downs: Vec<_> = net
        .log
        .iter()
        .filter(|(_, _, e)| matches!(e, MemberEvent::Down(who) if who.id != "dn-4"))
        .collect();
    assert!(false_downs.is_empty(), "false positives: {false_downs:?}");

    let old_generation = net.nodes[4].config.identity.generation;
    let restarted_at = net.now;
    net.restart(4);
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            net.all_saw(restarted_at, &[4], is_up("dn-4")) && net.core(4).num_active() == NODES - 1
        })
        .expect("the restarted member is up everywhere");
    println!("restart -> Up everywhere after {took:?} (virtual)");
    assert!(took <= Duration::from_millis(500), "rejoin took {took:?}");
    for i in 0..4 {
        let members = net.with_core(i, |core, now| core.members(now));
        let dn4 = members
            .iter()
            .find(|m| m.identity.id == "dn-4")
            .expect("listed");
        assert_eq!(dn4.state, MemberState::Alive);
        assert!(dn4.identity.generation > old_generation);
    }
}

#[test]
fn members_started_before_their_seeds_join_when_seeds_come_up() {
    let seed = test_seed("seeds_late");
    let mut net = SimNet::new(seed);
    for i in 0..NODES {
        let config = sim_config(i, SEEDS, Some(sim::key(7)));
        if i < SEEDS {
            net.add_stopped(config);
        } else {
            net.add(config);
        }
    }
    net.run_for(Duration::from_secs(3));
    assert_eq!(net.core(3).num_active(), 0, "nothing to join yet");
    for i in 0..SEEDS {
        net.start_node(i);
    }
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            (0..NODES).all(|i| net.core(i).num_active() == NODES - 1)
        })
        .expect("joins once the seeds are up");
    println!("seeds up -> full membership after {took:?} (virtual)");
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
}

#[test]
fn a_partitioned_member_rejoins_after_the_partition_heals() {
    let seed = test_seed("partition");
    let (mut net, _) = joined_cluster(seed);
    let cut = std::rc::Rc::new(std::cell::Cell::new(true));
    let cut_in_filter = cut.clone();
    net.filters.push(Box::new(move |from, to, _| {
        if cut_in_filter.get() && (from == 4 || to == 4) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    }));
    let cut_at = net.now;
    net.run_until_cond(Duration::from_secs(10), |net| {
        net.all_saw(cut_at, &[4], is_down("dn-4"))
    })
    .expect("the isolated member is declared down");
    let generation_before = net.core(4).identity().generation;
    net.run_for(Duration::from_secs(1));
    cut.set(false);
    let healed_at = net.now;
    let took = net
        .run_until_cond(Duration::from_secs(20), |net| {
            net.all_saw(healed_at, &[4], is_up("dn-4"))
                && (0..NODES).all(|i| net.core(i).num_active() == NODES - 1)
        })
        .expect("the member is back everywhere");
    println!("partition healed -> back everywhere after {took:?} (virtual)");
    assert!(net.core(4).identity().generation > generation_before);
    assert!(took <= Duration::from_secs(6), "took {took:?}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let seed = test_seed("replay");
    let run = |seed| {
        let (mut net, _) = joined_cluster(seed);
        net.kill(2);
        net.run_for(Duration::from_secs(3));
        net.log
            .iter()
            .map(|(at, who, e)| (*at - net.start, *who, e.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(seed), run(seed));
}
