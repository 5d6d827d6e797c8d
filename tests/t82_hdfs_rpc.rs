//! HDFS's own RPC (`hdfs://`) with unmodified Hadoop clients against an
//! in-process cluster: the `hdfs-native` Python package and Hadoop's Java
//! FsShell, both through the HA nameservice `tdfs` that `hadoop-conf/`
//! declares over the three metadata nodes. Metadata operations only; data
//! transfer (DataTransferProtocol on the datanodes) comes next.

use bytes::Bytes;
use prost::Message;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tdfs_hdfs_rpc::ipc::{call_frame, client_hello, parse_reply, ErasedMessage};
use tdfs_hdfs_rpc::proto::common::rpc_response_header_proto::RpcStatusProto;
use tdfs_hdfs_rpc::proto::common::RpcResponseHeaderProto;
use tdfs_hdfs_rpc::proto::hdfs::{self as p, GetFileInfoRequestProto};
use tdfs_local::LocalCluster;
use tdfs_testkit::files::cluster;
use tdfs_testkit::hadoop::{cmd_as, Hadoop, ShellOut};
use tdfs_testkit::hdfs_native;
use tdfs_testkit::{files, procs};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn conf_dir(c: &LocalCluster) -> PathBuf {
    c.cfg.dir.join("hadoop-conf")
}

/// Creates `/big/e0000..` (`n` directories) through tdfs's own client.
async fn big_dir(c: &LocalCluster, n: usize) {
    let root = c.client("root");
    root.mkdirs("/big", true).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(n.div_ceil(16)) {
        let (root, chunk) = (root.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for i in chunk {
                root.mkdirs(&format!("/big/e{i:04}"), false).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hdfs_native_python_client_metadata_ops() {
    let py = hdfs_native::python().await;
    let (_dir, c) = cluster(3, 1 << 20, |_| {}).await;
    // More entries than one getListing page (1000).
    big_dir(&c, 1234).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hdfs/native_client.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(py)
            .args([script, "/big", "1234"])
            .env("HADOOP_CONF_DIR", conf_dir(&c))
            .env("HADOOP_USER_NAME", "root")
            .output(),
    )
    .await
    .expect("hdfs-native script finishes within 2 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "hdfs-native failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.shutdown().await;
}

/// Asserts each FsShell command's exit code and that its output (stdout
/// and stderr) contains the given fragments.
fn expect(results: &[ShellOut], want: &[(i32, &[&str])]) {
    assert_eq!(results.len(), want.len());
    for (r, (want_rc, parts)) in results.iter().zip(want) {
        let out = format!("{}{}", r.stdout, r.stderr);
        assert_eq!(r.code, *want_rc, "hadoop fs {:?}; output:\n{out}", r.args);
        for p in *parts {
            assert!(
                out.contains(p),
                "hadoop fs {:?} output lacks {p:?}:\n{out}",
                r.args
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hadoop_fsshell_over_the_ha_nameservice() {
    let h = Hadoop::get().await;
    let (_dir, mut c) = cluster(3, 1 << 20, |_| {}).await;
    let conf = conf_dir(&c);
    let r = h
        .fs_shell(
            &conf,
            &[
                cmd_as("root", &["-mkdir", "-p", "/fs/a/b"]),
                cmd_as("root", &["-touchz", "/fs/a/empty"]),
                cmd_as("root", &["-ls", "/fs/a"]),
                cmd_as("root", &["-ls", "-R", "/fs"]),
                cmd_as("root", &["-stat", "%F %u:%g %b %r", "/fs/a/empty"]),
                cmd_as("root", &["-mv", "/fs/a/empty", "/fs/a/b/moved"]),
                cmd_as("root", &["-chmod", "700", "/fs/a/b"]),
                cmd_as("root", &["-chown", "alice:staff", "/fs/a/b/moved"]),
                cmd_as("root", &["-ls", "/fs/a/b"]),
                cmd_as("root", &["-test", "-e", "/fs/a/b/moved"]),
                cmd_as("root", &["-test", "-d", "/fs/a/b/moved"]),
                cmd_as("root", &["-test", "-f", "/fs/a/b/moved"]),
                cmd_as("root", &["-count", "/fs"]),
                cmd_as("root", &["-du", "-s", "/fs"]),
                cmd_as("root", &["-ls", "/fs/nothing"]),
            ],
        )
        .await;
    expect(
        &r,
        &[
            (0, &[]),
            (0, &[]),
            (0, &["Found 2 items", "/fs/a/b", "/fs/a/empty"]),
            (0, &["/fs/a", "/fs/a/b", "/fs/a/empty"]),
            (0, &["regular", "root:supergroup 0 3"]),
            (0, &[]),
            (0, &[]),
            (0, &[]),
            (0, &["-rw-r--r--", "alice staff", "/fs/a/b/moved"]),
            (0, &[]),
            (1, &[]),
            (0, &[]),
            (0, &["3            1                  0 /fs"]),
            (0, &["0  0  /fs"]),
            (1, &["No such file or directory"]),
        ],
    );
    let st = c.client("root").stat("/fs/a/b").await.unwrap();
    assert_eq!(st.mode, 0o700);

    // Whichever node leads: stop the leader, the nameservice finds the new
    // one (the followers answer StandbyException until then).
    let old = c.leader().unwrap().config().id;
    assert_standby_on_followers(&c, old).await;
    c.stop_meta(old).await;
    let r = h
        .fs_shell(
            &conf,
            &[
                cmd_as("root", &["-rm", "-r", "-skipTrash", "/fs/a/b"]),
                cmd_as("root", &["-ls", "-R", "/fs"]),
                cmd_as("root", &["-mkdir", "/fs/after"]),
            ],
        )
        .await;
    expect(&r, &[(0, &["Deleted /fs/a/b"]), (0, &["/fs/a"]), (0, &[])]);
    assert!(!r[1].stdout.contains("/fs/a/b"), "{}", r[1].stdout);
    let new = c.leader().unwrap().config().id;
    assert_ne!(new, old);
    c.start_meta(old).await.unwrap();

    // Permission denied for another user, with Hadoop's exception.
    let r = h
        .fs_shell(&conf, &[cmd_as("bob", &["-mkdir", "/fs/a/bob"])])
        .await;
    expect(&r, &[(1, &["Permission denied", "user=bob"])]);
    c.shutdown().await;
}

/// One raw Hadoop IPC call on a fresh connection: the reply's header and
/// body (the response, varint-delimited).
async fn ipc_call(
    addr: &str,
    user: &str,
    client_id: [u8; 16],
    call_id: i32,
    method: &str,
    req: &dyn ErasedMessage,
) -> (RpcResponseHeaderProto, Bytes) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&client_hello(user, &client_id)).await.unwrap();
    s.write_all(&call_frame(call_id, &client_id, method, req))
        .await
        .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    parse_reply(Bytes::from(buf)).unwrap()
}

/// A direct `getFileInfo` on each follower's HDFS port is refused with
/// `StandbyException`.
async fn assert_standby_on_followers(c: &LocalCluster, leader: u64) {
    for (id, addr) in c.meta_hdfs.iter().filter(|(id, _)| **id != leader) {
        let req = GetFileInfoRequestProto { src: "/".into() };
        let (h, _) = ipc_call(addr, "root", [4; 16], 0, "getFileInfo", &req).await;
        assert_eq!(h.status, RpcStatusProto::Error as i32, "node {id}");
        assert_eq!(
            h.exception_class_name.as_deref(),
            Some("org.apache.hadoop.ipc.StandbyException"),
            "node {id}"
        );
    }
}

/// A call Hadoop retries (same client id and call id, as after a failover)
/// is answered from the retry cache: a delete retried is still `true`; a
/// new call id is a new delete (`false`, nothing left).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_call_is_answered_from_the_retry_cache() {
    let (_dir, c) = cluster(1, 1 << 20, |_| {}).await;
    c.client("root").mkdirs("/r/x", true).await.unwrap();
    let addr = c.meta_hdfs[&c.leader().unwrap().config().id].clone();
    let del = p::DeleteRequestProto {
        src: "/r".into(),
        recursive: true,
    };
    let id = [9u8; 16];
    let mut results = Vec::new();
    for call_id in [5, 5, 6] {
        let (h, body) = ipc_call(&addr, "root", id, call_id, "delete", &del).await;
        assert_eq!(h.status, RpcStatusProto::Success as i32, "{h:?}");
        assert_eq!(h.call_id, call_id as u32);
        results.push(
            p::DeleteResponseProto::decode_length_delimited(body)
                .unwrap()
                .result,
        );
    }
    assert_eq!(results, [true, true, false]);
    c.shutdown().await;
}

/// Located blocks in Hadoop's shape; on a keyed cluster each carries the
/// tdfs block token in a `TokenProto` (kind `HDFS_BLOCK_TOKEN`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_locations_carry_tokens_on_a_keyed_cluster() {
    let (_dir, c) = cluster(3, 1 << 20, |cfg| cfg.use_generated_key().unwrap()).await;
    let root = c.client("root");
    let data = files::bytes(5, (1 << 20) + 1000);
    files::write(&root, "/t.bin", &data, 300_000).await;
    files::wait_replicas(&root, "/t.bin", 3).await;
    let addr = c.meta_hdfs[&c.leader().unwrap().config().id].clone();
    let req = p::GetBlockLocationsRequestProto {
        src: "/t.bin".into(),
        offset: 0,
        length: u64::MAX,
    };
    let (h, body) = ipc_call(&addr, "alice", [2; 16], 1, "getBlockLocations", &req).await;
    assert_eq!(h.status, RpcStatusProto::Success as i32, "{h:?}");
    let lbs = p::GetBlockLocationsResponseProto::decode_length_delimited(body)
        .unwrap()
        .locations
        .unwrap();
    assert_eq!(lbs.file_length, data.len() as u64);
    assert_eq!(lbs.blocks.len(), 2);
    let ids: Vec<String> = c
        .datanodes
        .iter()
        .map(|d| d.id.clone().unwrap().0)
        .collect();
    for b in &lbs.blocks {
        assert_eq!(b.b.pool_id, tdfs_hdfs_rpc::namenode::POOL_ID);
        assert_eq!(b.locs.len(), 3);
        assert!(b.locs.iter().all(|l| ids.contains(&l.id.datanode_uuid)));
        let t = tdfs_hdfs_rpc::token::decode(&b.block_token).expect("a tdfs block token");
        assert_eq!(
            (t.block, t.gen, t.user.as_str()),
            (b.b.block_id, b.b.generation_stamp, "alice")
        );
        assert_eq!(t.mode, tdfs_proto::meta::AccessMode::Read);
    }
    // A listing with locations (as listLocatedStatus asks for it).
    let list = p::GetListingRequestProto {
        src: "/".into(),
        start_after: Vec::new(),
        need_location: true,
    };
    let (h, body) = ipc_call(&addr, "alice", [2; 16], 2, "getListing", &list).await;
    assert_eq!(h.status, RpcStatusProto::Success as i32, "{h:?}");
    let dl = p::GetListingResponseProto::decode_length_delimited(body)
        .unwrap()
        .dir_list
        .unwrap();
    let f = dl
        .partial_listing
        .iter()
        .find(|e| e.path == b"t.bin")
        .unwrap();
    assert_eq!(f.locations.as_ref().unwrap().blocks.len(), 2);
    assert_eq!(dl.remaining_entries, 0);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_during_a_java_listing_loop() {
    let h = Hadoop::get().await;
    let (_dir, c) = cluster(3, 1 << 20, |_| {}).await;
    big_dir(&c, 50).await;
    let mut child = Command::new("java")
        .args([
            "-XX:TieredStopAtLevel=1",
            "-cp",
            &h.classpath(&conf_dir(&c)),
        ])
        .args(["ListLoop", "/big", "150"])
        .env("HADOOP_USER_NAME", "root")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let c = Arc::new(tokio::sync::Mutex::new(c));
    let mut seen = Vec::new();
    let mut killed = None;
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .unwrap()
    {
        if line.starts_with("listed") {
            seen.push(line.clone());
            if seen.len() == 20 {
                // In the middle of the loop, the leader goes away.
                let mut g = c.lock().await;
                let id = g.leader().unwrap().config().id;
                g.stop_meta(id).await;
                killed = Some(id);
            }
        } else {
            println!("java: {line}");
        }
    }
    let status = child.wait().await.unwrap();
    assert!(killed.is_some(), "the loop ran past 20 listings");
    assert!(status.success(), "the client finished its loop");
    assert_eq!(seen.len(), 150, "every listing answered");
    assert!(seen.iter().all(|l| l == "listed 50"), "{seen:?}");
    let c = Arc::try_unwrap(c).ok().unwrap().into_inner();
    assert_ne!(c.leader().unwrap().config().id, killed.unwrap());
    c.shutdown().await;
}

/// Real daemons: three `tdfs meta --hdfs-addr` processes, the Hadoop
/// configuration `tdfs local` writes (HA nameservice, failover proxy), and
/// a Java loop (`ListCheckLoop`: each round creates a file, then lists the
/// directory with `listStatus` and `listFiles` and checks both hold exactly
/// the files created so far) during which the leader's process is killed
/// -9: the loop finishes, every listing right, most rounds after the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_9_of_a_meta_process_during_a_hadoop_listing_loop() {
    const ROUNDS: usize = 200;
    const KILL_AFTER: usize = 40;
    let h = Hadoop::get().await;
    let mut m = procs::MetaProcs::start_hdfs(3, &[]);
    let client = m.client("root");
    let leader = m.wait_leader(&client, Duration::from_secs(60)).await;
    let conf = tdfs_local::hadoop_conf::write(m.dir.path(), &m.hdfs).unwrap();
    let java_log = m.dir.path().join("java.log");
    let mut child = Command::new("java")
        .args(["-XX:TieredStopAtLevel=1", "-cp", &h.classpath(&conf)])
        .args(["ListCheckLoop", "/loop", &ROUNDS.to_string()])
        .env("HADOOP_USER_NAME", "root")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&java_log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // (round, its time in ms, whether its line came after the kill)
    let mut rounds: Vec<(usize, u64, bool)> = Vec::new();
    let mut killed = false;
    while let Some(line) = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
        .await
        .expect("a round within 120 s")
        .unwrap()
    {
        let Some(rest) = line.strip_prefix("ok ") else {
            println!("java: {line}");
            continue;
        };
        let (i, ms) = rest.split_once(' ').unwrap();
        rounds.push((i.parse().unwrap(), ms.parse().unwrap(), killed));
        if rounds.len() == KILL_AFTER {
            m.kill(leader);
            killed = true;
        }
    }
    let status = child.wait().await.unwrap();
    if !status.success() {
        m.dump_logs();
        println!("{}", std::fs::read_to_string(&java_log).unwrap());
    }
    assert!(status.success(), "the loop finished: {status}");
    let order: Vec<usize> = rounds.iter().map(|r| r.0).collect();
    assert_eq!(order, (0..ROUNDS).collect::<Vec<_>>(), "every round ran");
    let after: Vec<u64> = rounds.iter().filter(|r| r.2).map(|r| r.1).collect();
    assert!(
        after.len() >= ROUNDS - KILL_AFTER - 5,
        "only {} rounds after the kill",
        after.len()
    );
    let now = m.wait_leader(&client, Duration::from_secs(30)).await;
    assert_ne!(now, leader, "a new leader served the rounds after the kill");
    println!(
        "leader {leader} killed -9 after {KILL_AFTER} rounds; {} rounds after it on \
         leader {now}, the slowest {} ms",
        after.len(),
        after.iter().max().unwrap()
    );
    let listed = m.client("root").list("/loop").await.unwrap();
    assert_eq!(listed.len(), ROUNDS, "tdfs's own client lists the same");
    assert!(!m.panicked());
}

/// `tdfs meta --hdfs-addr` serves ClientNamenodeProtocol; kill -9 and a
/// restart on the same address serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdfs_meta_daemon_serves_hdfs_addr() {
    let ports = procs::free_ports(2);
    let dir = tempfile::tempdir().unwrap();
    let (addr, hdfs) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let spawn = || {
        std::process::Command::new(procs::tdfs_bin())
            .args(["meta", "--id", "1", "--addr", &addr])
            .args(["--peers", &format!("1={addr}"), "--hdfs-addr", &hdfs])
            .args(["--superuser", "root"])
            .arg("--data-dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let stat_root = || async {
        if tokio::net::TcpStream::connect(&hdfs).await.is_err() {
            return None;
        }
        let req = GetFileInfoRequestProto { src: "/".into() };
        let (h, body) = ipc_call(&hdfs, "root", [3; 16], 0, "getFileInfo", &req).await;
        (h.status == RpcStatusProto::Success as i32).then(|| {
            p::GetFileInfoResponseProto::decode_length_delimited(body)
                .unwrap()
                .fs
                .unwrap()
        })
    };
    for _ in 0..2 {
        let mut child = spawn();
        let fs =
            procs::wait_for("the daemon's HDFS port", Duration::from_secs(30), stat_root).await;
        assert_eq!((fs.owner.as_str(), fs.file_type), ("root", 1));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
