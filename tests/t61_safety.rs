//! Data safety end to end: a deposed leader that still reaches the
//! datanodes destroys nothing (its stale-term commands are refused), a
//! block whose every replica is corrupt keeps them all and is listed by
//! `tdfs fsck -list-corruptfileblocks`, and a leader whose driver task
//! panics steps down while the cluster keeps serving.
//!
//! Each test fails on the bug it guards against: run it with
//! `TDFS_BUGS=skip-fencing` or `TDFS_BUGS=delete-last-corrupt`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_client::{ClientConfig, CreateOptions, FileWriter, MetaClient};
use tdfs_local::{LocalCluster, LocalConfig};
use tdfs_proto::meta::{AdminRequest, AdminResponse, MetaRequest};
use tdfs_proto::DatanodeId;
use tdfs_testkit::files::*;
use tdfs_testkit::procs;
use tdfs_testkit::procs::{tdfs_bin, wait_for, MetaProcs};

const BS: u64 = 1 << 20;

/// Fast timers; the balancer off so that nothing but the test moves data.
fn fast(cfg: &mut LocalConfig) {
    cfg.tweak_meta = Some(Arc::new(|m| {
        m.superuser = "root".into();
        m.heartbeat_ms = 50;
        m.election_min_ms = 150;
        m.election_max_ms = 300;
        m.stale_after_ms = 600;
        m.dead_after_ms = 30_000;
        m.balance_threshold_pct = None;
    }));
    cfg.tweak_datanode = Some(Arc::new(|d| {
        d.heartbeat = Duration::from_millis(150);
        d.scan.pass_interval = Duration::from_millis(200);
        d.scan.bytes_per_sec = 1 << 30;
    }));
}

async fn write_rep(c: &Arc<MetaClient>, path: &str, data: &[u8], replication: u16) {
    let opts = CreateOptions {
        create_parents: true,
        replication: Some(replication),
        ..Default::default()
    };
    let mut w = FileWriter::create(c.clone(), path, opts).await.unwrap();
    w.write(data).await.unwrap();
    assert_eq!(w.close().await.unwrap(), data.len() as u64);
}

/// Finalized replicas per block on the running datanodes.
fn replica_counts(cl: &LocalCluster) -> HashMap<u64, usize> {
    let mut m = HashMap::new();
    for d in cl.datanodes.iter().filter_map(|d| d.handle.as_ref()) {
        for r in d.store.replicas() {
            *m.entry(r.id).or_default() += 1;
        }
    }
    m
}

/// `command_fenced` events published by the datanodes so far.
fn fenced_events(cl: &LocalCluster) -> usize {
    cl.datanodes
        .iter()
        .filter_map(|d| d.handle.as_ref())
        .map(|h| {
            h.events
                .since(0, 100_000)
                .iter()
                .filter(|e| e.kind.name() == "command_fenced")
                .count()
        })
        .sum()
}

/// The term in a datanode's durable fence file.
fn fence_term(cl: &LocalCluster, slot: usize) -> u64 {
    std::fs::read_to_string(cl.datanodes[slot].dir.join("fence"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The leader among `ids`, ready, with its term.
fn new_leader(cl: &LocalCluster, ids: &[u64]) -> Option<(u64, u64)> {
    ids.iter().find_map(|id| {
        let n = &cl.metas[id].as_ref()?.node;
        let term = n.raft().metrics().borrow().current_term;
        (n.is_leader() && n.leader_ready()).then_some((*id, term))
    })
}

/// A client that talks only to `ids` (not to the partitioned old leader).
fn client_of(cl: &LocalCluster, ids: &[u64]) -> Arc<MetaClient> {
    let addrs = ids.iter().map(|i| cl.meta_addrs[i].clone()).collect();
    let mut cfg = ClientConfig::new(addrs, "root");
    cfg.connector = tdfs_rpc::Connector::filtered("client", cl.net.clone());
    Arc::new(MetaClient::new(cfg).unwrap())
}

/// Checks that no block lost a replica since the last look: while the
/// new leader only adds replicas, any loss is the deposed leader's doing.
fn check_no_loss(cl: &LocalCluster, high: &mut HashMap<u64, usize>) {
    let now = replica_counts(cl);
    for (b, h) in high.iter_mut() {
        let n = now.get(b).copied().unwrap_or(0);
        assert!(
            n >= *h,
            "block {b} went from {h} replicas to {n}: the deposed leader destroyed a replica"
        );
        *h = n;
    }
    for (b, n) in now {
        high.entry(b).or_insert(n);
    }
}

/// A leader cut off from the other metadata nodes, which can still reach
/// every datanode and (with its own leadership check skipped by a
/// failpoint, as if it confirmed just before the cut) sends them deletions
/// of the surplus the new leader creates: the datanodes know the new term
/// and refuse every one (`command_fenced`); no replica is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_old_leader_destroys_nothing() {
    let (_d, cl) = cluster(5, BS, fast).await;
    let c = cl.client("root");
    write_rep(&c, "/fence/a", &bytes(61, 3 * BS as usize), 2).await;
    write_rep(&c, "/fence/b", &bytes(62, 2 * BS as usize), 3).await;
    wait_for("initial health", Duration::from_secs(20), || async {
        let f = c.fsck("/").await.ok()?;
        let counts = replica_counts(&cl);
        (counts.len() == 5 && f.under_replicated == 0 && f.over_replicated == 0).then_some(())
    })
    .await;
    let old = cl.leader().unwrap();
    let old_id = old.id();
    let old_term = old.raft().metrics().borrow().current_term;
    let others: Vec<u64> = cl
        .meta_addrs
        .keys()
        .copied()
        .filter(|i| *i != old_id)
        .collect();
    fail::cfg("meta::skip-leader-confirm", "return").unwrap();
    let names: Vec<String> = others.iter().map(|i| format!("meta-{i}")).collect();
    cl.net.partition(&[format!("meta-{old_id}")], &names);
    let (new_id, new_term) = wait_for("a new leader", Duration::from_secs(20), || async {
        new_leader(&cl, &others).filter(|(_, t)| *t > old_term)
    })
    .await;
    println!(
        "old leader meta-{old_id} (term {old_term}), new leader meta-{new_id} (term {new_term})"
    );
    // Every datanode learns the new term from the new leader's first answer.
    wait_for(
        "every fence at the new term",
        Duration::from_secs(20),
        || async {
            (0..cl.datanodes.len())
                .all(|i| fence_term(&cl, i) >= new_term)
                .then_some(())
        },
    )
    .await;
    let c2 = client_of(&cl, &others);
    let mut high = replica_counts(&cl);
    c2.meta(MetaRequest::SetReplication {
        path: "/fence/a".into(),
        replication: 4,
    })
    .await
    .unwrap();
    let lbs = c2.block_locations("/fence/b", 0, u64::MAX).await.unwrap();
    let victim: DatanodeId = lbs.blocks[0].locations[0].id.clone();
    c2.admin(AdminRequest::Decommission { id: victim.clone() })
        .await
        .unwrap();
    // The new leader's work completes; the old one keeps seeing a surplus
    // (replication 2 and 3 in its stale log) and keeps trying to delete it.
    let deadline = Instant::now() + Duration::from_secs(40);
    // Once the new leader is done and a stale batch was refused, keep
    // watching for more of the old leader's attempts (each one must be
    // refused without a loss) until three were seen or 5 s passed.
    let mut done_at: Option<Instant> = None;
    // The old leader keeps running policy rounds: each is an attempt.
    let mut old_rounds = old.policy_rounds();
    loop {
        check_no_loss(&cl, &mut high);
        let a = c2.block_locations("/fence/a", 0, u64::MAX).await;
        let a_done = a.is_ok_and(|l| l.blocks.iter().all(|b| b.locations.len() >= 4));
        let dec = matches!(c2.admin(AdminRequest::Report).await,
            Ok(AdminResponse::Report(r)) if r.datanodes.iter().any(|d| d.id == victim && d.admin_state == "decommissioned"));
        let fenced = fenced_events(&cl);
        if a_done && dec && fenced >= 1 {
            done_at.get_or_insert_with(Instant::now);
        }
        if done_at.is_some_and(|t| fenced >= 3 || t.elapsed() > Duration::from_secs(5)) {
            println!("new leader done; {fenced} stale-term batches refused");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: /fence/a at 4: {a_done}, decommissioned: {dec}, fenced batches: {fenced}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), old_rounds.changed()).await;
    }
    // Four more of the deposed leader's rounds: still nothing lost.
    let target = *old_rounds.borrow() + 4;
    let until = Instant::now() + Duration::from_secs(20);
    while *old_rounds.borrow() < target {
        check_no_loss(&cl, &mut high);
        assert!(Instant::now() < until, "the deposed leader ran no rounds");
        let _ = tokio::time::timeout(Duration::from_millis(200), old_rounds.changed()).await;
    }
    check_no_loss(&cl, &mut high);
    fail::remove("meta::skip-leader-confirm");
    cl.net.heal();
    let counts = replica_counts(&cl);
    for b in &lbs.blocks {
        assert!(
            counts[&b.block.id] >= 3,
            "block {} under-replicated",
            b.block.id
        );
    }
    cl.shutdown().await;
}

/// Runs the `tdfs` binary, returning (exit code, stdout).
async fn tdfs_async(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(tdfs_bin())
        .args(args)
        .env("TDFS_CLIENT_DEADLINE_MS", "10000")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code().unwrap_or(-1),
        format!("{stdout}{}", if stderr.is_empty() { "" } else { &stderr }),
    )
}

/// Every replica of a block damaged: the scanner quarantines all three,
/// the leader keeps them (no good copy exists), `fsck --json` says
/// CORRUPT and `-list-corruptfileblocks` lists the file, block and holders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_every_replica_is_corrupt_keeps_them_all() {
    procs::expect_corrupt_replicas();
    let (dir, cl) = cluster(4, BS, fast).await;
    cl.write_cluster_json().unwrap();
    let cj = dir.path().join("cluster.json").display().to_string();
    let c = cl.client("root");
    write(&c, "/lost/f", &bytes(63, BS as usize), 1 << 20).await;
    write(&c, "/lost/ok", &bytes(64, BS as usize), 1 << 20).await;
    let lbs = wait_replicas(&c, "/lost/f", 3).await;
    let b = lbs.blocks[0].block.clone();
    let mut holders: Vec<String> = Vec::new();
    for loc in &lbs.blocks[0].locations {
        let slot = cl
            .datanodes
            .iter()
            .position(|d| d.id.as_ref() == Some(&loc.id))
            .unwrap();
        let f = cl.datanodes[slot]
            .dir
            .join("current")
            .join(format!("blk_{}_{}.data", b.id, b.gen));
        let mut raw = std::fs::read(&f).unwrap();
        raw[1000] ^= 0x04;
        std::fs::write(&f, &raw).unwrap();
        holders.push(loc.id.0.clone());
    }
    holders.sort();
    // All three are found corrupt and quarantined; fsck calls it CORRUPT.
    wait_for("all three quarantined", Duration::from_secs(30), || async {
        let q = cl
            .datanodes
            .iter()
            .filter_map(|d| d.handle.as_ref())
            .filter(|h| h.store.quarantined().iter().any(|(id, _)| *id == b.id))
            .count();
        let f = c.fsck("/").await.ok()?;
        (q == 3 && f.corrupt == 1).then_some(())
    })
    .await;
    // The leader keeps them all, round after round (with delete-last-corrupt
    // it purges them here).
    let leader = cl.leader().unwrap();
    let mut rounds = leader.policy_rounds();
    let first = *rounds.borrow();
    let until = Instant::now() + Duration::from_secs(20);
    while *rounds.borrow() < first + 6 {
        let q: usize = cl
            .datanodes
            .iter()
            .filter_map(|d| d.handle.as_ref())
            .filter(|h| h.store.quarantined().iter().any(|(id, _)| *id == b.id))
            .count();
        assert_eq!(q, 3, "a corrupt replica of the only copy was deleted");
        assert!(Instant::now() < until, "the leader ran no policy rounds");
        let _ = tokio::time::timeout(Duration::from_millis(500), rounds.changed()).await;
    }
    let (code, out) = tdfs_async(&["fsck", "/lost", "--cluster", &cj, "--json"]).await;
    let doc: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(code, 1, "{out}");
    assert_eq!(doc["status"], "CORRUPT", "{out}");
    assert_eq!(doc["corrupt"], 1, "{out}");
    let (code, out) = tdfs_async(&[
        "fsck",
        "/lost",
        "-list-corruptfileblocks",
        "--cluster",
        &cj,
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    let files = doc["corrupt_files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{out}");
    assert_eq!(files[0]["path"], "/lost/f");
    assert_eq!(files[0]["block"], b.id);
    let mut locs: Vec<String> = files[0]["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    locs.sort();
    assert_eq!(locs, holders);
    let (code, out) =
        tdfs_async(&["fsck", "/lost", "-list-corruptfileblocks", "--cluster", &cj]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("The list of corrupt files under path '/lost' are:"),
        "{out}"
    );
    assert!(out.contains(&format!("blk_{}\t/lost/f\n", b.id)), "{out}");
    assert!(
        out.contains("The filesystem under path '/lost' has 1 CORRUPT files"),
        "{out}"
    );
    let (_, out) = tdfs_async(&[
        "fsck",
        "/lost/ok",
        "-list-corruptfileblocks",
        "--cluster",
        &cj,
    ])
    .await;
    assert!(
        out.contains("The filesystem under path '/lost/ok' has no CORRUPT files"),
        "{out}"
    );
    cl.shutdown().await;
}

/// `meta::leader-driver=1*panic` in one `tdfs meta` process: once it
/// leads, its driver panics; it stops leading and exits non-zero, another
/// node is elected and the cluster keeps taking writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicked_leader_driver_steps_down_and_the_daemon_exits() {
    let mut m = MetaProcs::start_with(3, &[]);
    m.kill(1);
    m.env.insert(
        1,
        vec![("FAILPOINTS".into(), "meta::leader-driver=1*panic".into())],
    );
    m.spawn(1);
    let c = m.client("root");
    wait_for("a first write", Duration::from_secs(20), || async {
        c.mkdirs("/before", true).await.ok()
    })
    .await;
    // Move leadership to node 1 unless it already took it (and panicked).
    let started = Instant::now();
    let status = loop {
        if let Some(st) = m.try_wait(1) {
            break st;
        }
        let _ = c.admin(AdminRequest::TransferLeader { id: 1 }).await;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "node 1 neither led nor exited"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("node 1 exited with {status} after {:?}", started.elapsed());
    assert!(!status.success(), "the daemon exited with {status}");
    let log = std::fs::read_to_string(m.log_path(1)).unwrap();
    assert!(log.contains("leader driver"), "{log}");
    // The other two elect a leader and serve.
    wait_for(
        "writes after the panic",
        Duration::from_secs(20),
        || async { c.mkdirs("/after", true).await.ok() },
    )
    .await;
    assert!(c.exists("/before").await.unwrap().is_some());
    let leader = c.node_state(&m.addrs[&2]).await.unwrap().leader;
    assert!(matches!(leader, Some(2 | 3)), "leader {leader:?}");
}
