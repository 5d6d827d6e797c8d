//! Raft snapshots as files: a member whose snapshot file is damaged on disk
//! refuses to start naming the file, and once wiped it catches up from the
//! leader's snapshot (docs/operations.md); a damaged snapshot received from
//! a leader is refused with the state kept; snapshots are also taken by log
//! bytes; a metadata node whose log disk fills up refuses the write instead
//! of acknowledging it.

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, StoredMembership};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tdfs_disk::{Disk, Fault, FaultyDisk};
use tdfs_meta_raft::snapshot::{read_snapshot_file, snapshot_path, write_snapshot_file};
use tdfs_meta_raft::state_machine::StateMachine;
use tdfs_meta_raft::types::{LogId, SnapshotMeta};
use tdfs_meta_raft::MetaConfig;
use tdfs_namespace::{LogOp, Namespace, Stamp};
use tdfs_testkit::cluster::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_a_damaged_snapshot_refuses_to_start_and_rejoins_once_wiped() {
    let mut cluster = Cluster::start_with(3, snapshot_often).await;
    let all = cluster.live();
    let leader = cluster.wait_leader(&all, Duration::from_secs(10)).await;
    let victim = *all.iter().find(|i| **i != leader).unwrap();
    let client = client_id();
    let first = paths("/s/a", 0..150);
    mkdir_all(&cluster, &all, client, 1, &first, 8).await;
    let node = cluster.node(victim).clone();
    wait_until(Duration::from_secs(10), "the victim to apply", || {
        missing(&node, &first).is_empty()
    })
    .await;
    snapshot_and_purge(&cluster, victim).await;
    cluster.stop(victim).await;
    // Damage the snapshot file in the middle of its namespace stream.
    let file = snapshot_path(&cluster.data_dir(victim).join("sm"));
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&file, &bytes).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = tdfs_meta_raft::start(cluster.config(victim), l, cluster.seams(victim)).await;
    let msg = r.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(msg.contains(&file.display().to_string()), "start: {msg:?}");
    println!("start refused: {msg}");
    // The others go on and compact their logs past the victim.
    let others: Vec<u64> = all.iter().copied().filter(|i| *i != victim).collect();
    let second = paths("/s/b", 0..80);
    mkdir_all(&cluster, &others, client, 1000, &second, 8).await;
    let leader = cluster.wait_leader(&others, Duration::from_secs(10)).await;
    for id in &others {
        snapshot_and_purge(&cluster, *id).await;
    }
    // The recovery: wipe the data directory, start with the same id.
    std::fs::remove_dir_all(cluster.data_dir(victim)).unwrap();
    cluster.restart(victim).await;
    let node = cluster.node(victim).clone();
    let want: Vec<String> = first.iter().chain(&second).cloned().collect();
    wait_until(
        Duration::from_secs(20),
        "the wiped member to catch up",
        || missing(&node, &want).is_empty(),
    )
    .await;
    let m = node.raft().metrics().borrow().clone();
    assert!(m.snapshot.is_some(), "it caught up without a snapshot");
    assert_eq!(m.current_leader, Some(leader));
    assert!(missing(cluster.node(leader), &want).is_empty());
    // What it received and installed is a sound snapshot file.
    let sm = cluster.data_dir(victim).join("sm");
    let (meta, ns) = read_snapshot_file(&tdfs_disk::RealDisk, &sm)
        .unwrap()
        .expect("the installed snapshot is on disk");
    assert!(meta.last_log_id.is_some());
    assert!(ns.stat(SUPERUSER, &first[0]).is_ok());
    cluster.shutdown().await;
}

fn stamp() -> Stamp {
    Stamp {
        user: SUPERUSER.into(),
        call: None,
        now: 1,
        tick: 1,
    }
}

/// A namespace with `dirs` directories.
fn namespace(dirs: usize) -> Namespace {
    let mut ns = Namespace::new();
    let init = LogOp::Init {
        superuser: SUPERUSER.into(),
        supergroup: "supergroup".into(),
    };
    ns.apply(&stamp(), &init, &mut Vec::new()).unwrap();
    for i in 0..dirs {
        let op = LogOp::Mkdirs {
            path: format!("/d/{i}"),
            mode: 0o755,
            parents: true,
        };
        ns.apply(&stamp(), &op, &mut Vec::new()).unwrap();
    }
    ns
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new(CommittedLeaderId::new(2, 1), index)),
        last_membership: StoredMembership::default(),
        snapshot_id: format!("2-{index}-0"),
    }
}

/// The bytes of a snapshot file of `ns` at `index` (as a leader sends them).
fn snapshot_bytes(dir: &Path, ns: &Namespace, index: u64) -> Vec<u8> {
    write_snapshot_file(&tdfs_disk::RealDisk, dir, &meta(index), &ns.freeze()).unwrap();
    std::fs::read(snapshot_path(dir)).unwrap()
}

/// Feeds `bytes` to `sm` as openraft's chunked receive does; returns what
/// the last chunk's `shutdown` said, and installs when it succeeded.
async fn receive(sm: &mut StateMachine, bytes: &[u8], index: u64) -> Result<(), String> {
    let mut f = sm.begin_receiving_snapshot().await.unwrap();
    for chunk in bytes.chunks(64 << 10) {
        f.write_all(chunk).await.unwrap();
    }
    f.shutdown().await.map_err(|e| e.to_string())?;
    sm.install_snapshot(&meta(index), f).await.unwrap();
    Ok(())
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_damaged_received_snapshot_is_refused_and_the_state_kept() {
    let root = tempfile::tempdir().unwrap();
    let (leader_dir, dir) = (root.path().join("leader"), root.path().join("sm"));
    std::fs::create_dir_all(&leader_dir).unwrap();
    let mut sm = StateMachine::open_standalone(tdfs_disk::real(), &dir).unwrap();
    let a = snapshot_bytes(&leader_dir, &namespace(100), 100);
    receive(&mut sm, &a, 100).await.unwrap();
    let (applied, inodes) = sm.summary();
    assert_eq!(applied.map(|l| l.index), Some(100));
    let installed = std::fs::read(snapshot_path(&dir)).unwrap();
    assert_eq!(installed, a, "the follower stores the leader's bytes");

    let b = snapshot_bytes(&leader_dir, &namespace(300), 300);
    for (what, at) in [("the metadata", 20), ("the namespace", b.len() / 2)] {
        let mut bad = b.clone();
        bad[at] ^= 0x40;
        let err = receive(&mut sm, &bad, 300).await.expect_err(what);
        assert!(err.contains("snapshot.recv-"), "{what}: {err}");
        assert!(
            err.contains("fails its checksum") || err.contains("decode"),
            "{what}: {err}"
        );
        assert_eq!(sm.summary(), (applied, inodes), "{what}: the state changed");
        assert_eq!(
            std::fs::read(snapshot_path(&dir)).unwrap(),
            installed,
            "{what}"
        );
        assert!(leftovers(&dir).is_empty(), "{what}: {:?}", leftovers(&dir));
    }
    let cut = &b[..b.len() - 7];
    let err = receive(&mut sm, cut, 300)
        .await
        .expect_err("a truncated snapshot");
    assert!(err.contains("snapshot.recv-"), "{err}");
    assert_eq!(sm.summary(), (applied, inodes));

    receive(&mut sm, &b, 300).await.unwrap();
    let (applied, more) = sm.summary();
    assert_eq!(applied.map(|l| l.index), Some(300));
    assert!(more >= inodes + 200, "{more} inodes after {inodes}");
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, meta(300));
    // Reopened from its files, it loads the last installed snapshot.
    drop(sm);
    let sm = StateMachine::open_standalone(tdfs_disk::real(), &dir).unwrap();
    assert_eq!(sm.summary(), (applied, more));
}

fn by_bytes(c: &mut MetaConfig) {
    c.snapshot_logs = 1_000_000;
    c.snapshot_log_bytes = 16 << 10;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_taken_once_the_log_passes_its_byte_limit() {
    let cluster = Cluster::start_with(1, by_bytes).await;
    cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let node = cluster.node(1).clone();
    assert!(node.raft().metrics().borrow().snapshot.is_none());
    // Each mkdir is one entry of about 100 bytes: 16 KiB take a few
    // hundred, far below the entry limit.
    let client = client_id();
    let mut seq = 1;
    let snap = loop {
        let batch = paths(&format!("/b/{seq}-"), 0..20);
        mkdir_all(&cluster, &[1], client, seq, &batch, 4).await;
        seq += 20;
        if let Some(s) = node.raft().metrics().borrow().snapshot {
            break s;
        }
        assert!(
            seq < 5000,
            "no snapshot after {seq} entries of the byte limit"
        );
    };
    println!("snapshot at index {} after {seq} mkdirs", snap.index);
    assert!(snap.index < 1_000_000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_log_disk_is_full_refuses_writes_instead_of_acknowledging() {
    let root = tempfile::tempdir().unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let peers = BTreeMap::from([(1, addr.clone())]);
    let mut config = test_config(1, &addr, &root.path().join("meta1"), &peers);
    config.gossip = false;
    let faulty = Arc::new(FaultyDisk::new(tdfs_disk::real()));
    let seams = tdfs_meta_raft::Seams {
        disk: faulty.clone() as Arc<dyn Disk>,
        ..Default::default()
    };
    let h = tdfs_meta_raft::start(config.clone(), l, seams)
        .await
        .unwrap();
    let node = h.node.clone();
    wait_until(Duration::from_secs(10), "a leader", || {
        node.is_leader() && node.inspect(|ns, _| ns.is_initialized())
    })
    .await;
    node.execute(SUPERUSER, None, mkdirs("/before", true))
        .await
        .unwrap();
    let rule = faulty.inject(Fault::NoSpaceAfter(0), |p| p.ends_with("log.dat"));
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        node.execute(SUPERUSER, None, mkdirs("/refused", true)),
    )
    .await
    .expect("the write must be answered");
    assert!(
        r.is_err(),
        "a write the log could not store was acknowledged: {r:?}"
    );
    assert!(faulty.fired(rule) > 0);
    println!("refused: {:?}", r.unwrap_err());
    h.shutdown().await;
    // With space again, the node restarts with what it acknowledged only.
    faulty.remove(rule);
    let l = bind_again(&addr).await;
    let h = tdfs_meta_raft::start(config, l, Default::default())
        .await
        .unwrap();
    let node = h.node.clone();
    wait_until(
        Duration::from_secs(10),
        "the restarted node to lead",
        || node.is_leader() && has_dir(&node, "/before"),
    )
    .await;
    assert!(!exists(&node, "/refused"));
    h.shutdown().await;
}
