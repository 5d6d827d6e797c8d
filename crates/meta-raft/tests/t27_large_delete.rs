//! A recursive delete of a directory of 60,301 inodes is one atomic
//! namespace change — the directory is gone on the reply — but freeing the
//! inodes is done in bounded `Reclaim` steps by the leader, one per policy
//! round, on every member. Meanwhile another client's linearizable `stat`
//! stays fast: its latency is bounded generously (this runs on 2 loaded
//! cores), and the test checks the work really was spread over many steps.
//!
//! `TDFS_DELETE_DIRS=5000` makes it the delete-a-million case (1,005,001
//! inodes) for docs/benchmarks.md.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_meta_raft::MetaConfig;
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_testkit::cluster::*;

const PER_DIR: usize = 200;
/// Inodes per `Reclaim` step: 60,300 inodes take at least 12 steps.
const BUDGET: u32 = 5_000;

fn small_reclaim(c: &mut MetaConfig) {
    c.reclaim_budget = BUDGET;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_delete_is_freed_in_steps_and_stat_stays_fast() {
    let cluster = Cluster::start_with(3, small_reclaim).await;
    let all = [1, 2, 3];
    cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let client = client_id();
    cluster
        .mkdir(&all, CallId { client, seq: 0 }, "/other")
        .await;

    // 300 directories of 200 (plus /big): mkdir -p, 512 calls in flight on
    // one connection.
    let dirs: usize = std::env::var("TDFS_DELETE_DIRS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let paths: Vec<String> = (0..dirs)
        .flat_map(|d| (0..PER_DIR).map(move |e| format!("/big/d{d:03}/e{e:03}")))
        .collect();
    let started = Instant::now();
    for (n, chunk) in paths.chunks(512).enumerate() {
        // Each batch goes to whoever leads now.
        let conn = Arc::new(
            cluster
                .client(cluster.wait_leader(&all, Duration::from_secs(10)).await)
                .await,
        );
        join_all(chunk.iter().enumerate().map(|(i, p)| {
            let conn = conn.clone();
            let cluster = &cluster;
            let seq = 1 + (n * 512 + i) as u64;
            async move {
                let call = CallId { client, seq };
                let r = meta(&conn, Some(call), mkdirs(p, true), Duration::from_secs(30)).await;
                // The leadership can move under this load: the same call
                // again through whoever leads (the retry cache answers it
                // if it had applied).
                let r = match r {
                    Ok(r) => Ok(r),
                    Err(_) => {
                        cluster
                            .write(&all, call, mkdirs(p, true), Duration::from_secs(60))
                            .await
                    }
                };
                assert!(
                    matches!(r, Ok(MetaResponse::Bool(true))),
                    "mkdir {p}: {r:?}"
                );
            }
        }))
        .await;
    }
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let node = cluster.node(leader).clone();
    let before = node.inspect(|ns, _| ns.inode_count());
    println!(
        "{} inodes made in {:?}",
        paths.len() + dirs,
        started.elapsed()
    );

    // Another client stats /other in a loop until the reclaim is over.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let reader = {
        // Every member, the leader first: a stat answered NotLeader (the
        // leadership moved under load) is retried on the next one.
        let mut conns = vec![cluster.client(leader).await];
        let mut nodes = vec![cluster.node(leader).clone()];
        for id in all.into_iter().filter(|id| *id != leader) {
            conns.push(cluster.client(id).await);
            nodes.push(cluster.node(id).clone());
        }
        let stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let (mut lat, mut errors, mut at) = (Vec::new(), Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = meta(
                    &conns[at],
                    None,
                    MetaRequest::GetFileInfo {
                        path: "/other".into(),
                    },
                    Duration::from_secs(10),
                )
                .await;
                match r {
                    Ok(_) => {
                        lat.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors.push(e.to_string());
                        // Wait for a leader, then ask it.
                        wait_until(Duration::from_secs(10), "a leader", || {
                            nodes.iter().any(|n| n.is_leader())
                        })
                        .await;
                        at = nodes.iter().position(|n| n.is_leader()).unwrap_or(0);
                    }
                }
            }
            (lat, errors)
        })
    };
    // Some stats before the delete, so the loop is warm.
    wait_until(Duration::from_secs(10), "the stat loop to start", || {
        done.load(Ordering::Relaxed) >= 20
    })
    .await;

    let t = Instant::now();
    let r = cluster
        .write(
            &all,
            CallId {
                client,
                // After every mkdir's seq (a reused one is answered by the retry cache).
                seq: paths.len() as u64 + 1,
            },
            MetaRequest::Delete {
                path: "/big".into(),
                recursive: true,
            },
            Duration::from_secs(30),
        )
        .await;
    let delete_took = t.elapsed();
    assert!(matches!(r, Ok(MetaResponse::Bool(true))), "delete: {r:?}");
    // Atomic: gone at once on the member that answered (the leader when
    // the call was made: the leadership can move under load, so look at
    // every member), with its inodes still to free.
    let node = all
        .iter()
        .map(|id| cluster.node(*id).clone())
        .find(|n| !exists(n, "/big"))
        .expect("/big is gone on the reply");
    let pending = node.inspect(|ns, _| ns.pending_reclaim());
    assert!(
        pending > u64::from(BUDGET),
        "the freeing is left to Reclaim steps ({pending} inodes pending)"
    );

    // Every member frees everything, step by step.
    for id in all {
        let n = cluster.node(id).clone();
        wait_until(
            // One step per 500 ms policy round; four times that, plus 30 s.
            Duration::from_secs(30 + 2 * pending / u64::from(BUDGET)),
            &format!("node {id} to free the deleted inodes"),
            || n.inspect(|ns, _| ns.pending_reclaim()) == 0,
        )
        .await;
    }
    let after = node.inspect(|ns, _| ns.inode_count());
    assert_eq!(
        before - after,
        (paths.len() + dirs + 1) as u64,
        "every deleted inode freed"
    );
    stop.store(true, Ordering::Relaxed);
    let (mut lat, errors) = reader.await.unwrap();
    assert!(
        errors.len() <= lat.len() / 10,
        "stats mostly answered: {} errors, e.g. {:?}",
        errors.len(),
        errors.first()
    );
    lat.sort();
    let (p50, p99, max) = (
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        *lat.last().unwrap(),
    );
    println!(
        "delete reply {delete_took:?}; {} stats during the reclaim: p50 {p50:?} p99 {p99:?} max {max:?}; {} refused (leader moved)",
        lat.len(),
        errors.len()
    );
    assert!(lat.len() >= 50, "the stat loop ran ({} stats)", lat.len());
    // Generous: the goal is 50 ms at p99 on a quiet machine. What makes it
    // hold at any size is the stepping checked above: no apply frees more
    // than BUDGET inodes.
    assert!(p99 < Duration::from_millis(500), "stat p99 {p99:?}");
    assert!(
        delete_took < Duration::from_secs(5),
        "delete reply {delete_took:?}"
    );
    cluster.shutdown().await;
}
