//! Quotas, snapshots, ACLs, extended attributes, truncate, concat and
//! trash through unmodified clients: Hadoop's own FsShell over
//! `webhdfs://` and over `hdfs://` (the HA nameservice `tdfs local`
//! writes), HdfsCLI, raw WebHDFS requests checking Hadoop's JSON shapes and
//! exception classes, and raw `ClientNamenodeProtocol` calls for what
//! FsShell does not reach (dfsadmin and the snapshot tools are not in the
//! client jars).

#[path = "features/rpc_calls.rs"]
mod rpc_calls;
#[path = "features/snapshot_diff.rs"]
mod snapshot_diff;
#[path = "features/webhdfs_json.rs"]
mod webhdfs_json;

use bytes::Bytes;
use prost::Message;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::MetaClient;
use tdfs_hdfs_rpc::ipc::{call_frame, client_hello, parse_reply, ErasedMessage};
use tdfs_hdfs_rpc::proto::common::rpc_response_header_proto::RpcStatusProto;
use tdfs_hdfs_rpc::proto::common::RpcResponseHeaderProto;
use tdfs_hdfs_rpc::proto::hdfs as p;
use tdfs_local::LocalCluster;
use tdfs_proto::meta::MetaRequest;
use tdfs_testkit::files;
use tdfs_testkit::files::{cluster, write};
use tdfs_testkit::hadoop::{cmd_as, conf_dir, Hadoop, ShellCmd, ShellOut};
use tdfs_testkit::webhdfs_py;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1 << 20;
/// One minute of trash, as the server defaults report it.
const TRASH_MS: u64 = 60_000;

/// A cluster with 1 MiB blocks and trash on.
async fn start() -> (tempfile::TempDir, LocalCluster) {
    cluster(3, MIB as u64, |c| c.trash_interval_ms = TRASH_MS).await
}

fn leader_http(c: &LocalCluster) -> String {
    c.meta_http[&c.leader().unwrap().config().id].clone()
}

/// Printable pseudo-random text, so FsShell's output compares exactly.
fn text(seed: u64, len: usize) -> Vec<u8> {
    files::bytes(seed, len)
        .iter()
        .enumerate()
        .map(|(i, b)| if i % 80 == 79 { b'\n' } else { b'a' + b % 26 })
        .collect()
}

/// One WebHDFS request by curl: (status, JSON body or `Null`).
fn http(method: &str, url: &str) -> (u16, Value) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "-L", "--max-time", "30", "-X", method])
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {method} {url}");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    let v = serde_json::from_str(body).unwrap_or(Value::Null);
    (code.trim().parse().unwrap(), v)
}

/// Asserts a `RemoteException` with this status and Java class.
fn remote(r: (u16, Value), status: u16, class: &str) -> String {
    assert_eq!(r.0, status, "{}", r.1);
    let e = &r.1["RemoteException"];
    assert_eq!(e["javaClassName"], class, "{}", r.1);
    assert!(class.ends_with(e["exception"].as_str().unwrap()), "{}", r.1);
    e["message"].as_str().unwrap().to_string()
}

async fn shell(h: &Hadoop, conf: &Path, cmds: &[ShellCmd]) -> Vec<ShellOut> {
    let out = h.fs_shell(conf, cmds).await;
    for o in &out {
        println!(
            "hadoop fs {:?} -> {}\n{}{}",
            o.args, o.code, o.stdout, o.stderr
        );
    }
    out
}

fn has(o: &ShellOut, parts: &[&str]) {
    let all = o.ok();
    for p in parts {
        assert!(
            all.contains(p),
            "hadoop fs {:?} lacks {p:?}:\n{all}",
            o.args
        );
    }
}

/// The FsShell commands of the WebHDFS test; the comments give the
/// index of the first command of each group.
fn webhdfs_cmds(web: &str, local: &dyn Fn(&str) -> String) -> Vec<ShellCmd> {
    let u = |p: &str| format!("webhdfs://{web}{p}");
    let r = |args: &[&str]| cmd_as("root", args);
    let file = u("/f/acl/file");
    vec![
        r(&["-put", &local("small"), &file]),
        r(&["-setfacl", "-m", "user:bob:rw-", &file]),
        r(&["-setfacl", "-m", "default:user:bob:r-x", &u("/f/acl")]),
        r(&["-getfacl", &file]),
        r(&["-getfacl", &u("/f/acl")]),
        r(&["-ls", &u("/f/acl")]),
        r(&["-setfacl", "-x", "user:bob", &file]),
        r(&["-setfacl", "-b", &u("/f/acl")]),
        r(&["-getfacl", &u("/f/acl")]),
        r(&[
            "-setfacl",
            "--set",
            "user::rw-,user:carol:r--,group::r--,other::---",
            &file,
        ]),
        r(&["-getfacl", &file]),
        // 11: extended attributes
        r(&["-setfattr", "-n", "user.color", "-v", "red", &file]),
        r(&["-setfattr", "-n", "user.bin", "-v", "0x0102ff", &file]),
        r(&["-getfattr", "-d", "-e", "hex", &file]),
        r(&["-getfattr", "-n", "user.color", &file]),
        r(&["-setfattr", "-x", "user.color", &file]),
        r(&["-getfattr", "-d", &file]),
        r(&["-setfattr", "-n", "nospace.x", "-v", "1", &file]),
        // 18: snapshots
        r(&["-put", &local("small"), &u("/f/snap/sub/a.txt")]),
        r(&["-createSnapshot", &u("/f/snap"), "s1"]),
        r(&["-rm", "-skipTrash", &u("/f/snap/sub/a.txt")]),
        r(&["-cat", &u("/f/snap/.snapshot/s1/sub/a.txt")]),
        r(&["-ls", &u("/f/snap/.snapshot/s1/sub")]),
        r(&["-renameSnapshot", &u("/f/snap"), "s1", "s2"]),
        r(&["-ls", &u("/f/snap/.snapshot")]),
        r(&["-createSnapshot", &u("/f/acl"), "nope"]),
        // 26: quotas
        r(&["-put", &local("small"), &u("/f/q/1")]),
        r(&["-put", &local("small"), &u("/f/q/2")]),
        r(&["-put", &local("small"), &u("/f/q/3")]),
        r(&["-put", &local("small"), &u("/f/q2/x")]),
        r(&["-count", "-q", &u("/f/q")]),
        r(&["-count", "-q", "-u", &u("/f/q2")]),
        // 32: truncate and concat
        r(&["-put", &local("two"), &u("/f/t/two")]),
        r(&["-truncate", "1048576", &u("/f/t/two")]),
        r(&["-cat", &u("/f/t/two")]),
        r(&["-put", &local("small"), &u("/f/t/mid")]),
        r(&["-truncate", "5", &u("/f/t/mid")]),
        r(&["-put", &local("one"), &u("/f/c/t")]),
        r(&["-put", &local("small"), &u("/f/c/s1")]),
        r(&["-put", &local("small"), &u("/f/c/s2")]),
        r(&["-concat", &u("/f/c/t"), &u("/f/c/s1"), &u("/f/c/s2")]),
        r(&["-cat", &u("/f/c/t")]),
        r(&["-test", "-e", &u("/f/c/s1")]),
        // 43: trash
        r(&["-put", &local("small"), &u("/f/trash/x")]),
        r(&["-rm", &u("/f/trash/x")]),
        r(&["-ls", &u("/user/root/.Trash/Current/f/trash")]),
        r(&["-expunge", "-immediate", "-fs", &u("/")]),
        r(&["-ls", &u("/user/root/.Trash")]),
    ]
}

/// What each command of [`webhdfs_cmds`] must have printed.
fn check_webhdfs(o: &[ShellOut], small: &[u8], one_mib: &[u8], two_mib: &[u8]) {
    for i in [0, 1, 2, 6, 7, 9, 11, 12, 15, 18, 20, 32, 35, 37, 38, 39, 43] {
        o[i].ok();
    }
    has(
        &o[3],
        &["# owner: root", "user:bob:rw-", "mask::rw-", "other::r--"],
    );
    has(&o[4], &["default:user:bob:r-x", "default:mask::r-x"]);
    assert!(o[5].ok().contains("-rw-rw-r--+"), "{}", o[5].stdout);
    assert!(!o[8].ok().contains("bob"), "{}", o[8].stdout);
    has(&o[10], &["user:carol:r--", "other::---"]);
    has(&o[13], &["user.bin=0x0102ff", "user.color=0x726564"]);
    has(&o[14], &["user.color=\"red\""]);
    assert!(!o[16].ok().contains("color"), "{}", o[16].stdout);
    assert_ne!(o[17].code, 0, "a name without a namespace is refused");
    has(&o[19], &["Created snapshot /f/snap/.snapshot/s1"]);
    assert_eq!(o[21].ok().as_bytes(), small, "a deleted file reads from s1");
    has(&o[22], &["/f/snap/.snapshot/s1/sub/a.txt"]);
    o[23].ok();
    has(&o[24], &["/f/snap/.snapshot/s2"]);
    o[25].fails_with("snapshottable");
    o[26].ok();
    o[27].ok();
    o[28].fails_with("The NameSpace quota (directories and files) of directory /f/q is exceeded");
    o[29].fails_with("The DiskSpace quota of /f/q2 is exceeded");
    let count: Vec<&str> = o[30].ok().split_whitespace().collect();
    assert_eq!(
        &count[..6],
        &["3", "0", "none", "inf", "1", "2"],
        "{count:?}"
    );
    let usage: Vec<&str> = o[31].ok().split_whitespace().collect();
    assert_eq!(&usage[..3], &["none", "inf", "1048576"], "{usage:?}");
    has(&o[33], &["Truncated ", "/f/t/two to length: 1048576"]);
    assert!(
        o[34].ok().as_bytes() == &two_mib[..MIB],
        "-cat after -truncate"
    );
    // Inside a block the truncate is accepted; the block recovers (or, in
    // a build without recovery, stays under construction).
    assert!(
        o[36].ok().contains("/f/t/mid to length: 5"),
        "{}",
        o[36].stdout
    );
    o[40].ok();
    let want = [one_mib, small, small].concat();
    assert!(o[41].ok().as_bytes() == &want[..], "-cat after -concat");
    assert_eq!(o[42].code, 1, "a concat source is gone");
    // FsShell logs the move (no logger here); the listing shows it.
    o[44].ok();
    has(&o[45], &["/user/root/.Trash/Current/f/trash/x"]);
    o[46].ok();
    assert!(!o[47].stdout.contains("Current"), "{}", o[47].stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsshell_features_over_webhdfs() {
    let h = Hadoop::get().await;
    let (dir, c) = start().await;
    let d = dir.path();
    let web = leader_http(&c);
    let conf = conf_dir(d, &[("dfs.blocksize", "1048576")]);
    let (small, one_mib) = (b"hello\nworld\n".to_vec(), text(1, MIB));
    let two_mib = text(2, 2 * MIB);
    for (n, b) in [("small", &small), ("one", &one_mib), ("two", &two_mib)] {
        std::fs::write(d.join(n), b).unwrap();
    }
    let local = |n: &str| d.join(n).display().to_string();
    let root = c.client("root");
    root.mkdirs("/f/snap/sub", true).await.unwrap();
    for p in ["/f/q", "/f/q2", "/f/acl", "/f/t", "/f/c", "/f/trash"] {
        root.mkdirs(p, true).await.unwrap();
    }
    // What dfsadmin would do, through WebHDFS.
    let op = |path: &str, q: &str| format!("http://{web}/webhdfs/v1{path}?user.name=root&op={q}");
    assert_eq!(http("PUT", &op("/f/snap", "ALLOWSNAPSHOT")).0, 200);
    let q = "SETQUOTA&namespacequota=3&storagespacequota=-1";
    assert_eq!(http("PUT", &op("/f/q", q)).0, 200);
    let q = "SETQUOTA&namespacequota=9223372036854775807&storagespacequota=1048576";
    assert_eq!(http("PUT", &op("/f/q2", q)).0, 200);

    let cmds = webhdfs_cmds(&web, &local);
    let o = shell(h, &conf, &cmds).await;
    check_webhdfs(&o, &small, &one_mib, &two_mib);
    // The same state as tdfs's own client sees it.
    let xs = root.xattrs("/f/acl/file", &[]).await.unwrap();
    assert_eq!(xs.len(), 1);
    assert_eq!(
        (xs[0].name.as_str(), &xs[0].value[..]),
        ("user.bin", &[1u8, 2, 255][..])
    );
    let acl = root.acl_status("/f/acl/file").await.unwrap();
    assert!(acl
        .entries
        .iter()
        .any(|e| e.to_string() == "user:carol:r--"));
    let q = root.quota_usage("/f/q").await.unwrap();
    assert_eq!((q.ns_quota, q.file_and_dir_count), (Some(3), 3));
    assert_eq!(root.snapshots("/f/snap").await.unwrap()[0].name, "s2");
    c.shutdown().await;
}

/// Hadoop's JSON shapes and exception classes, request by request, then
/// HdfsCLI on the same cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhdfs_feature_json_errors_and_hdfscli() {
    let (_dir, c) = start().await;
    let web = leader_http(&c);
    let root = c.client("root");
    root.mkdirs("/j/s", true).await.unwrap();
    root.mkdirs("/j/plain", true).await.unwrap();
    write(&root, "/j/s/one", &text(3, MIB), 64 << 10).await;
    let at = |path: &str, q: &str| format!("http://{web}/webhdfs/v1{path}?user.name=root&op={q}");
    webhdfs_json::snapshot_json(&at).await;
    webhdfs_json::acl_and_xattr_json(&at);
    webhdfs_json::quota_and_misc_json(&at, &root).await;

    // HdfsCLI, unchanged, on a directory with a name quota of 10.
    // Her working directory and her home (where her trash goes), as an
    // administrator makes them.
    for dir in ["/py/feat", "/user/alice"] {
        root.mkdirs(dir, true).await.unwrap();
        let own = MetaRequest::SetOwner {
            path: dir.into(),
            owner: Some("alice".into()),
            group: None,
        };
        root.meta(own).await.unwrap();
    }
    let q = "SETQUOTA&namespacequota=10&storagespacequota=-1";
    assert_eq!(http("PUT", &at("/py/feat", q)).0, 200);
    let py = webhdfs_py::python().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhdfs/features.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(py)
            .args([script, &web, "alice", "/py/feat"])
            .output(),
    )
    .await
    .expect("HdfsCLI finishes within 2 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "HdfsCLI failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsshell_features_over_hdfs_rpc() {
    let h = Hadoop::get().await;
    let (_dir, c) = start().await;
    let root = c.client("root");
    for p in ["/h/acl", "/h/snap", "/h/q", "/h/t", "/h/c", "/h/trash"] {
        root.mkdirs(p, true).await.unwrap();
    }
    let two = text(5, 2 * MIB);
    write(&root, "/h/acl/file", b"acl", 3).await;
    write(&root, "/h/snap/f", b"snap", 4).await;
    write(&root, "/h/t/two", &two, 64 << 10).await;
    write(&root, "/h/c/t", &two[..MIB], 64 << 10).await;
    write(&root, "/h/c/s", b"0123456789", 10).await;
    write(&root, "/h/c/s2", b"abc", 3).await;
    write(&root, "/h/trash/x", b"x", 1).await;
    rpc_calls::raw_namenode_calls(&c).await;

    let conf = c.cfg.dir.join("hadoop-conf");
    let r = |args: &[&str]| cmd_as("root", args);
    let cmds = vec![
        r(&["-setfacl", "-m", "user:bob:r--", "/h/acl/file"]),
        r(&["-getfacl", "/h/acl/file"]),
        r(&["-ls", "/h/acl"]),
        r(&["-setfacl", "-b", "/h/acl/file"]),
        r(&["-setfattr", "-n", "user.k", "-v", "v1", "/h/acl/file"]),
        r(&["-getfattr", "-d", "/h/acl/file"]),
        r(&["-setfattr", "-x", "user.k", "/h/acl/file"]),
        r(&["-getfattr", "-d", "/h/acl/file"]),
        // 8: snapshots
        r(&["-createSnapshot", "/h/snap", "a"]),
        r(&["-rm", "-skipTrash", "/h/snap/f"]),
        r(&["-createSnapshot", "/h/snap", "b"]),
        r(&["-ls", "/h/snap/.snapshot/a"]),
        r(&["-createSnapshot", "/h/acl", "x"]),
        // 13: quotas
        r(&["-count", "-q", "/h/q"]),
        r(&["-mkdir", "/h/q/a"]),
        r(&["-mkdir", "/h/q/b"]),
        r(&["-count", "-q", "-u", "/h/q"]),
        // 17: truncate, concat, trash
        r(&["-truncate", "1048576", "/h/t/two"]),
        r(&["-concat", "/h/c/t", "/h/c/s", "/h/c/s2"]),
        r(&["-stat", "%b", "/h/c/t"]),
        r(&["-rm", "/h/trash/x"]),
        r(&["-ls", "/user/root/.Trash/Current/h/trash"]),
        r(&["-expunge", "-immediate"]),
        r(&["-ls", "/user/root/.Trash"]),
    ];
    let o = shell(h, &conf, &cmds).await;
    for i in [0, 3, 4, 6, 8, 9, 10, 14, 18, 22] {
        o[i].ok();
    }
    has(&o[1], &["user:bob:r--", "mask::r--"]);
    assert!(o[2].ok().contains("-rw-r--r--+"), "{}", o[2].stdout);
    has(&o[5], &["user.k=\"v1\""]);
    assert!(!o[7].ok().contains("user.k"), "{}", o[7].stdout);
    has(&o[11], &["/h/snap/.snapshot/a/f"]);
    o[12].fails_with("snapshottable");
    let count: Vec<&str> = o[13].ok().split_whitespace().collect();
    assert_eq!(
        &count[..7],
        &["2", "1", "none", "inf", "1", "0", "0"],
        "{count:?}"
    );
    o[15].fails_with("The NameSpace quota (directories and files) of directory /h/q is exceeded");
    let usage: Vec<&str> = o[16].ok().split_whitespace().collect();
    assert_eq!(&usage[..2], &["2", "0"], "{usage:?}");
    has(&o[17], &["Truncated ", "/h/t/two to length: 1048576"]);
    assert_eq!(o[19].ok().trim(), (MIB + 13).to_string());
    o[20].ok();
    has(&o[21], &["/user/root/.Trash/Current/h/trash/x"]);
    assert!(!o[23].stdout.contains("Current"), "{}", o[23].stdout);
    rpc_calls::raw_snapshot_reads(&c).await;
    assert_eq!(root.stat("/h/t/two").await.unwrap().length, MIB as u64);
    assert!(
        root.stat("/h/c/s").await.is_err(),
        "the concat source is gone"
    );
    c.shutdown().await;
}

/// A real snapshot diff read by Hadoop's own client over `hdfs://` (through
/// the paged `getSnapshotDiffReportListing`) and over `webhdfs://`, both
/// ways and against the current state, equal to tdfs's own report; and
/// the raw `GETSNAPSHOTDIFFLISTING` pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hadoop_snapshot_diff_reports_page_through_the_listing() {
    let h = Hadoop::get().await;
    let (_dir, c) = start().await;
    let root = c.client("root");
    snapshot_diff::make_diff(&root).await;
    let conf = c.cfg.dir.join("hadoop-conf");
    snapshot_diff::hadoop_reports_match(h, &conf, "hdfs://tdfs/", &root).await;
    let web = leader_http(&c);
    let uri = format!("webhdfs://{web}/");
    snapshot_diff::hadoop_reports_match(h, &conf, &uri, &root).await;
    snapshot_diff::raw_listing_pages(&web);
    snapshot_diff::raw_rpc_listing_pages(&c).await;
    c.shutdown().await;
}
