//! Scenario tables and a randomized check that the incremental queues
//! agree with a full recomputation.

use crate::blocks::Class;
use crate::liveness::LivenessConfig;
use crate::state::{ClusterState, PolicyConfig};
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use tdfs_namespace::{AdminState, NsEvent, OpenFile};
use tdfs_proto::meta::{DatanodeCommand, DatanodeUsage, ReplicaReport};
use tdfs_proto::DatanodeId;

const GB: u64 = 1 << 30;

struct H {
    c: ClusterState,
    t0: Instant,
    now: Instant,
    report: u64,
}

fn id(s: &str) -> DatanodeId {
    DatanodeId(s.into())
}

fn rep(b: u64, gen: u64) -> ReplicaReport {
    ReplicaReport {
        id: b,
        gen,
        len: 1 << 20,
        sha256: [b as u8; 32],
    }
}

impl H {
    /// A leader knowing `nodes`, each with `used` GiB of 10.
    fn new(nodes: &[(&str, u64)]) -> H {
        let cfg = PolicyConfig::new(LivenessConfig {
            stale_after: Duration::from_secs(3),
            dead_after: Duration::from_secs(30),
            gossip: true,
        });
        let t0 = Instant::now();
        let mut h = H {
            c: ClusterState::new(cfg),
            t0,
            now: t0,
            report: 0,
        };
        for (n, used) in nodes {
            h.c.register(&id(n), &format!("{n}:1"), None, None, t0);
            h.c.set_registered(&id(n), AdminState::Normal, t0);
            h.c.usage(
                &id(n),
                DatanodeUsage {
                    capacity: 10 * GB,
                    used: used * GB,
                    pending: 0,
                    blocks: 0,
                },
            );
        }
        h.c.become_leader(t0);
        for (n, _) in nodes {
            h.full_report(n, &[]);
        }
        h
    }

    fn full_report(&mut self, n: &str, blocks: &[ReplicaReport]) {
        self.report += 1;
        assert!(self.c.report_page(
            &id(n),
            self.report,
            0,
            u64::MAX,
            blocks,
            &[],
            true,
            self.now
        ));
    }

    fn ns(&mut self, ev: NsEvent) {
        self.c.ns_event(&ev, self.now);
    }

    /// A committed block of replication `r` with replicas on `on`, past
    /// its grace.
    fn block(&mut self, b: u64, r: u16, on: &[&str]) {
        self.ns(NsEvent::BlockOpen {
            id: b,
            gen: 1,
            replication: r,
            block_size: 1 << 20,
        });
        for n in on {
            self.added(n, rep(b, 1));
        }
        self.ns(NsEvent::BlockCommitted {
            id: b,
            gen: 1,
            len: 1 << 20,
            replication: r,
        });
    }

    fn added(&mut self, n: &str, r: ReplicaReport) {
        assert!(self.c.incremental(&id(n), &[r], &[], &[], self.now));
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn round(&mut self) -> crate::RoundOutput {
        let drained = self.c.tick(self.now);
        self.c.round(self.now, None, drained)
    }

    fn commands(&mut self, n: &str) -> Vec<DatanodeCommand> {
        self.c.take_commands(&id(n))
    }

    fn class(&self, b: u64) -> Class {
        self.c
            .blocks
            .get(b)
            .map(|e| e.class())
            .unwrap_or(Class::Untracked)
    }
}

#[test]
fn a_dead_node_is_re_replicated_after_the_grace_period() {
    let mut h = H::new(&[("a", 1), ("b", 2), ("c", 3), ("d", 0)]);
    h.block(1, 3, &["a", "b", "c"]);
    h.advance(Duration::from_secs(11));
    h.round();
    assert_eq!(h.class(1), Class::Healthy);
    h.c.gossip(&id("c"), true, h.now);
    h.advance(Duration::from_secs(5));
    h.round();
    // Stale: still counted, no copy.
    assert!(h.commands("a").is_empty() && h.commands("b").is_empty());
    h.advance(Duration::from_secs(30));
    h.round();
    assert_eq!(h.class(1), Class::Under);
    h.round();
    let cmds: Vec<DatanodeCommand> = ["a", "b"].iter().flat_map(|n| h.commands(n)).collect();
    assert_eq!(cmds.len(), 1, "{cmds:?}");
    let DatanodeCommand::Replicate { targets, .. } = &cmds[0] else {
        panic!("{cmds:?}")
    };
    assert_eq!(targets[0].id, id("d"));
    h.added("d", rep(1, 1));
    assert_eq!(h.class(1), Class::Healthy);
}

/// The copy a round asked for: (source, target ids).
fn copy_of(h: &mut H, nodes: &[&str]) -> (String, Vec<String>) {
    let mut found = Vec::new();
    for n in nodes {
        for c in h.commands(n) {
            if let DatanodeCommand::Replicate { targets, .. } = c {
                found.push((
                    n.to_string(),
                    targets.iter().map(|t| t.id.0.clone()).collect(),
                ));
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

#[test]
fn a_copy_that_expires_is_retried_from_another_source_to_another_target() {
    let mut h = H::new(&[("a", 1), ("b", 2), ("c", 3), ("d", 0)]);
    h.block(1, 3, &["a", "b"]);
    h.advance(Duration::from_secs(11));
    h.round();
    h.round();
    assert_eq!(copy_of(&mut h, &["a", "b"]), ("a".into(), vec!["d".into()]));
    // Never done (`a` cannot reach `d`, say): planned again around both.
    let ttl = h.c.cfg.copy_ttl;
    h.advance(ttl);
    h.round();
    assert_eq!(copy_of(&mut h, &["a", "b"]), ("b".into(), vec!["c".into()]));
    h.added("c", rep(1, 1));
    assert_eq!(h.class(1), Class::Healthy);
    assert!(h.c.failed_copies.contains_key(&1));
    h.round();
    assert!(
        h.c.failed_copies.is_empty(),
        "a repaired block forgets its failures"
    );
}

#[test]
fn a_just_written_block_has_a_grace_period() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1)]);
    h.block(1, 3, &["a"]);
    assert_eq!(h.class(1), Class::Young);
    h.round();
    assert!(h.commands("a").is_empty());
    h.advance(Duration::from_secs(11));
    h.round();
    assert_eq!(h.class(1), Class::Under);
    h.round();
    assert_eq!(h.commands("a").len(), 1);
}

#[test]
fn orphans_and_stale_copies_are_deleted_but_never_newer_blocks() {
    let mut h = H::new(&[("a", 1), ("b", 1)]);
    h.block(5, 1, &["a"]);
    h.ns(NsEvent::BlockRemoved { id: 5 });
    let c = h.commands("a");
    assert_eq!(
        c,
        vec![DatanodeCommand::Delete {
            blocks: vec![(5, 1)]
        }]
    );
    // A replica of a block beyond the namespace's counter: from a newer
    // leader this node has not heard from. Kept.
    h.added("b", rep(1_000, 1));
    assert!(h.commands("b").is_empty());
    // A stale generation of a live block goes, once the block is
    // committed on a good replica (while it is open the old generation
    // may be all there is: a truncate cuts the new one from it).
    h.ns(NsEvent::BlockOpen {
        id: 6,
        gen: 3,
        replication: 1,
        block_size: 1 << 20,
    });
    h.added("b", rep(6, 2));
    assert!(h.commands("b").is_empty());
    h.added("a", rep(6, 3));
    h.ns(NsEvent::BlockCommitted {
        id: 6,
        gen: 3,
        len: 1 << 20,
        replication: 1,
    });
    assert_eq!(
        h.commands("b"),
        vec![DatanodeCommand::Delete {
            blocks: vec![(6, 2)]
        }]
    );
}

#[test]
fn excess_waits_for_every_full_report() {
    let mut h = H::new(&[("a", 1), ("b", 9), ("c", 2), ("d", 3)]);
    h.block(1, 3, &["a", "b", "c", "d"]);
    h.advance(Duration::from_secs(11));
    // A new term: nothing is deleted before every node reported again.
    h.c.become_leader(h.now);
    h.round();
    assert!(["a", "b", "c", "d"]
        .iter()
        .all(|n| h.commands(n).is_empty()));
    for n in ["a", "b", "c", "d"] {
        h.full_report(n, &[rep(1, 1)]);
    }
    h.round();
    assert_eq!(
        h.commands("b"),
        vec![DatanodeCommand::Delete {
            blocks: vec![(1, 1)]
        }]
    );
}

#[test]
fn the_last_corrupt_copies_are_kept_until_good_ones_exist() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1)]);
    h.block(1, 2, &["a", "b"]);
    h.advance(Duration::from_secs(11));
    for n in ["a", "b"] {
        assert!(h.c.incremental(&id(n), &[], &[], &[(1, 1)], h.now));
    }
    assert_eq!(h.class(1), Class::Corrupt);
    assert_eq!(h.c.blocks.health().corrupt, 1);
    for _ in 0..3 {
        h.round();
    }
    assert!(["a", "b", "c"].iter().all(|n| h.commands(n).is_empty()));
    // Good copies reach the factor elsewhere: now the corrupt ones may go.
    h.added("c", rep(1, 1));
    h.round();
    assert!(h.commands("a").is_empty(), "one good copy is not enough");
    h.c.blocks.get(1).unwrap();
    h.c.ns_event(
        &NsEvent::Replication {
            id: 1,
            replication: 1,
        },
        h.now,
    );
    h.round();
    assert_eq!(
        h.commands("a"),
        vec![DatanodeCommand::Delete {
            blocks: vec![(1, 1)]
        }]
    );
}

#[test]
fn a_decommissioning_node_drains_then_is_reported_done() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
    h.block(1, 3, &["a", "b", "c"]);
    h.advance(Duration::from_secs(11));
    h.ns(NsEvent::AdminState {
        id: id("a"),
        state: AdminState::Decommissioning,
    });
    let out = h.round();
    assert!(out.decommissioned.is_empty());
    let cmds: Vec<DatanodeCommand> = ["a", "b", "c"].iter().flat_map(|n| h.commands(n)).collect();
    assert_eq!(cmds.len(), 1, "{cmds:?} class {:?}", h.class(1));
    h.added("d", rep(1, 1));
    // Reported every round until the namespace records it.
    assert_eq!(h.round().decommissioned, vec![id("a")]);
    h.ns(NsEvent::AdminState {
        id: id("a"),
        state: AdminState::Decommissioned,
    });
    assert!(h.round().decommissioned.is_empty());
}

#[test]
fn lease_recovery_keeps_what_the_replicas_agree_on() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1)]);
    h.ns(NsEvent::BlockOpen {
        id: 9,
        gen: 4,
        replication: 3,
        block_size: 1 << 20,
    });
    let short = ReplicaReport {
        len: 10,
        ..rep(9, 4)
    };
    h.added("a", rep(9, 4));
    h.added("b", rep(9, 4));
    h.added("c", short);
    h.ns(NsEvent::LeaseOpened {
        holder: 1,
        file: 77,
    });
    assert!(h
        .c
        .expired_leases(h.now, Duration::from_secs(60))
        .is_empty());
    h.advance(Duration::from_secs(61));
    assert_eq!(
        h.c.expired_leases(h.now, Duration::from_secs(60)),
        vec![(1, 77)]
    );
    let f = OpenFile {
        path: "/f".into(),
        holder: 1,
        open_block: Some(tdfs_namespace::inode::Block {
            id: 9,
            gen: 4,
            len: 0,
            sha256: [0; 32],
        }),
        targets: vec![],
    };
    let r = h.c.recovery_for(&f);
    assert_eq!(r.expect, Some((9, 4)));
    assert_eq!(r.last.as_ref().map(|b| b.len), Some(1 << 20));
    assert!(!r.drop_last);
}

#[test]
fn incremental_state_agrees_with_a_full_recomputation() {
    let seed = tdfs_testkit::data::seed("TDFS_SEED", "incremental state");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let names = ["a", "b", "c", "d", "e"];
    let mut h = H::new(&names.iter().map(|n| (*n, 1)).collect::<Vec<_>>());
    // Rescans of a node's blocks span rounds, and changes arrive mid-walk.
    h.c.cfg.rescan_budget = 3;
    let mut gens = std::collections::BTreeMap::new();
    for step in 0..4000 {
        let n = names[rng.gen_range(0..names.len())];
        let b = rng.gen_range(1..60u64);
        match rng.gen_range(0..12) {
            0 => {
                let g = gens.get(&b).copied().unwrap_or(0) + 1;
                gens.insert(b, g);
                h.ns(NsEvent::BlockOpen {
                    id: b,
                    gen: g,
                    replication: rng.gen_range(1..4),
                    block_size: 1 << 20,
                });
            }
            1 if gens.contains_key(&b) => h.ns(NsEvent::BlockCommitted {
                id: b,
                gen: gens[&b],
                len: 1 << 20,
                replication: rng.gen_range(1..4),
            }),
            2 => {
                gens.remove(&b);
                h.ns(NsEvent::BlockRemoved { id: b });
            }
            3..=5 => {
                let g = gens.get(&b).copied().unwrap_or(1);
                let g = if rng.gen_bool(0.2) {
                    g.saturating_sub(1).max(1)
                } else {
                    g
                };
                h.added(n, rep(b, g));
            }
            6 => assert!(h.c.incremental(&id(n), &[], &[(b, 1)], &[], h.now)),
            7 => {
                let g = gens.get(&b).copied().unwrap_or(1);
                assert!(h.c.incremental(&id(n), &[], &[], &[(b, g)], h.now));
            }
            8 => h.c.gossip(&id(n), rng.gen_bool(0.5), h.now),
            9 => h.ns(NsEvent::Replication {
                id: b,
                replication: rng.gen_range(1..5),
            }),
            10 => h.ns(NsEvent::AdminState {
                id: id(n),
                state: if rng.gen_bool(0.7) {
                    AdminState::Normal
                } else {
                    AdminState::Decommissioning
                },
            }),
            _ => h.advance(Duration::from_secs(rng.gen_range(0..20))),
        }
        if step % 50 == 49 {
            h.round();
            // Let pending rescans finish (a decommissioning node's never
            // does: it starts again each round), then everything must
            // agree. At most 5 × 60 blocks, 3 per round.
            for _ in 0..101 {
                h.round();
            }
            h.c.blocks
                .check_consistency(&h.c.nodes)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
        }
    }
    let _ = h.t0;
}

#[test]
fn a_truncate_is_driven_from_the_old_replicas_and_committed_when_stored() {
    use crate::TruncateStep;
    use tdfs_namespace::Truncation;
    use tdfs_proto::meta::BlockInfo;
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]);
    h.block(1, 3, &["a", "b", "c"]);
    // In place: block 1 gets generation 2 (its old replicas become odd).
    h.ns(NsEvent::BlockOpen {
        id: 1,
        gen: 2,
        replication: 3,
        block_size: 1 << 20,
    });
    let t = Truncation {
        source: BlockInfo {
            id: 1,
            gen: 1,
            len: 1 << 20,
            sha256: None,
        },
        target: 1,
        gen: 2,
        len: 1000,
    };
    // A full report naming the old generation does not delete it.
    h.full_report("c", &[rep(1, 1)]);
    let step = h.c.drive_truncate(&t, 3, h.now);
    assert_eq!(step, TruncateStep::Waiting { asked: 3, done: 0 });
    for n in ["a", "b", "c"] {
        let cmds = h.commands(n);
        assert!(
            matches!(
                &cmds[..],
                [DatanodeCommand::Truncate {
                    target: 1,
                    gen: 2,
                    len: 1000,
                    ..
                }]
            ),
            "{n}: {cmds:?}"
        );
    }
    assert!(h.commands("d").is_empty());
    // Not sent again before the TTL.
    h.c.drive_truncate(&t, 3, h.now);
    assert!(h.commands("a").is_empty());
    let cut = |b| ReplicaReport {
        id: 1,
        gen: 2,
        len: 1000,
        sha256: [b; 32],
    };
    h.added("a", cut(9));
    h.added("b", cut(9));
    assert!(matches!(
        h.c.drive_truncate(&t, 3, h.now),
        TruncateStep::Waiting { done: 2, .. }
    ));
    // The third holder dies: the two cut replicas are all there can be.
    h.c.gossip(&id("c"), true, h.now);
    h.advance(Duration::from_secs(40));
    h.round();
    let TruncateStep::Commit(b) = h.c.drive_truncate(&t, 3, h.now) else {
        panic!("not ready")
    };
    assert_eq!((b.id, b.gen, b.len, b.sha256), (1, 2, 1000, Some([9; 32])));
    // A holder that keeps failing is waited for two copy TTLs at most.
    h.block(3, 3, &["a", "b", "d"]);
    let t3 = Truncation {
        source: BlockInfo { id: 3, ..t.source },
        target: 3,
        ..t.clone()
    };
    h.ns(NsEvent::BlockOpen {
        id: 3,
        gen: 2,
        replication: 3,
        block_size: 1 << 20,
    });
    h.c.drive_truncate(&t3, 3, h.now);
    h.added("a", ReplicaReport { id: 3, ..cut(9) });
    assert!(matches!(
        h.c.drive_truncate(&t3, 3, h.now),
        TruncateStep::Waiting { asked: 2, done: 1 }
    ));
    h.advance(Duration::from_secs(41));
    assert!(matches!(
        h.c.drive_truncate(&t3, 3, h.now),
        TruncateStep::Commit(_)
    ));
    h.c.truncate_done(&t3);
}

#[test]
fn the_gossip_table_is_applied_level_triggered() {
    use crate::liveness::Liveness::{Dead, Live, Stale};
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1)]);
    let s = Duration::from_secs;
    let live = |h: &H, n: &str| h.c.liveness_of(&id(n), h.now).unwrap();
    // a: gossip's table says down but the event was lost; b: alive; c:
    // gossip never heard of it and it calls no more.
    let table = |n: &DatanodeId| match n.0.as_str() {
        "a" => Some(true),
        "b" => Some(false),
        _ => None,
    };
    h.advance(s(1));
    h.c.gossip_table(table, h.now);
    assert_eq!(
        (live(&h, "a"), live(&h, "b"), live(&h, "c")),
        (Stale, Live, Live)
    );
    h.advance(s(3));
    h.c.gossip_table(table, h.now);
    // c is quiet for the stale period: down since its last call.
    assert_eq!(
        (live(&h, "a"), live(&h, "b"), live(&h, "c")),
        (Stale, Live, Stale)
    );
    h.advance(s(27));
    h.c.gossip_table(table, h.now);
    assert_eq!(live(&h, "c"), Dead, "30 s after its last call");
    h.advance(s(2));
    assert_eq!(live(&h, "a"), Dead);
    // a is alive again in the table; c calls again.
    h.c.contact(&id("c"), h.now);
    h.c.gossip_table(|n| if n.0 == "c" { None } else { Some(false) }, h.now);
    assert_eq!(
        (live(&h, "a"), live(&h, "b"), live(&h, "c")),
        (Live, Live, Live)
    );
}

/// Block 5's only replica on "a", then the block removed from the
/// namespace: the leader queues its deletion on "a".
fn a_removed_block_on_a() -> H {
    let mut h = H::new(&[("a", 1), ("b", 1)]);
    h.block(5, 1, &["a"]);
    h.round();
    h.ns(NsEvent::BlockRemoved { id: 5 });
    h
}

#[test]
fn a_deletion_whose_command_was_lost_is_sent_again_until_seen_done() {
    let mut h = a_removed_block_on_a();
    let del = vec![DatanodeCommand::Delete {
        blocks: vec![(5, 1)],
    }];
    // Taken by a poll whose answer is lost: nothing reports it done.
    assert_eq!(h.commands("a"), del);
    let ttl = h.c.cfg.copy_ttl;
    h.advance(ttl / 2);
    assert_eq!(h.round().resent, 0);
    assert!(h.commands("a").is_empty(), "not before its deadline");
    h.advance(ttl / 2);
    assert_eq!(h.round().resent, 1);
    assert_eq!(
        h.commands("a"),
        del,
        "the same replica and generation again"
    );
    assert_eq!(h.round().resent, 0, "once per deadline");
    assert!(h.commands("a").is_empty());
    // Lost again, but this time still queued when the deadline passes:
    // queued once, not twice.
    h.advance(ttl);
    assert_eq!(h.round().resent, 1);
    h.advance(ttl);
    assert_eq!(h.round().resent, 1);
    assert_eq!(h.commands("a"), del);
    // Seen done: never sent again, and its bytes are no longer subtracted.
    assert!(h.c.incremental(&id("a"), &[], &[(5, 1)], &[], h.now));
    for _ in 0..3 {
        h.advance(ttl);
        assert_eq!(h.round().resent, 0);
    }
    assert!(h.commands("a").is_empty());
    assert!(h.c.deleting.is_empty() && h.c.delete_deadlines.is_empty());
    assert_eq!(h.c.nodes.get(h.c.nodes.ix(&id("a")).unwrap()).deleting, 0);
}

#[test]
fn a_full_report_voids_deletions_in_flight_and_their_deadlines() {
    let mut h = a_removed_block_on_a();
    assert_eq!(h.commands("a").len(), 1);
    h.full_report("a", &[]);
    let ttl = h.c.cfg.copy_ttl;
    h.advance(ttl);
    assert_eq!(h.round().resent, 0);
    assert!(h.commands("a").is_empty());
    assert!(h.c.delete_deadlines.is_empty());
}

/// `n` blocks from `first` on, each of replication `r` on `on`, past their
/// grace.
fn blocks_on(h: &mut H, first: u64, n: u64, r: u16, on: &[&str]) {
    for b in first..first + n {
        h.block(b, r, on);
    }
    h.advance(Duration::from_secs(11));
    h.round();
}

#[test]
fn a_node_change_rescans_only_that_nodes_blocks() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]);
    blocks_on(&mut h, 1, 3000, 3, &["a", "b", "c"]);
    blocks_on(&mut h, 5001, 10, 2, &["d", "e"]);
    assert!(!h.c.blocks.rescanning());
    // Five blocks a round: a rescan of the whole map would take 602
    // rounds, one of d's ten blocks takes two.
    h.c.cfg.rescan_budget = 5;
    h.c.gossip(&id("d"), true, h.now);
    h.advance(Duration::from_secs(31));
    h.c.tick(h.now);
    assert!(h.c.blocks.rescanning_node(h.c.nodes.ix(&id("d")).unwrap()));
    h.c.tick(h.now);
    assert!(
        !h.c.blocks.rescanning(),
        "d's blocks are done in two rounds"
    );
    assert!((5001..5011).all(|b| h.class(b) == Class::Under));
    assert!((1..3001).all(|b| h.class(b) == Class::Healthy));
    h.c.blocks.check_consistency(&h.c.nodes).unwrap();
}

#[test]
fn a_node_decommissioned_during_a_rescan_of_it_is_drained_only_after_a_whole_pass() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]);
    // d's first five blocks need d's copy; its last five do not.
    blocks_on(&mut h, 1, 5, 2, &["d", "e"]);
    blocks_on(&mut h, 6, 5, 1, &["d", "e"]);
    h.c.cfg.rescan_budget = 5;
    // d goes stale: a pass over its blocks starts and covers 1..=5.
    h.c.gossip(&id("d"), true, h.now);
    h.advance(Duration::from_secs(4));
    assert!(h.round().decommissioned.is_empty());
    let d = h.c.nodes.ix(&id("d")).unwrap();
    assert!(h.c.blocks.rescanning_node(d));
    // Decommissioned now: the rest of that pass (6..=10, all satisfied
    // without d) must not report d drained; the next whole pass finds 1..=5.
    h.c.gossip(&id("d"), false, h.now);
    h.ns(NsEvent::AdminState {
        id: id("d"),
        state: AdminState::Decommissioning,
    });
    for round in 0..6 {
        let out = h.round();
        assert!(out.decommissioned.is_empty(), "round {round}: {out:?}");
    }
    assert!((1..=5).all(|b| h.class(b) == Class::Under));
    // Once 1..=5 have another replica, a whole pass drains d.
    for b in 1..=5 {
        h.added("a", rep(b, 1));
    }
    let mut drained = false;
    for _ in 0..4 {
        drained |= h.round().decommissioned == vec![id("d")];
    }
    assert!(drained);
}

#[test]
fn the_balancer_searches_the_heavy_nodes_blocks_not_the_whole_map() {
    let mut h = H::new(&[("a", 8), ("b", 1), ("c", 1), ("d", 1)]);
    blocks_on(&mut h, 1, 2000, 2, &["b", "c"]);
    blocks_on(&mut h, 5001, 10, 2, &["a", "b"]);
    // Five blocks a round: a search of the whole map from its start would
    // not reach a's blocks for 400 rounds.
    h.c.cfg.rescan_budget = 5;
    let drained = h.c.tick(h.now);
    let out = h.c.round(h.now, Some(0.1), drained);
    assert!(out.copies > 0, "{out:?}");
    let moves: Vec<DatanodeCommand> = ["a", "b"].iter().flat_map(|n| h.commands(n)).collect();
    assert!(
        moves.iter().any(|c| matches!(c, DatanodeCommand::Replicate { block, .. } if (5001..5011).contains(&block.id))),
        "{moves:?}"
    );
}

#[test]
fn a_change_during_a_rescan_costs_one_more_circle_not_another_pass() {
    let mut h = H::new(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]);
    blocks_on(&mut h, 1, 10, 2, &["d", "e"]);
    let d = h.c.nodes.ix(&id("d")).unwrap();
    h.c.cfg.rescan_budget = 5;
    h.c.gossip(&id("d"), true, h.now);
    h.c.tick(h.now); // stale: blocks 1..=5 walked
    assert!(h.c.blocks.rescanning_node(d));
    h.c.gossip(&id("d"), false, h.now);
    h.c.tick(h.now); // live again: 6..=10, then around to 1..=5
    assert!(h.c.blocks.rescanning_node(d));
    h.c.tick(h.now);
    assert!(
        !h.c.blocks.rescanning(),
        "one circle after the latest change"
    );
    assert!((1..=10).all(|b| h.class(b) == Class::Healthy));
    h.c.blocks.check_consistency(&h.c.nodes).unwrap();
}
