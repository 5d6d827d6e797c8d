//! The namespace features of issue 14 end to end on an in-process cluster:
//! truncate (block recovery by the leader, across a failover), snapshots
//! holding blocks on the datanodes until the last referencing snapshot
//! goes (across a restart of every node), the trash (move, restore,
//! expunge, expiry by the leader), quotas, ACLs, xattrs and concat.

use std::collections::BTreeSet;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_local::LocalCluster;
use tdfs_proto::BlockId;
use tdfs_testkit::files;
use tdfs_testkit::files::{bytes, cluster, read, sha, write};
use tdfs_testkit::ns::{block_ids, home, stored_blocks, tdfs, wait_closed, wait_freed};
use tdfs_testkit::procs::wait_for;

const BS: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncate_inside_a_block_and_at_a_boundary_reads_back_after_failover() {
    let (_d, mut cl) = cluster(3, BS, |_| {}).await;
    let root = cl.client("root");
    let data = bytes(90, (3 * BS + 300_000) as usize);
    write(&root, "/t/f", &data, 256 * 1024).await;
    let before = block_ids(&root, "/t/f").await;

    // At a block boundary: done at once, the tail blocks are dropped.
    assert!(root.truncate("/t/f", 3 * BS).await.unwrap());
    let st = root.stat("/t/f").await.unwrap();
    assert_eq!((st.length, st.under_construction), (3 * BS, false));
    wait_freed(&cl, &before[3..], "the dropped last block to be deleted").await;

    // Inside a block: the file is under recovery until the leader has the
    // datanodes cut the block at a new generation.
    let cut = 2 * BS + 123_457;
    assert!(!root.truncate("/t/f", cut).await.unwrap());
    let st = wait_closed(&root, "/t/f").await;
    assert_eq!(st.length, cut);
    let lbs = root.block_locations("/t/f", 0, u64::MAX).await.unwrap();
    let last = &lbs.blocks.last().unwrap().block;
    assert_eq!(last.id, before[2], "no snapshot: the block is cut in place");
    assert_eq!(last.len, cut - 2 * BS);
    assert_eq!(last.sha256, Some(sha(&data[2 * BS as usize..cut as usize])));
    assert_eq!(
        read(&root, "/t/f", 0, u64::MAX).await,
        &data[..cut as usize]
    );
    // Every datanode ends with the new generation only.
    files::wait_replicas(&root, "/t/f", 3).await;
    wait_for("old generations to go", Duration::from_secs(30), || async {
        let gens: BTreeSet<u64> = cl
            .datanodes
            .iter()
            .filter_map(|d| d.handle.as_ref()?.store.get(last.id))
            .map(|r| r.gen)
            .collect();
        (gens == BTreeSet::from([last.gen])).then_some(())
    })
    .await;

    // A truncate pending when the leader dies is finished by the next one.
    let cut2 = BS + 1000;
    let leader = cl.leader().unwrap().id();
    cl.stop_meta(leader).await;
    assert!(!root.truncate("/t/f", cut2).await.unwrap());
    let st = wait_closed(&root, "/t/f").await;
    assert_eq!(st.length, cut2);
    assert_eq!(
        read(&root, "/t/f", 0, u64::MAX).await,
        &data[..cut2 as usize]
    );
    cl.start_meta(leader).await.unwrap();
    let now = cl.leader().unwrap().id();
    cl.stop_meta(now).await;
    assert_eq!(
        read(&root, "/t/f", 0, u64::MAX).await,
        &data[..cut2 as usize]
    );
    assert!(
        root.truncate("/t/f", cut2 + 1).await.is_err(),
        "cannot grow"
    );
    // The shell's -w waits for the recovery.
    let (code, out, err) = tdfs(&cl, "root", &["dfs", "-truncate", "-w", "5000", "/t/f"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Truncated /t/f to length: 5000"), "{out}");
    let st = root.stat("/t/f").await.unwrap();
    assert_eq!((st.length, st.under_construction), (5000, false));
    assert_eq!(read(&root, "/t/f", 0, u64::MAX).await, &data[..5000]);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncate_pending_across_a_failover_is_resumed_by_the_new_leader() {
    let (_d, mut cl) = cluster(3, BS, |_| {}).await;
    let root = cl.client("root");
    let data = bytes(91, (BS + 5000) as usize);
    write(&root, "/f", &data, 100_000).await;
    files::wait_replicas(&root, "/f", 3).await;
    // Cut the datanodes off the leader so it cannot drive the recovery,
    // truncate, then kill the leader: the next one must resume it.
    let leader = cl.leader().unwrap().id();
    for d in cl.datanodes.iter().filter_map(|d| d.id.clone()) {
        cl.net.partition(&[&format!("meta-{leader}")], &[&d.0]);
    }
    assert!(!root.truncate("/f", 777).await.unwrap());
    assert!(root.stat("/f").await.unwrap().under_construction);
    cl.stop_meta(leader).await;
    cl.net.heal();
    let st = wait_closed(&root, "/f").await;
    assert_eq!(st.length, 777);
    assert_eq!(read(&root, "/f", 0, u64::MAX).await, &data[..777]);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_keeps_blocks_of_deleted_appended_and_truncated_files() {
    let (_d, cl) = cluster(3, BS, |_| {}).await;
    let root = cl.client("root");
    let (a, b, t) = (
        bytes(1, (BS + 1000) as usize),
        bytes(2, 5000),
        bytes(3, (BS + 70_000) as usize),
    );
    write(&root, "/s/a", &a, 100_000).await;
    write(&root, "/s/b", &b, 1000).await;
    write(&root, "/s/t", &t, 100_000).await;
    let (a_ids, t_ids) = (
        block_ids(&root, "/s/a").await,
        block_ids(&root, "/s/t").await,
    );
    root.allow_snapshot("/s").await.unwrap();
    root.create_snapshot("/s", Some("s1")).await.unwrap();

    // Delete, rename, append, truncate after the snapshot.
    root.delete("/s/a", false).await.unwrap();
    root.rename("/s/b", "/s/b2").await.unwrap();
    let more = bytes(4, 3000);
    let mut w = tdfs_client::FileWriter::append(root.clone(), "/s/b2")
        .await
        .unwrap();
    w.write(&more).await.unwrap();
    w.close().await.unwrap();
    assert!(!root.truncate("/s/t", BS + 10).await.unwrap());
    wait_closed(&root, "/s/t").await;
    let t_now = block_ids(&root, "/s/t").await;
    assert_ne!(t_now[1], t_ids[1], "a snapshot holds the old block: a copy");

    // The current state and the snapshot both read back exactly.
    assert_eq!(
        read(&root, "/s/t", 0, u64::MAX).await,
        &t[..(BS + 10) as usize]
    );
    assert!(root.stat("/s/a").await.is_err());
    assert_eq!(read(&root, "/s/.snapshot/s1/a", 0, u64::MAX).await, a);
    assert_eq!(read(&root, "/s/.snapshot/s1/b", 0, u64::MAX).await, b);
    assert_eq!(read(&root, "/s/.snapshot/s1/t", 0, u64::MAX).await, t);
    let mut b2 = b.clone();
    b2.extend_from_slice(&more);
    assert_eq!(read(&root, "/s/b2", 0, u64::MAX).await, b2);
    let diff = root.snapshot_diff("/s", "s1", "").await.unwrap();
    let kinds: BTreeSet<String> = diff
        .entries
        .iter()
        .map(|e| format!("{:?} {}", e.kind, e.source))
        .collect();
    assert!(kinds.contains("Delete a"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k.starts_with("Rename b")), "{kinds:?}");

    // The policies keep the snapshot's blocks: wait a few rounds and look.
    let rounds = *cl.leader().unwrap().policy_rounds().borrow();
    wait_for("policy rounds", Duration::from_secs(20), || async {
        (*cl.leader()?.policy_rounds().borrow() >= rounds + 5).then_some(())
    })
    .await;
    let held: Vec<BlockId> = a_ids.iter().chain(&t_ids[1..]).copied().collect();
    let s = stored_blocks(&cl);
    assert!(
        held.iter().all(|b| s.contains(b)),
        "{held:?} not all in {s:?}"
    );

    // Another snapshot still references them after s1 goes; then it goes.
    root.create_snapshot("/s", Some("s2")).await.unwrap();
    root.delete_snapshot("/s", "s1").await.unwrap();
    assert_eq!(
        read(&root, "/s/.snapshot/s2/t", 0, u64::MAX).await,
        &t[..(BS + 10) as usize]
    );
    assert!(root.stat("/s/.snapshot/s1/a").await.is_err());
    wait_freed(
        &cl,
        &a_ids,
        "the deleted file's blocks after its snapshot went",
    )
    .await;
    wait_freed(
        &cl,
        &t_ids[1..],
        "the truncated-away block after its snapshot went",
    )
    .await;
    assert_eq!(
        read(&root, "/s/t", 0, u64::MAX).await,
        &t[..(BS + 10) as usize]
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_blocks_survive_a_restart_of_every_node_and_a_failover() {
    // Raft snapshots every 20 entries: the restart loads the namespace,
    // snapshots included, from a Raft snapshot, not only from the log.
    let (d, cl) = cluster(3, BS, |c| {
        c.tweak_meta = Some(std::sync::Arc::new(|m| {
            m.superuser = "root".into();
            m.heartbeat_ms = 50;
            m.election_min_ms = 150;
            m.election_max_ms = 300;
            m.snapshot_logs = 20;
        }))
    })
    .await;
    let cfg = cl.cfg.clone();
    let root = cl.client("root");
    let a = bytes(7, (2 * BS + 10) as usize);
    write(&root, "/r/a", &a, 200_000).await;
    let ids = block_ids(&root, "/r/a").await;
    files::wait_replicas(&root, "/r/a", 3).await;
    root.allow_snapshot("/r").await.unwrap();
    root.create_snapshot("/r", Some("keep")).await.unwrap();
    root.delete("/r/a", false).await.unwrap();
    for i in 0..50 {
        root.mkdirs(&format!("/r/pad{i}"), false).await.unwrap();
    }
    cl.shutdown().await;

    let mut cl = LocalCluster::start(cfg).await.unwrap();
    cl.wait_ready(Duration::from_secs(30)).await.unwrap();
    let root = cl.client("root");
    assert_eq!(read(&root, "/r/.snapshot/keep/a", 0, u64::MAX).await, a);
    let leader = cl.leader().unwrap().id();
    cl.stop_meta(leader).await;
    assert_eq!(read(&root, "/r/.snapshot/keep/a", 0, u64::MAX).await, a);
    // A new leader, with full reports in: the blocks are not orphans.
    let rounds = *cl.leader().unwrap().policy_rounds().borrow();
    wait_for("policy rounds", Duration::from_secs(20), || async {
        (*cl.leader()?.policy_rounds().borrow() >= rounds + 10).then_some(())
    })
    .await;
    let s = stored_blocks(&cl);
    assert!(ids.iter().all(|b| s.contains(b)));
    root.delete_snapshot("/r", "keep").await.unwrap();
    wait_freed(&cl, &ids, "the blocks after the last snapshot went").await;
    cl.shutdown().await;
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trash_move_restore_and_expunge() {
    let (_d, cl) = cluster(3, BS, |c| c.trash_interval_ms = 3_600_000).await;
    home(&cl, "alice");
    let alice = cl.client("alice");
    let data = bytes(11, 300_000);
    write(&alice, "/user/alice/docs/f", &data, 50_000).await;
    let (code, out, _) = tdfs(&cl, "alice", &["dfs", "-rm", "/user/alice/docs/f"]);
    assert_eq!(code, 0);
    let trashed = "/user/alice/.Trash/Current/user/alice/docs/f";
    assert!(out.contains(trashed), "{out}");
    assert!(alice.stat("/user/alice/docs/f").await.is_err());
    // Still readable in the trash, and restored by a plain move.
    assert_eq!(read(&alice, trashed, 0, u64::MAX).await, data);
    assert_eq!(
        tdfs(&cl, "alice", &["dfs", "-mv", trashed, "/user/alice/docs/f"]).0,
        0
    );
    assert_eq!(read(&alice, "/user/alice/docs/f", 0, u64::MAX).await, data);
    // -skipTrash deletes at once.
    write(&alice, "/user/alice/g", b"gone", 4).await;
    assert_eq!(
        tdfs(&cl, "alice", &["dfs", "-rm", "-skipTrash", "/user/alice/g"]).0,
        0
    );
    assert!(alice
        .stat("/user/alice/.Trash/Current/user/alice/g")
        .await
        .is_err());
    // -expunge checkpoints Current; -expunge -immediate purges everything.
    write(&alice, "/user/alice/proj/f", &data, 50_000).await;
    assert_eq!(
        tdfs(&cl, "alice", &["dfs", "-rm", "-r", "/user/alice/proj"]).0,
        0
    );
    let ids = block_ids(&alice, "/user/alice/.Trash/Current/user/alice/proj/f").await;
    let (code, out, _) = tdfs(&cl, "alice", &["dfs", "-expunge"]);
    assert_eq!(code, 0);
    assert!(out.contains("Created trash checkpoint"), "{out}");
    let names: Vec<String> = alice
        .list("/user/alice/.Trash")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names.len(), 1);
    assert!(
        tdfs_proto::trash::checkpoint_time(&names[0]).is_some(),
        "{names:?}"
    );
    let cp = format!("/user/alice/.Trash/{}/user/alice/proj/f", names[0]);
    assert_eq!(read(&alice, &cp, 0, u64::MAX).await, data);
    assert_eq!(tdfs(&cl, "alice", &["dfs", "-expunge", "-immediate"]).0, 0);
    assert!(alice.list("/user/alice/.Trash").await.unwrap().is_empty());
    wait_freed(&cl, &ids, "blocks of the purged trash").await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_expires_trash_checkpoints() {
    let interval = 2_000;
    let (_d, cl) = cluster(3, BS, |c| c.trash_interval_ms = interval).await;
    home(&cl, "bob");
    let bob = cl.client("bob");
    let data = bytes(12, 100_000);
    write(&bob, "/user/bob/x", &data, 10_000).await;
    assert_eq!(tdfs(&cl, "bob", &["dfs", "-rm", "/user/bob/x"]).0, 0);
    let ids = block_ids(&bob, "/user/bob/.Trash/Current/user/bob/x").await;
    // The emptier turns Current into a checkpoint...
    let cp = wait_for("a trash checkpoint", Duration::from_secs(20), || async {
        let l = bob.list("/user/bob/.Trash").await.ok()?;
        l.into_iter()
            .find(|e| tdfs_proto::trash::checkpoint_time(&e.name).is_some())
            .map(|e| e.name)
    })
    .await;
    // ...whose files stay readable until it expires...
    let p = format!("/user/bob/.Trash/{cp}/user/bob/x");
    assert_eq!(read(&bob, &p, 0, u64::MAX).await, data);
    // ...and then deletes it, blocks and all.
    wait_for(
        "the checkpoint to expire",
        Duration::from_secs(30),
        || async {
            bob.list("/user/bob/.Trash")
                .await
                .ok()?
                .is_empty()
                .then_some(())
        },
    )
    .await;
    wait_freed(&cl, &ids, "blocks of the expired checkpoint").await;
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_refuse_each_kind_of_violation_and_follow_deletes() {
    use tdfs_proto::quota::QuotaChange::{Clear, Keep, Set};
    use tdfs_proto::FsError::QuotaExceeded;
    let (_d, cl) = cluster(3, BS, |_| {}).await;
    let root = cl.client("root");
    root.mkdirs("/q/n", true).await.unwrap();
    root.mkdirs("/q/s", true).await.unwrap();
    // Name quota 3: the directory itself and two more names.
    root.set_quota("/q/n", Set(3), Keep).await.unwrap();
    root.create_empty("/q/n/f1").await.unwrap();
    root.mkdirs("/q/n/d1", false).await.unwrap();
    let e = root.create_empty("/q/n/f2").await.unwrap_err();
    assert!(matches!(e, QuotaExceeded { .. }), "create: {e:?}");
    let e = root.mkdirs("/q/n/d2", false).await.unwrap_err();
    assert!(matches!(e, QuotaExceeded { .. }), "mkdir: {e:?}");
    root.create_empty("/q/outside").await.unwrap();
    let e = root.rename("/q/outside", "/q/n/moved").await.unwrap_err();
    assert!(matches!(e, QuotaExceeded { .. }), "rename: {e:?}");
    // Usage follows deletes: room again.
    root.delete("/q/n/d1", false).await.unwrap();
    assert_eq!(
        root.quota_usage("/q/n").await.unwrap().file_and_dir_count,
        2
    );
    root.rename("/q/outside", "/q/n/moved").await.unwrap();

    // Space quota: a block reserves block size × replication.
    root.set_quota("/q/s", Keep, Set(3 * BS + 1000))
        .await
        .unwrap();
    write(&root, "/q/s/one", &bytes(5, 1000), 1000).await;
    let u = root.quota_usage("/q/s").await.unwrap();
    assert_eq!(u.space_consumed, 3000, "usage counts every replica");
    let mut w = tdfs_client::FileWriter::create(root.clone(), "/q/s/two", Default::default())
        .await
        .unwrap();
    let e = match w.write(&bytes(6, 10)).await {
        Ok(()) => w.close().await.unwrap_err(),
        Err(e) => e,
    };
    assert!(matches!(e, QuotaExceeded { .. }), "add block: {e:?}");
    // setrep: 1000 bytes × 5 replicas do not fit in 4000.
    write(&root, "/q/r/f", &bytes(7, 1000), 1000).await;
    root.set_quota("/q/r", Keep, Set(4000)).await.unwrap();
    let e = root
        .meta(tdfs_proto::meta::MetaRequest::SetReplication {
            path: "/q/r/f".into(),
            replication: 5,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, QuotaExceeded { .. }), "setrep: {e:?}");
    root.delete("/q/s/one", false).await.unwrap();
    let _ = root.delete("/q/s/two", false).await;
    assert_eq!(root.quota_usage("/q/s").await.unwrap().space_consumed, 0);

    // `-count -q`: QUOTA REM_QUOTA SPACE_QUOTA REM_SPACE_QUOTA DIRS FILES SIZE PATH.
    let (code, out, _) = tdfs(&cl, "root", &["dfs", "-count", "-q", "/q/n", "/q/s", "/q"]);
    assert_eq!(code, 0);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["3", "0", "none", "inf", "1", "2", "0", "/q/n"]);
    let space = (3 * BS + 1000).to_string();
    assert_eq!(
        rows[1],
        ["none", "inf", &space, &space, "1", "0", "0", "/q/s"]
    );
    assert_eq!(rows[2][..4], ["none", "inf", "none", "inf"]);
    root.set_quota("/q/n", Clear, Clear).await.unwrap();
    root.create_empty("/q/n/f2").await.unwrap();
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acls_are_inherited_and_enforced_for_other_users() {
    let (_d, cl) = cluster(3, BS, |_| {}).await;
    let (root, alice, bob) = (cl.client("root"), cl.client("alice"), cl.client("bob"));
    root.mkdirs("/acl/dir", true).await.unwrap();
    assert_eq!(
        tdfs(&cl, "root", &["dfs", "-chmod", "750", "/acl/dir"]).0,
        0
    );
    assert!(
        alice.list("/acl/dir").await.is_err(),
        "other users: no access"
    );
    let ok = |r: (i32, String, String)| assert_eq!(r.0, 0, "{r:?}");
    ok(tdfs(
        &cl,
        "root",
        &["dfs", "-setfacl", "-m", "user:alice:r-x", "/acl/dir"],
    ));
    ok(tdfs(
        &cl,
        "root",
        &[
            "dfs",
            "-setfacl",
            "-m",
            "default:user:alice:rwx",
            "/acl/dir",
        ],
    ));
    alice.list("/acl/dir").await.unwrap();
    let e = bob.list("/acl/dir").await.unwrap_err();
    assert!(
        matches!(e, tdfs_proto::FsError::PermissionDenied { .. }),
        "{e:?}"
    );
    // A new file inherits the default entries as its access ACL.
    write(&root, "/acl/dir/f", b"from root", 9).await;
    let (_, out, _) = tdfs(&cl, "root", &["dfs", "-getfacl", "/acl/dir/f"]);
    assert!(out.contains("user:alice:rwx"), "{out}");
    let (_, ls, _) = tdfs(&cl, "root", &["dfs", "-ls", "/acl/dir"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-rw-") && l.contains("+ ")),
        "{ls}"
    );
    // ... which lets alice write where the mode bits alone would not.
    let mut w = tdfs_client::FileWriter::append(alice.clone(), "/acl/dir/f")
        .await
        .unwrap();
    w.write(b", alice").await.unwrap();
    w.close().await.unwrap();
    assert_eq!(
        read(&alice, "/acl/dir/f", 0, 100).await,
        b"from root, alice"
    );
    let mut sink = Vec::new();
    assert!(
        tdfs_client::read_range(&bob, "/acl/dir/f", 0, 100, &mut sink)
            .await
            .is_err()
    );
    // Removing the entry takes the access away again.
    ok(tdfs(
        &cl,
        "root",
        &["dfs", "-setfacl", "-x", "user:alice", "/acl/dir"],
    ));
    assert!(alice.list("/acl/dir").await.is_err());
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn xattrs_follow_namespaces_and_limits() {
    use tdfs_proto::xattr::XAttrFlags;
    let (_d, cl) = cluster(3, BS, |_| {}).await;
    let (root, alice) = (cl.client("root"), cl.client("alice"));
    root.mkdirs("/x", false).await.unwrap();
    write(&root, "/x/f", b"x", 1).await;
    let set = |c: std::sync::Arc<MetaClient>, n: &'static str, v: Vec<u8>| async move {
        c.set_xattr("/x/f", n, &v, XAttrFlags::EITHER).await
    };
    set(root.clone(), "user.color", b"blue".to_vec())
        .await
        .unwrap();
    let got = root.xattrs("/x/f", &[]).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].name.as_str(), got[0].value.as_slice()),
        ("user.color", &b"blue"[..])
    );
    // Namespaces: user. needs write access, trusted. is the superuser's,
    // system. is the file system's, unknown prefixes are refused.
    assert!(set(alice.clone(), "user.x", b"1".to_vec()).await.is_err());
    assert!(set(alice.clone(), "trusted.x", b"1".to_vec())
        .await
        .is_err());
    set(root.clone(), "trusted.x", b"1".to_vec()).await.unwrap();
    assert!(alice
        .list_xattrs("/x/f")
        .await
        .unwrap()
        .iter()
        .all(|n| !n.starts_with("trusted.")));
    assert!(set(root.clone(), "system.x", b"1".to_vec()).await.is_err());
    assert!(set(root.clone(), "security.x", b"1".to_vec())
        .await
        .is_err());
    assert!(set(root.clone(), "nonsense.x", b"1".to_vec())
        .await
        .is_err());
    // Size: name (after its namespace) plus value at most 16384 bytes.
    let (n, short) = ("user.big", "big".len());
    assert!(set(root.clone(), n, vec![7; 16384 - short + 1])
        .await
        .is_err());
    set(root.clone(), n, vec![7; 16384 - short]).await.unwrap();
    // Count: at most 32 user-visible attributes (user.color, trusted.x,
    // user.big so far).
    for i in 0..29 {
        let name: &'static str = Box::leak(format!("user.k{i}").into_boxed_str());
        set(root.clone(), name, vec![]).await.unwrap();
    }
    assert!(set(root.clone(), "user.one-too-many", vec![])
        .await
        .is_err());
    // The shell shows them.
    let (code, out, _) = tdfs(
        &cl,
        "root",
        &["dfs", "-getfattr", "-n", "user.color", "/x/f"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("user.color=\"blue\""), "{out}");
    root.remove_xattr("/x/f", "user.color").await.unwrap();
    assert!(root.xattrs("/x/f", &["user.color".into()]).await.is_err());
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concat_moves_the_blocks_without_copying() {
    let (_d, cl) = cluster(3, BS, |_| {}).await;
    let root = cl.client("root");
    let parts = [
        bytes(21, 2 * BS as usize),
        bytes(22, BS as usize),
        bytes(23, 4321),
    ];
    for (i, p) in parts.iter().enumerate() {
        write(&root, &format!("/c/p{i}"), p, 100_000).await;
    }
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.extend(block_ids(&root, &format!("/c/p{i}")).await);
    }
    let (code, _, err) = tdfs(&cl, "root", &["dfs", "-concat", "/c/p0", "/c/p1", "/c/p2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        block_ids(&root, "/c/p0").await,
        ids,
        "the same blocks, in order"
    );
    assert!(root.stat("/c/p1").await.is_err() && root.stat("/c/p2").await.is_err());
    let all: Vec<u8> = parts.concat();
    assert_eq!(root.stat("/c/p0").await.unwrap().length, all.len() as u64);
    assert_eq!(read(&root, "/c/p0", 0, u64::MAX).await, all);
    // A source in another directory is refused.
    write(&root, "/other/q", b"q", 1).await;
    let e = root
        .concat("/c/p0", &["/other/q".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(e, tdfs_proto::FsError::InvalidArgument(_)),
        "{e:?}"
    );
    cl.shutdown().await;
}
