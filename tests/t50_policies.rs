//! The leader's block policies end to end on an in-process cluster:
//! re-replication after a datanode dies, excess removal when it returns,
//! integrity repair, balancing, decommissioning, failover during
//! re-replication, and no storm for a flapping datanode.

use std::sync::Arc;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_local::{LocalCluster, LocalConfig};
use tdfs_proto::meta::{AdminRequest, AdminResponse};
use tdfs_testkit::files::*;
use tdfs_testkit::procs;
use tdfs_testkit::procs::wait_for;

const BS: u64 = 1 << 20;

/// Fast liveness: stale after 600 ms of silence, dead after `dead_ms`.
fn fast(dead_ms: u64) -> impl Fn(&mut LocalConfig) {
    move |cfg: &mut LocalConfig| {
        cfg.tweak_meta = Some(Arc::new(move |m| {
            m.superuser = "root".into();
            m.heartbeat_ms = 50;
            m.election_min_ms = 150;
            m.election_max_ms = 300;
            m.stale_after_ms = 600;
            m.dead_after_ms = dead_ms;
            m.balance_threshold_pct = None;
        }));
        cfg.tweak_datanode = Some(Arc::new(|d| {
            d.heartbeat = Duration::from_millis(150);
            d.scan.pass_interval = Duration::from_millis(200);
            d.scan.bytes_per_sec = 1 << 30;
        }));
    }
}

/// Waits until fsck of `/` is HEALTHY with no under- or over-replication.
async fn wait_healthy(c: &MetaClient, what: &str, secs: u64) {
    wait_for(what, Duration::from_secs(secs), || async {
        let f = c.fsck("/").await.ok()?;
        (f.missing == 0 && f.corrupt == 0 && f.under_replicated == 0 && f.over_replicated == 0)
            .then_some(())
    })
    .await
}

/// Replicas per block among running datanodes.
fn replica_counts(cl: &LocalCluster) -> std::collections::HashMap<u64, usize> {
    let mut m = std::collections::HashMap::new();
    for d in cl.datanodes.iter().filter_map(|d| d.handle.as_ref()) {
        for r in d.store.replicas() {
            *m.entry(r.id).or_default() += 1;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_datanode_is_replaced_and_its_return_removes_the_excess() {
    let (_d, mut cl) = cluster(4, BS, fast(1500)).await;
    let c = cl.client("root");
    let data = bytes(21, 8 * BS as usize);
    write(&c, "/p/a", &data, 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    cl.stop_datanode(1).await;
    // Stale at once, dead after the grace period, then copied back to three.
    wait_for(
        "re-replication to three live replicas",
        Duration::from_secs(30),
        || async {
            let f = c.fsck("/").await.ok()?;
            let lbs = c.block_locations("/p/a", 0, u64::MAX).await.ok()?;
            let dead = cl.datanodes[1].id.clone().unwrap();
            let ok = lbs
                .blocks
                .iter()
                .all(|b| b.locations.len() == 3 && b.locations.iter().all(|l| l.id != dead));
            (ok && f.under_replicated == 0 && f.missing == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        sha(&read(&c, "/p/a", 0, data.len() as u64).await),
        sha(&data)
    );
    // The node returns with its old replicas: the surplus is deleted.
    cl.start_datanode(1).await.unwrap();
    wait_for(
        "excess replicas removed",
        Duration::from_secs(30),
        || async {
            let counts = replica_counts(&cl);
            let f = c.fsck("/").await.ok()?;
            (counts.len() == 8 && counts.values().all(|n| *n == 3) && f.over_replicated == 0)
                .then_some(())
        },
    )
    .await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_is_found_and_the_replica_replaced() {
    let (dir, cl) = cluster(4, BS, fast(30_000)).await;
    let c = cl.client("root");
    let data = bytes(22, BS as usize);
    write(&c, "/s/f", &data, 1 << 20).await;
    let lbs = wait_replicas(&c, "/s/f", 3).await;
    let b = lbs.blocks[0].block.clone();
    let victim = lbs.blocks[0].locations[0].id.clone();
    let slot = cl
        .datanodes
        .iter()
        .position(|d| d.id.as_ref() == Some(&victim))
        .unwrap();
    let f = dir
        .path()
        .join(format!("dn-{}", slot + 1))
        .join("current")
        .join(format!("blk_{}_{}.data", b.id, b.gen));
    let mut raw = std::fs::read(&f).unwrap();
    raw[777] ^= 1;
    std::fs::write(&f, &raw).unwrap();
    // Reads are right whatever the scanner has done so far.
    assert_eq!(read(&c, "/s/f", 0, data.len() as u64).await, data);
    // The scanner drops the bad replica; the leader copies a good one back.
    wait_for(
        "the corrupt replica replaced",
        Duration::from_secs(30),
        || async {
            let lbs = c.block_locations("/s/f", 0, u64::MAX).await.ok()?;
            let locs = &lbs.blocks[0].locations;
            let victim_gone = cl.datanodes[slot]
                .handle
                .as_ref()
                .is_some_and(|h| h.store.get(b.id).is_none_or(|r| r.sha256 == sha(&data)));
            (locs.len() == 3 && victim_gone).then_some(())
        },
    )
    .await;
    assert_eq!(read(&c, "/s/f", 0, data.len() as u64).await, data);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_datanode_inside_the_grace_period_costs_nothing() {
    let (_d, mut cl) = cluster(4, BS, fast(10_000)).await;
    let c = cl.client("root");
    write(&c, "/flap/f", &bytes(23, 6 * BS as usize), 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    let before = replica_counts(&cl);
    let leader = cl.leader().unwrap();
    for _ in 0..3 {
        cl.stop_datanode(2).await;
        // Long enough to be stale, well inside the 10 s grace period.
        let down = std::time::Instant::now();
        while down.elapsed() < Duration::from_millis(1200) {
            assert!(
                leader.inspect(|_, v| v.copies_in_flight() == 0),
                "a copy was scheduled for a node inside its grace period"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        cl.start_datanode(2).await.unwrap();
        cl.wait_ready(Duration::from_secs(10)).await.unwrap();
    }
    assert!(leader.inspect(|_, v| v.copies_in_flight() == 0));
    assert_eq!(replica_counts(&cl), before);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_datanode_is_filled_by_the_balancer() {
    let (_d, mut cl) = cluster(3, BS, |cfg| {
        fast(30_000)(cfg);
        cfg.datanode_capacity = Some(64 << 20);
    })
    .await;
    let c = cl.client("root");
    for i in 0..3 {
        write(
            &c,
            &format!("/bal/f{i}"),
            &bytes(30 + i, 10 * BS as usize),
            1 << 20,
        )
        .await;
    }
    cl.add_datanode().await.unwrap();
    cl.wait_ready(Duration::from_secs(10)).await.unwrap();
    let r = c
        .admin(AdminRequest::Balance {
            threshold_bp: 1000,
            wait_secs: 60,
        })
        .await
        .unwrap();
    assert_eq!(
        r,
        AdminResponse::Balanced {
            balanced: true,
            moves: match r {
                AdminResponse::Balanced { moves, .. } => moves,
                _ => 0,
            }
        }
    );
    wait_healthy(&c, "health after balancing", 30).await;
    // Every node within 10 points of the average, by what the stores hold.
    let used: Vec<f64> = cl
        .datanodes
        .iter()
        .filter_map(|d| d.handle.as_ref())
        .map(|h| h.store.usage().used as f64 / (64u64 << 20) as f64)
        .collect();
    let avg = used.iter().sum::<f64>() / used.len() as f64;
    assert!(
        used.iter().all(|u| (u - avg).abs() <= 0.10 + 0.02),
        "{used:?}"
    );
    assert!(used[3] > 0.0, "the new node got nothing: {used:?}");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_drains_then_the_node_can_go() {
    let (_d, mut cl) = cluster(4, BS, fast(1500)).await;
    let c = cl.client("root");
    let data = bytes(24, 6 * BS as usize);
    write(&c, "/dec/f", &data, 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    let id = cl.datanodes[0].id.clone().unwrap();
    c.admin(AdminRequest::Decommission { id: id.clone() })
        .await
        .unwrap();
    wait_for(
        "the node to be decommissioned",
        Duration::from_secs(30),
        || async {
            let AdminResponse::Report(r) = c.admin(AdminRequest::Report).await.ok()? else {
                return None;
            };
            let d = r.datanodes.iter().find(|d| d.id == id)?;
            (d.admin_state == "decommissioned").then_some(())
        },
    )
    .await;
    // It kept serving reads while draining; now it can be killed.
    cl.stop_datanode(0).await;
    let f = c.fsck("/").await.unwrap();
    assert_eq!(f.under_replicated, 0, "{f:?}");
    assert_eq!(f.missing, 0);
    assert_eq!(read(&c, "/dec/f", 0, data.len() as u64).await, data);
    // The admin state survives a leader failover.
    let leader = cl.leader().unwrap().id();
    cl.stop_meta(leader).await;
    wait_for(
        "a new leader that knows",
        Duration::from_secs(20),
        || async {
            let AdminResponse::Report(r) = c.admin(AdminRequest::Report).await.ok()? else {
                return None;
            };
            (r.leader != Some(leader)
                && r.datanodes
                    .iter()
                    .any(|d| d.id == id && d.admin_state == "decommissioned"))
            .then_some(())
        },
    )
    .await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_replication_survives_a_leader_failover() {
    let (_d, mut cl) = cluster(4, BS, fast(1000)).await;
    let c = cl.client("root");
    let data = bytes(25, 20 * BS as usize);
    write(&c, "/fo/f", &data, 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    cl.stop_datanode(3).await;
    // The leader dies as soon as it has declared the datanode dead (when it
    // starts copying) or has copies in flight, whichever it is seen at first.
    let victim = cl.datanodes[3].id.clone().unwrap();
    let leader = wait_for(
        "re-replication to start",
        Duration::from_secs(20),
        || async {
            let l = cl.leader()?;
            let (live, copies) = l.inspect(|_, v| {
                (
                    v.liveness_of(&victim, std::time::Instant::now()),
                    v.copies_in_flight(),
                )
            });
            let dead = live == Some(tdfs_policy::Liveness::Dead);
            (dead || copies > 0).then(|| l.id())
        },
    )
    .await;
    cl.stop_meta(leader).await;
    wait_healthy(&c, "health under the new leader", 40).await;
    assert_ne!(cl.leader().unwrap().id(), leader);
    assert_eq!(
        sha(&read(&c, "/fo/f", 0, data.len() as u64).await),
        sha(&data)
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_marks_a_killed_datanode_stale_fast() {
    // Heartbeat silence alone would take a minute: only gossip can be this quick.
    let (_d, mut cl) = cluster(4, BS, |cfg| {
        cfg.tweak_meta = Some(Arc::new(|m| {
            m.superuser = "root".into();
            m.stale_after_ms = 60_000;
            m.dead_after_ms = 120_000;
        }));
    })
    .await;
    let leader = cl.leader().unwrap();
    let id = cl.datanodes[2].id.clone().unwrap();
    wait_live(&leader, &id).await;
    let killed = std::time::Instant::now();
    cl.stop_datanode(2).await;
    let detected = wait_for(
        "gossip to report the datanode down",
        Duration::from_secs(10),
        || async {
            let l = leader.inspect(|_, v| v.liveness_of(&id, std::time::Instant::now()));
            (l == Some(tdfs_policy::Liveness::Stale)).then(|| killed.elapsed())
        },
    )
    .await;
    println!("kill -> stale on the leader: {} ms", detected.as_millis());
    // The figure to reach is 2 s (measured 1.1-1.5 s); the bound leaves room
    // for a loaded CI machine running the other tests at the same time.
    assert!(detected <= Duration::from_secs(5), "took {detected:?}");
    // Back within the grace period: live again at once, nothing copied.
    cl.start_datanode(2).await.unwrap();
    wait_live(&leader, &id).await;
    cl.shutdown().await;
}

/// Waits (10 s) until the leader's gossip view has `id` live.
async fn wait_live(leader: &tdfs_meta_raft::MetaNode, id: &tdfs_proto::DatanodeId) {
    wait_for("the datanode live", Duration::from_secs(10), || async {
        let l = leader.inspect(|_, v| v.liveness_of(id, std::time::Instant::now()));
        (l == Some(tdfs_policy::Liveness::Live)).then_some(())
    })
    .await;
}

/// Gossip passes the in-process cluster's fault table like RPC and block
/// streams do: a datanode the table isolates (its process untouched) goes
/// stale on the leader within seconds — no other channel reports its
/// liveness — and is live again once the table heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datanode_the_network_isolates_goes_stale_and_returns_after_the_heal() {
    let (_d, cl) = cluster(4, BS, |cfg| {
        cfg.tweak_meta = Some(Arc::new(|m| {
            m.superuser = "root".into();
            m.stale_after_ms = 60_000;
            m.dead_after_ms = 120_000;
        }));
    })
    .await;
    let leader = cl.leader().unwrap();
    let id = cl.datanodes[1].id.clone().unwrap();
    wait_live(&leader, &id).await;
    let cut = std::time::Instant::now();
    cl.net.isolate(&id.0);
    let detected = wait_for(
        "gossip to report the isolated datanode down",
        Duration::from_secs(10),
        || async {
            let l = leader.inspect(|_, v| v.liveness_of(&id, std::time::Instant::now()));
            (l == Some(tdfs_policy::Liveness::Stale)).then(|| cut.elapsed())
        },
    )
    .await;
    println!(
        "isolate -> stale on the leader: {} ms",
        detected.as_millis()
    );
    cl.net.heal();
    wait_live(&leader, &id).await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setrep_down_trims_and_up_copies() {
    let (_d, cl) = cluster(4, BS, fast(30_000)).await;
    let c = cl.client("root");
    let data = bytes(26, 4 * BS as usize);
    write(&c, "/rep/f", &data, 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    let set = |n: u16| tdfs_proto::meta::MetaRequest::SetReplication {
        path: "/rep/f".into(),
        replication: n,
    };
    c.meta(set(2)).await.unwrap();
    wait_for(
        "two replicas per block",
        Duration::from_secs(20),
        || async {
            let counts = replica_counts(&cl);
            (counts.len() == 4 && counts.values().all(|n| *n == 2)).then_some(())
        },
    )
    .await;
    c.meta(set(4)).await.unwrap();
    wait_for(
        "four replicas per block",
        Duration::from_secs(20),
        || async {
            let counts = replica_counts(&cl);
            (counts.len() == 4 && counts.values().all(|n| *n == 4)).then_some(())
        },
    )
    .await;
    wait_healthy(&c, "health at four", 10).await;
    assert_eq!(read(&c, "/rep/f", 0, data.len() as u64).await, data);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_every_replica_corrupt_is_reported_and_never_served() {
    procs::expect_corrupt_replicas();
    let (dir, cl) = cluster(4, BS, fast(30_000)).await;
    let c = cl.client("root");
    write(&c, "/all/f", &bytes(27, BS as usize), 1 << 20).await;
    let lbs = wait_replicas(&c, "/all/f", 3).await;
    let b = lbs.blocks[0].block.clone();
    for loc in &lbs.blocks[0].locations {
        let slot = cl
            .datanodes
            .iter()
            .position(|d| d.id.as_ref() == Some(&loc.id))
            .unwrap();
        let f = dir
            .path()
            .join(format!("dn-{}", slot + 1))
            .join("current")
            .join(format!("blk_{}_{}.data", b.id, b.gen));
        let mut raw = std::fs::read(&f).unwrap();
        raw[4096] ^= 0x10;
        std::fs::write(&f, &raw).unwrap();
    }
    wait_for(
        "fsck to call the block corrupt",
        Duration::from_secs(20),
        || async {
            let f = c.fsck("/").await.ok()?;
            (f.corrupt == 1 && f.bad_files == vec!["/all/f".to_string()]).then_some(())
        },
    )
    .await;
    let mut out = Vec::new();
    let r = tdfs_client::read_range(&c, "/all/f", 0, BS, &mut out).await;
    assert!(r.is_err(), "a block with no good replica was served");
    cl.shutdown().await;
}

/// A datanode's admin state as the leader reports it.
async fn state(c: &MetaClient, id: &tdfs_proto::DatanodeId) -> Option<String> {
    let AdminResponse::Report(r) = c.admin(AdminRequest::Report).await.ok()? else {
        return None;
    };
    r.datanodes
        .iter()
        .find(|d| d.id == *id)
        .map(|d| d.admin_state.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recommission_returns_a_node_and_trims_the_surplus() {
    let (_d, cl) = cluster(4, BS, fast(30_000)).await;
    let c = cl.client("root");
    write(&c, "/rec/f", &bytes(28, 4 * BS as usize), 1 << 20).await;
    wait_healthy(&c, "initial health", 10).await;
    let id = cl.datanodes[1].id.clone().unwrap();
    c.admin(AdminRequest::Decommission { id: id.clone() })
        .await
        .unwrap();
    wait_for("decommissioned", Duration::from_secs(30), || async {
        (state(&c, &id).await? == "decommissioned").then_some(())
    })
    .await;
    c.admin(AdminRequest::Recommission { id: id.clone() })
        .await
        .unwrap();
    assert_eq!(state(&c, &id).await.unwrap(), "normal");
    // Its replicas count again: every block is back at exactly three.
    wait_for("the surplus trimmed", Duration::from_secs(30), || async {
        let counts = replica_counts(&cl);
        let f = c.fsck("/").await.ok()?;
        (counts.values().all(|n| *n == 3) && f.over_replicated == 0).then_some(())
    })
    .await;
    cl.shutdown().await;
}
