//! Packet authentication on the simulated network: a member with the wrong
//! key (or none) never joins, tampered and replayed packets are dropped, and
//! a cluster without a key works as is.

mod sim;

use sim::{is_up, sim_config, test_seed, SimNet, Verdict};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

const SEEDS: usize = 3;

fn everyone_knows(net: &mut SimNet, members: &[usize]) -> bool {
    members
        .iter()
        .all(|&i| net.core(i).num_active() == members.len() - 1)
}

#[test]
fn a_member_with_the_wrong_key_or_none_never_joins() {
    let seed = test_seed("wrong_key");
    let mut net = SimNet::new(seed);
    for i in 0..4 {
        net.add(sim_config(i, SEEDS, Some(sim::key(1))));
    }
    let intruder = net.add(sim_config(4, SEEDS, Some(sim::key(2))));
    let keyless = net.add(sim_config(5, SEEDS, None));
    net.run_for(Duration::from_secs(10));
    assert!(everyone_knows(&mut net, &[0, 1, 2, 3]));
    assert_eq!(net.core(intruder).num_active(), 0);
    assert_eq!(net.core(keyless).num_active(), 0);
    for i in 0..4 {
        assert_eq!(net.core(i).num_active(), 3, "member {i} let someone in");
        assert!(net.first_seen(i, net.start, is_up("dn-4")).is_none());
        assert!(net.first_seen(i, net.start, is_up("dn-5")).is_none());
    }
    let seeds_stats: Vec<_> = (0..SEEDS).map(|i| net.core(i).stats()).collect();
    let bad_mac: u64 = seeds_stats.iter().map(|s| s.dropped_bad_mac).sum();
    let unauthenticated: u64 = seeds_stats.iter().map(|s| s.dropped_unauthenticated).sum();
    println!("seeds dropped {bad_mac} bad-MAC and {unauthenticated} unauthenticated packets");
    // Both keep retrying the seeds every join_retry (500 ms).
    assert!(bad_mac >= 10, "{seeds_stats:?}");
    assert!(unauthenticated >= 10, "{seeds_stats:?}");
    assert!(seeds_stats.iter().all(|s| s.foca_errors == 0));
}

#[test]
fn tampered_and_replayed_packets_are_dropped() {
    let seed = test_seed("tamper");
    let mut net = SimNet::new(seed);
    for i in 0..4 {
        net.add(sim_config(i, SEEDS, Some(sim::key(1))));
    }
    net.run_until_cond(Duration::from_secs(5), |net| {
        everyone_knows(net, &[0, 1, 2, 3])
    })
    .expect("joins");
    // From now on, every 10th packet to member 3 gets one bit flipped past
    // the envelope header, and every 10th other one is delivered twice.
    let counter = Rc::new(Cell::new(0u64));
    let seen = counter.clone();
    net.filters.push(Box::new(move |_, to, packet| {
        if to != 3 {
            return Verdict::Deliver;
        }
        seen.set(seen.get() + 1);
        match seen.get() % 10 {
            0 => {
                let at = 2 + (seen.get() as usize * 7) % (packet.len() - 2);
                packet[at] ^= 0x10;
                Verdict::Deliver
            }
            5 => Verdict::Duplicate,
            _ => Verdict::Deliver,
        }
    }));
    let before = net.core(3).stats();
    net.run_for(Duration::from_secs(30));
    let after = net.core(3).stats();
    let tampered = counter.get() / 10;
    println!("member 3: {tampered} tampered, stats {after:?}");
    assert!(tampered > 10);
    assert_eq!(after.dropped_bad_mac - before.dropped_bad_mac, tampered);
    assert!(after.dropped_replay - before.dropped_replay >= tampered);
    assert_eq!(after.foca_errors, 0, "nothing tampered reached foca");
    assert!(everyone_knows(&mut net, &[0, 1, 2, 3]), "no false failure");
    assert!(net
        .log
        .iter()
        .all(|(_, _, e)| !matches!(e, tdfs_gossip::MemberEvent::Down(_))));
}

#[test]
fn a_cluster_without_a_key_accepts_plain_packets() {
    let seed = test_seed("no_key");
    let mut net = SimNet::new(seed);
    for i in 0..4 {
        net.add(sim_config(i, SEEDS, None));
    }
    let took = net
        .run_until_cond(Duration::from_secs(5), |net| {
            everyone_knows(net, &[0, 1, 2, 3])
        })
        .expect("joins without a key");
    assert!(took <= Duration::from_secs(1));
    // A datagram that is not ours at all is counted, not fatal.
    net.with_core(0, |core, now| {
        core.handle_data(sim::sim_addr(9), b"GET / HTTP/1.1\r\n", now);
        core.handle_data(sim::sim_addr(9), b"\xd5\x00\xff\xff\xff", now);
    });
    let stats = net.core(0).stats();
    assert_eq!(stats.dropped_malformed, 1);
    assert_eq!(stats.foca_errors, 1);
}
