//! Restart at scale (docs/benchmarks.md, "Restart at scale"): a metadata
//! node's snapshot of N empty files (default 10 million, in directories of
//! 1,000), built in process, then:
//!
//! 1. written as the snapshot file (streamed through a buffer);
//! 2. sent as openraft sends it (4 MiB chunks read from the file) into a
//!    file being received, which is checked and decoded on `shutdown`;
//! 3. loaded as a node loads it at start;
//! 4. served: a single-node metadata node starts on that data directory,
//!    elects itself and answers a `GetFileInfo`.
//!
//! For each step it prints the time and the peak of live heap bytes above
//! what was live before (a counting allocator), so the figures show what
//! the snapshot file costs beyond the namespace itself; and the process's
//! peak RSS at the end.
//!
//! `cargo run --release -p tdfs-meta-raft --example restart_at_scale [N] [DIR]`

use openraft::{BasicNode, CommittedLeaderId, Membership, StoredMembership};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_disk::Disk;
use tdfs_meta_raft::snap_file::SnapFile;
use tdfs_meta_raft::snapshot::{open_snapshot_file, write_snapshot_file};
use tdfs_meta_raft::types::{LogId, SnapshotMeta};
use tdfs_meta_raft::{MetaConfig, Seams};
use tdfs_namespace::{LogOp, Namespace, Stamp};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;

const MB: f64 = (1 << 20) as f64;

/// Runs `f`, printing its time and the peak live heap above the start.
fn phase<T>(what: &str, f: impl FnOnce() -> T) -> (T, Duration) {
    let base = tdfs_testkit::alloc::reset_peak();
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    let peak = tdfs_testkit::alloc::peak() - base;
    println!(
        "{what:<44} {:>8.2} s   peak heap above start {:>9.1} MiB",
        took.as_secs_f64(),
        peak as f64 / MB
    );
    (out, took)
}

fn build(files: usize) -> Namespace {
    let mut ns = Namespace::new();
    let mut now = 1_700_000_000_000u64;
    // A create needs a call id (the lease holder); the retry cache is
    // skipped, as if every client's calls had expired from it.
    let mut apply = |ns: &mut Namespace, op: LogOp| {
        now += 1;
        let stamp = Stamp {
            user: "root".into(),
            call: Some(CallId {
                client: 1,
                seq: now,
            }),
            now,
            tick: now,
        };
        ns.apply_ignoring_retry_cache(&stamp, &op, &mut Vec::new())
            .expect("apply");
    };
    apply(
        &mut ns,
        LogOp::Init {
            superuser: "root".into(),
            supergroup: "supergroup".into(),
        },
    );
    for i in 0..files {
        let path = format!("/d{}/f{}", i / 1000, i % 1000);
        if i % 1000 == 0 {
            let dir = format!("/d{}", i / 1000);
            apply(
                &mut ns,
                LogOp::Mkdirs {
                    path: dir,
                    mode: 0o755,
                    parents: true,
                },
            );
        }
        let create = LogOp::Create {
            path: path.clone(),
            overwrite: false,
            replication: 3,
            block_size: 64 << 20,
            mode: 0o644,
            create_parents: false,
        };
        apply(&mut ns, create);
        apply(&mut ns, LogOp::Complete { path, last: None });
    }
    ns
}

/// Sends the snapshot file in `dir` as openraft does (4 MiB chunks read
/// from it) into a file being received in `into`, then checks and decodes
/// that file as a follower does when the last chunk has arrived.
async fn send_and_receive(disk: &Arc<dyn Disk>, dir: &Path, into: &Path) -> u64 {
    let f = open_snapshot_file(disk.as_ref(), dir).unwrap().unwrap();
    let mut from = SnapFile::reading(f);
    let mut to = SnapFile::receiving(disk.clone(), into.join("snapshot.recv-0.tmp")).unwrap();
    let mut sent = 0u64;
    loop {
        let mut buf = Vec::with_capacity(4 << 20);
        while buf.capacity() > buf.len() {
            if from.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
        if buf.is_empty() {
            break;
        }
        sent += buf.len() as u64;
        to.write_all(&buf).await.unwrap();
    }
    to.shutdown().await.expect("the received snapshot checks");
    let got = to.take_received().await.unwrap();
    assert!(got.ns.freeze().inode_count() > 0);
    sent
}

fn meta(addr: &str, index: u64) -> SnapshotMeta {
    let leader = CommittedLeaderId::new(0, 1);
    let members = Membership::new(
        vec![BTreeSet::from([1u64])],
        BTreeMap::from([(1u64, BasicNode::new(addr))]),
    );
    SnapshotMeta {
        last_log_id: Some(LogId::new(leader, index)),
        last_membership: StoredMembership::new(Some(LogId::new(leader, 1)), members),
        snapshot_id: format!("0-{index}-0"),
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().map_or(10_000_000, |a| a.parse().expect("N"));
    let root = args.next().map_or_else(
        || std::env::temp_dir().join(format!("tdfs-restart-at-scale-{}", std::process::id())),
        Into::into,
    );
    let data = root.join("meta1");
    let sm = data.join("sm");
    std::fs::create_dir_all(&sm).unwrap();
    std::fs::create_dir_all(root.join("recv")).unwrap();
    let disk = tdfs_disk::real();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    println!(
        "{files} empty files in directories of 1,000; data in {}",
        root.display()
    );

    let (ns, _) = phase("build the namespace (create + complete each)", || {
        build(files)
    });
    let ns_bytes = tdfs_testkit::alloc::live();
    println!(
        "live heap with the namespace: {:.1} MiB",
        ns_bytes as f64 / MB
    );
    let m = meta(&addr, 2);
    let (size, _) = phase("freeze + write the snapshot file + fsync", || {
        write_snapshot_file(disk.as_ref(), &sm, &m, &ns.freeze()).unwrap()
    });
    println!("snapshot file: {size} bytes ({:.1} MiB)", size as f64 / MB);
    let (sent, _) = phase("send in 4 MiB chunks, receive, check + decode", || {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(send_and_receive(
                &disk,
                &sm,
                &root.join("recv"),
            ))
        })
    });
    assert_eq!(sent, size);
    drop(ns);
    let (rep, _) = phase("load at start (stream, check, decode)", || {
        tdfs_meta_raft::state_machine::load(disk.as_ref(), &sm).unwrap()
    });
    drop(rep);

    let peers = BTreeMap::from([(1u64, addr.clone())]);
    let mut config = MetaConfig::new(1, addr, data, peers);
    config.gossip = false;
    config.superuser = "root".into();
    let t = Instant::now();
    let h = tdfs_meta_raft::start(config, listener, Seams::default())
        .await
        .unwrap();
    let node = h.node.clone();
    let probe = format!("/d{}/f{}", (files - 1) / 1000, (files - 1) % 1000);
    loop {
        let op = MetaRequest::GetFileInfo {
            path: probe.clone(),
        };
        if let Ok(MetaResponse::Status(_)) = node.execute("root", None, op).await {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "not serving after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{:<44} {:>8.2} s",
        "start a node on it until it serves a read",
        t.elapsed().as_secs_f64()
    );
    h.shutdown().await;
    println!("peak RSS of the process: {:.0} MiB", peak_rss_mib());
    std::fs::remove_dir_all(&root).unwrap();
}
