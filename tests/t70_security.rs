//! Cluster authentication end to end, over real sockets: nodes with the
//! wrong key (or none) cannot join the metadata group, appear in gossip or
//! register; datanodes serve callers without the key only with a valid block
//! token; `tdfs local` generates and uses a key.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_datanode::block_store::{BlockStore, StoreConfig};
use tdfs_datanode::node::DatanodeConfig;
use tdfs_local::LocalCluster;
use tdfs_meta_raft::config::MetaConfig;
use tdfs_proto::meta::{AccessMode, AdminRequest, BlockInfo, BlockToken, LocatedBlock};
use tdfs_proto::FsError;
use tdfs_rpc::auth::wall_ms;
use tdfs_rpc::ClusterKey;
use tdfs_testkit::files;
use tdfs_testkit::files::{bytes, cluster, read, write};
use tdfs_testkit::procs::{run_tdfs, spawn_local, wait_for};
use tdfs_transfer::{first_error, read_block_with_token, BlockWriter, Finish};
use tokio::net::TcpListener;

fn key(b: u8) -> ClusterKey {
    ClusterKey::new(vec![b; 32]).unwrap()
}

/// A client of `c` without the cluster key (a user, as Hadoop's simple
/// authentication has them).
fn keyless_client(c: &LocalCluster, user: &str) -> Arc<MetaClient> {
    let cfg = ClientConfig::new(c.meta_addrs.values().cloned().collect(), user);
    Arc::new(MetaClient::new(cfg).unwrap())
}

fn voters_and_learners(c: &LocalCluster) -> (Vec<u64>, Vec<u64>, u64) {
    let l = c.leader().unwrap();
    let m = l.raft().metrics().borrow().clone();
    let mem = m.membership_config.membership();
    (
        mem.voter_ids().collect(),
        mem.learner_ids().collect(),
        m.current_term,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_without_the_key_cannot_join_gossip_raft_or_the_registry() {
    let (dir, c) = cluster(2, 1 << 20, |cfg| cfg.key = Some(key(1))).await;
    let (voters, learners, term) = voters_and_learners(&c);
    let leader_id = c.leader().unwrap().id();

    // A metadata node with the wrong key that names the group as its peers.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rogue_addr = l.local_addr().unwrap().to_string();
    let mut peers: BTreeMap<u64, String> = c.meta_addrs.clone();
    peers.insert(9, rogue_addr.clone());
    let mut mc = MetaConfig::new(9, rogue_addr, dir.path().join("rogue-meta"), peers);
    mc.key = Some(key(2));
    mc.heartbeat_ms = 50;
    mc.election_min_ms = 150;
    mc.election_max_ms = 300;
    let rogue_meta = tdfs_meta_raft::start(mc, l, Default::default())
        .await
        .unwrap();

    // Datanodes with the wrong key and with none.
    let mut rogue_dns = Vec::new();
    let mut rogue_addrs = Vec::new();
    for (i, k) in [Some(key(2)), None].into_iter().enumerate() {
        let store =
            BlockStore::open(StoreConfig::new(dir.path().join(format!("rogue-dn-{i}")))).unwrap();
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut dc = DatanodeConfig::new(addr.clone(), c.meta_addrs.values().cloned().collect());
        dc.key = k;
        dc.heartbeat = Duration::from_millis(100);
        let h = tdfs_datanode::node::start(dc, store, l).await.unwrap();
        rogue_addrs.push(addr);
        rogue_dns.push(h);
    }

    // An observer with the right key sees the real members in gossip, and
    // never the rogue ones.
    let seeds: Vec<std::net::SocketAddr> =
        c.meta_addrs.values().map(|a| a.parse().unwrap()).collect();
    let obs_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let obs_addr = obs_sock.local_addr().unwrap();
    drop(obs_sock);
    let ident = tdfs_gossip::NodeIdentity::new("observer", tdfs_gossip::Role::Meta, obs_addr);
    let mut gc = tdfs_gossip::GossipConfig::new(ident, seeds);
    gc.key = Some(key(1));
    let obs = tdfs_gossip::start(gc).await.unwrap();
    let real: Vec<String> = c.datanodes.iter().map(|d| d.addr.clone()).collect();
    wait_for(
        "the real datanodes in gossip",
        Duration::from_secs(20),
        || {
            let members: Vec<String> = obs
                .members()
                .iter()
                .map(|m| m.identity.addr.to_string())
                .collect();
            let ok = real.iter().all(|a| members.contains(a));
            async move { ok.then_some(()) }
        },
    )
    .await;
    // The rogues have tried, repeatedly, and every metadata node dropped
    // their datagrams: the wrong key fails its MAC, no key is unauthenticated.
    wait_for(
        "every metadata node to drop the rogues' gossip",
        Duration::from_secs(20),
        || {
            let ok = c.metas.values().flatten().all(|h| {
                h.gossip_stats()
                    .is_some_and(|s| s.dropped_bad_mac >= 5 && s.dropped_unauthenticated >= 5)
            });
            async move { ok.then_some(()) }
        },
    )
    .await;
    let members: Vec<String> = obs
        .members()
        .iter()
        .map(|m| m.identity.addr.to_string())
        .collect();
    for a in &rogue_addrs {
        assert!(
            !members.contains(a),
            "rogue datanode {a} is in gossip: {members:?}"
        );
    }
    assert!(
        !obs.members().iter().any(|m| m.identity.id == "meta-9"),
        "the rogue metadata node is in gossip"
    );

    // Raft: the group did not change, no election was disturbed, the rogue
    // node leads nothing.
    assert_eq!(voters_and_learners(&c), (voters, learners, term));
    assert_eq!(c.leader().unwrap().id(), leader_id);
    assert!(!rogue_meta.node.is_leader());
    assert!(rogue_meta.node.inspect(|ns, _| ns.datanodes().is_empty()));

    // Registry and soft view: only the real datanodes.
    let l = c.leader().unwrap();
    let registered: Vec<String> =
        l.inspect(|ns, _| ns.datanodes().values().map(|d| format!("{d:?}")).collect());
    for a in &rogue_addrs {
        assert!(
            !registered.iter().any(|r| r.contains(a.as_str())),
            "rogue datanode {a} registered: {registered:?}"
        );
    }
    assert_eq!(l.inspect(|_, v| v.nodes.len()), 2);
    for h in &rogue_dns {
        assert!(l.inspect(|_, v| v.nodes.by_id(&h.id).is_none()));
    }

    // Admin calls need the key: refused with none or the wrong one.
    for k in [None, Some(key(2))] {
        let mut cfg = ClientConfig::new(c.meta_addrs.values().cloned().collect(), "root");
        cfg.key = k.clone();
        cfg.deadline = Duration::from_secs(3);
        let mc = MetaClient::new(cfg).unwrap();
        let r = mc
            .admin(AdminRequest::AddMeta {
                id: 9,
                addr: "127.0.0.1:1".into(),
            })
            .await;
        assert!(r.is_err(), "AddMeta with key {k:?} was accepted");
    }
    assert_eq!(voters_and_learners(&c).0.len(), 3);

    for h in rogue_dns {
        h.shutdown().await;
    }
    rogue_meta.shutdown().await;
    obs.shutdown().await;
    c.shutdown().await;
}

async fn read_with(
    addr: &str,
    k: Option<&ClusterKey>,
    t: Option<BlockToken>,
    lb: &LocatedBlock,
) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    read_block_with_token(
        &tdfs_rpc::Connector::direct(),
        addr,
        k,
        t,
        (lb.block.id, lb.block.gen),
        (0, u64::MAX),
        &mut out,
    )
    .await
    .map(|_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datanodes_serve_callers_without_the_key_only_with_a_valid_token() {
    let (_dir, c) = cluster(1, 1 << 20, |cfg| {
        cfg.key = Some(key(1));
        cfg.replication = 1;
    })
    .await;
    // A client without the key reads and writes through tokens.
    let alice = keyless_client(&c, "alice");
    let root = keyless_client(&c, "root");
    root.mkdirs("/a", true).await.unwrap();
    root.meta(tdfs_proto::meta::MetaRequest::SetOwner {
        path: "/a".into(),
        owner: Some("alice".into()),
        group: None,
    })
    .await
    .unwrap();
    let data = bytes(1, 300_000);
    write(&alice, "/a/one", &data, 70_000).await;
    assert_eq!(read(&alice, "/a/one", 0, u64::MAX).await, data);
    let other = bytes(2, 1000);
    write(&alice, "/a/two", &other, 1000).await;

    let lbs = alice.block_locations("/a/one", 0, u64::MAX).await.unwrap();
    let lb = lbs.blocks[0].clone();
    let good = lb.token.clone().expect("a keyed cluster issues tokens");
    assert_eq!(good.mode, AccessMode::Read);
    assert_eq!(good.user, "alice");
    let addr = lb.locations[0].addr.clone();
    let refused = |r: Result<Vec<u8>, FsError>| {
        assert!(matches!(r, Err(FsError::Unauthenticated(_))), "{r:?}");
    };
    assert_eq!(
        read_with(&addr, None, Some(good.clone()), &lb)
            .await
            .unwrap(),
        data
    );
    // No token, a forged one, one under another key, an expired one, one
    // for another block, one for writing.
    refused(read_with(&addr, None, None, &lb).await);
    let mut forged = good.clone();
    forged.expires_ms += 3_600_000;
    refused(read_with(&addr, None, Some(forged), &lb).await);
    let mut forged = good.clone();
    forged.user = "root".into();
    refused(read_with(&addr, None, Some(forged), &lb).await);
    let b = lb.block.clone();
    refused(
        read_with(
            &addr,
            None,
            Some(key(2).block_token(b.id, b.gen, AccessMode::Read, "alice", wall_ms() + 60_000)),
            &lb,
        )
        .await,
    );
    refused(
        read_with(
            &addr,
            None,
            Some(key(1).block_token(b.id, b.gen, AccessMode::Read, "alice", wall_ms() - 1)),
            &lb,
        )
        .await,
    );
    let two = alice.block_locations("/a/two", 0, u64::MAX).await.unwrap();
    refused(read_with(&addr, None, two.blocks[0].token.clone(), &lb).await);
    refused(
        read_with(
            &addr,
            None,
            Some(key(1).block_token(b.id, b.gen, AccessMode::Write, "alice", wall_ms() + 60_000)),
            &lb,
        )
        .await,
    );
    // A token minted properly for the block works; so does the key itself.
    assert_eq!(
        read_with(
            &addr,
            None,
            Some(key(1).block_token(b.id, b.gen, AccessMode::Read, "bob", wall_ms() + 60_000)),
            &lb
        )
        .await
        .unwrap()
        .len(),
        data.len()
    );
    assert_eq!(
        read_with(&addr, Some(&key(1)), None, &lb)
            .await
            .unwrap()
            .len(),
        data.len()
    );

    // Writing without a token (or with a read token) is refused.
    for t in [None, Some(good.clone())] {
        let info = BlockInfo {
            id: 999_999,
            gen: 1,
            len: 10,
            sha256: None,
        };
        let direct = tdfs_rpc::Connector::direct();
        let ack = match BlockWriter::open_with_token(&direct, &lb.locations, info, None, t).await {
            Ok(mut w) => {
                let _ = w.send_chunk(b"0123456789").await;
                w.finish(Finish {
                    len: 10,
                    sha256: files::sha(b"0123456789"),
                })
                .await
            }
            Err(e) => Err(e),
        };
        let e = match ack {
            Ok(a) => first_error(&a).expect("the write was refused"),
            Err(e) => e,
        };
        assert!(matches!(e, FsError::Unauthenticated(_)), "{e:?}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_open_cluster_issues_no_tokens_and_stays_open() {
    let (_dir, c) = cluster(1, 1 << 20, |cfg| cfg.replication = 1).await;
    let u = keyless_client(&c, "root");
    write(&u, "/f", b"hello", 5).await;
    let lbs = u.block_locations("/f", 0, u64::MAX).await.unwrap();
    assert!(lbs.blocks[0].token.is_none());
    let addr = lbs.blocks[0].locations[0].addr.clone();
    assert_eq!(
        read_with(&addr, None, None, &lbs.blocks[0]).await.unwrap(),
        b"hello"
    );
    c.shutdown().await;
}

/// `tdfs local` generates `cluster.key` (mode 0600), records it in
/// `cluster.json`, reuses it on restart; commands that find the cluster
/// through `--cluster` use it, commands given only `--meta` act as users.
#[test]
fn tdfs_local_generates_and_uses_a_cluster_key() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        spawn_local(
            dir.path(),
            &["--meta", "1", "--datanodes", "1", "--replication", "1"],
        )
    };
    let tdfs = |args: &[&str]| run_tdfs(args, &[]);
    let stop = |mut child: std::process::Child| {
        unsafe_kill_term(child.id());
        let _ = child.wait();
    };

    let child = start();
    let key_path = dir.path().join("cluster.key");
    let first_key = std::fs::read(&key_path).expect("cluster.key is written");
    assert!(first_key.len() >= 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let cluster = dir.path().join("cluster.json").display().to_string();
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cluster).unwrap()).unwrap();
    assert_eq!(
        doc["cluster_key_file"].as_str().unwrap(),
        key_path.display().to_string()
    );
    let meta = doc["meta"][0]["addr"].as_str().unwrap().to_string();

    // Through the cluster file: the key is used (a peer).
    let (code, _, err) = tdfs(&[
        "dfs",
        "--cluster",
        &cluster,
        "--user",
        "root",
        "-mkdir",
        "-p",
        "/s",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = tdfs(&[
        "dfs",
        "--cluster",
        &cluster,
        "--user",
        "root",
        "-chmod",
        "777",
        "/s",
    ]);
    assert_eq!(code, 0, "{err}");
    let src = dir.path().join("in.txt");
    std::fs::write(&src, b"secret data\n").unwrap();
    let (code, _, err) = tdfs(&[
        "dfs",
        "--cluster",
        &cluster,
        "--user",
        "root",
        "-put",
        src.to_str().unwrap(),
        "/s/a",
    ]);
    assert_eq!(code, 0, "{err}");
    // With only --meta: a user, whose data moves under block tokens.
    let (code, out, err) = tdfs(&["dfs", "--meta", &meta, "--user", "bob", "-cat", "/s/a"]);
    assert_eq!((code, out.as_str()), (0, "secret data\n"), "{err}");
    let (code, _, err) = tdfs(&[
        "dfs",
        "--meta",
        &meta,
        "--user",
        "bob",
        "-put",
        src.to_str().unwrap(),
        "/s/b",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = tdfs(&["dfs", "--cluster", &cluster, "-cat", "/s/b"]);
    assert_eq!((code, out.as_str()), (0, "secret data\n"));
    // Admin needs the key.
    let (code, _, err) = tdfs(&["haadmin", "--meta", &meta, "-transferLeader", "1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("authenticated") || err.contains("key"),
        "{err}"
    );
    let (code, _, err) = tdfs(&["haadmin", "--cluster", &cluster, "-transferLeader", "1"]);
    assert_eq!(code, 0, "{err}");
    stop(child);

    // A restart reuses the key and the data.
    let child = start();
    assert_eq!(std::fs::read(&key_path).unwrap(), first_key);
    let (code, out, err) = tdfs(&["dfs", "--cluster", &cluster, "-cat", "/s/a"]);
    assert_eq!((code, out.as_str()), (0, "secret data\n"), "{err}");
    stop(child);
}

fn unsafe_kill_term(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// On a keyed cluster the copies the leader orders carry its token, bound
/// to their targets: raising a file's replication fills the new replicas
/// (every target checks the token), and they read back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn re_replication_on_a_keyed_cluster_carries_the_leaders_token() {
    let (_dir, c) = cluster(3, 1 << 20, |cfg| {
        cfg.use_generated_key().unwrap();
        cfg.replication = 1;
    })
    .await;
    let root = c.client("root");
    let data = bytes(71, (3 << 20) + 5);
    write(&root, "/keyed/f", &data, 1 << 20).await;
    root.meta(tdfs_proto::meta::MetaRequest::SetReplication {
        path: "/keyed/f".into(),
        replication: 3,
    })
    .await
    .unwrap();
    let lbs = files::wait_replicas(&root, "/keyed/f", 3).await;
    assert_eq!(lbs.blocks.len(), 4);
    // A reader without the key reads it back with its read tokens.
    let user = keyless_client(&c, "root");
    assert!(read(&user, "/keyed/f", 0, data.len() as u64).await == data);
    c.shutdown().await;
}
