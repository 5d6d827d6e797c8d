//! Quotas, snapshots, ACLs, extended attributes, truncate, concat and
//! trash through unmodified clients: Hadoop's own FsShell over
//! `webhdfs://` and over `hdfs://` (the HA nameservice `tdfs local`
//! writes), HdfsCLI, raw WebHDFS requests checking Hadoop's JSON shapes and
//! exception classes, and raw `ClientNamenodeProtocol` calls for what
//! FsShell does not reach (dfsadmin and the snapshot tools are not in the
//! client jars).

mod common;

use bytes::Bytes;
use common::data::{cluster, write};
use common::hadoop::{cmd_as, conf_dir, Hadoop, ShellCmd, ShellOut};
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
    common::data::bytes(seed, len)
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

    let u = |p: &str| format!("webhdfs://{web}{p}");
    let r = |args: &[&str]| cmd_as("root", args);
    let file = u("/f/acl/file");
    let cmds = vec![
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
    ];
    let o = shell(h, &conf, &cmds).await;
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
    assert_eq!(
        o[21].ok().as_bytes(),
        &small[..],
        "a deleted file reads from s1"
    );
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
    let want = [&one_mib[..], &small[..], &small[..]].concat();
    assert!(o[41].ok().as_bytes() == &want[..], "-cat after -concat");
    assert_eq!(o[42].code, 1, "a concat source is gone");
    // FsShell logs the move (no logger here); the listing shows it.
    o[44].ok();
    has(&o[45], &["/user/root/.Trash/Current/f/trash/x"]);
    o[46].ok();
    assert!(!o[47].stdout.contains("Current"), "{}", o[47].stdout);

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
    snapshot_json(&at).await;
    acl_and_xattr_json(&at);
    quota_and_misc_json(&at, &root).await;

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
    let py = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webhdfs-venv/bin/python");
    assert!(
        py.exists(),
        "the HdfsCLI venv of t80_webhdfs is missing: {}",
        py.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhdfs/features.py");
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&py)
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

async fn snapshot_json(at: &impl Fn(&str, &str) -> String) {
    assert_eq!(http("PUT", &at("/j/s", "ALLOWSNAPSHOT")).0, 200);
    let st = http("GET", &at("/j/s", "GETFILESTATUS")).1;
    assert_eq!(st["FileStatus"]["snapshotEnabled"], true, "{st}");
    let (code, v) = http("PUT", &at("/j/s", "CREATESNAPSHOT&snapshotname=s1"));
    assert_eq!(
        (code, v),
        (200, serde_json::json!({"Path": "/j/s/.snapshot/s1"}))
    );
    assert_eq!(http("DELETE", &at("/j/s/one", "DELETE")).1["boolean"], true);
    assert_eq!(http("PUT", &at("/j/s/new", "MKDIRS")).1["boolean"], true);
    assert_eq!(
        http("PUT", &at("/j/s", "CREATESNAPSHOT&snapshotname=s2")).0,
        200
    );
    let v = http(
        "GET",
        &at("/j/s", "GETSNAPSHOTDIFF&oldsnapshotname=s1&snapshotname=s2"),
    )
    .1;
    let r = &v["SnapshotDiffReport"];
    assert_eq!(
        (&r["snapshotRoot"], &r["fromSnapshot"], &r["toSnapshot"]),
        (&"/j/s".into(), &"s1".into(), &"s2".into())
    );
    let diff = r["diffList"].as_array().unwrap();
    for (t, p) in [("CREATE", "new"), ("DELETE", "one"), ("MODIFY", "")] {
        assert!(
            diff.iter().any(|e| e["type"] == t && e["sourcePath"] == p),
            "{t} {p} in {v}"
        );
    }
    let v = http("GET", &at("/j/s", "GETSNAPSHOTLIST")).1;
    let l = v["SnapshotList"].as_array().unwrap();
    assert_eq!(l.len(), 2, "{v}");
    assert_eq!(l[0]["fullPath"], "/j/s/.snapshot/s1");
    assert_eq!(l[0]["dirStatus"]["pathSuffix"], "s1");
    assert_eq!(l[0]["deletionStatus"], "ACTIVE");
    let v = http("GET", &at("/", "GETSNAPSHOTTABLEDIRECTORYLIST")).1;
    let d = &v["SnapshottableDirectoryList"][0];
    assert_eq!(
        (&d["parentFullPath"], &d["dirStatus"]["pathSuffix"]),
        (&"/j".into(), &"s".into()),
        "{v}"
    );
    assert_eq!(d["snapshotNumber"], 2);
    // Reads of the deleted file through the snapshot: status, listing,
    // checksum and the bytes.
    let st = http("GET", &at("/j/s/.snapshot/s1/one", "GETFILESTATUS")).1;
    assert_eq!(st["FileStatus"]["length"], MIB, "{st}");
    let ls = http("GET", &at("/j/s/.snapshot/s1", "LISTSTATUS")).1;
    assert_eq!(
        ls["FileStatuses"]["FileStatus"][0]["pathSuffix"], "one",
        "{ls}"
    );
    let ck = http(
        "GET",
        &at(
            "/j/s/.snapshot/s1/one",
            "GETFILECHECKSUM&checksumcombinemode=COMPOSITE_CRC",
        ),
    )
    .1;
    let crc = format!("{:08x}", crc32c::crc32c(&text(3, MIB)));
    assert_eq!(ck["FileChecksum"]["bytes"], crc, "{ck}");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-L",
            "--max-time",
            "30",
            &at("/j/s/.snapshot/s1/one", "OPEN"),
        ])
        .output()
        .unwrap();
    assert!(out.stdout == text(3, MIB), "OPEN of a snapshot path");
    // Errors: snapshots of a plain directory, a missing snapshot, writes
    // into a snapshot.
    let m = remote(
        http("PUT", &at("/j/plain", "CREATESNAPSHOT&snapshotname=x")),
        403,
        "org.apache.hadoop.hdfs.protocol.SnapshotException",
    );
    assert!(m.contains("snapshottable"), "{m}");
    remote(
        http("DELETE", &at("/j/s", "DELETESNAPSHOT&snapshotname=nope")),
        403,
        "org.apache.hadoop.hdfs.protocol.SnapshotException",
    );
    remote(
        http("PUT", &at("/j/s", "RENAMESNAPSHOT&snapshotname=x")),
        400,
        "java.lang.IllegalArgumentException",
    );
    assert_eq!(
        http(
            "PUT",
            &at("/j/s", "RENAMESNAPSHOT&oldsnapshotname=s2&snapshotname=s3")
        )
        .0,
        200
    );
    assert_eq!(
        http("DELETE", &at("/j/s", "DELETESNAPSHOT&snapshotname=s3")).0,
        200
    );
    let r = http("PUT", &at("/j/s/.snapshot/s1/x", "MKDIRS"));
    assert_eq!(r.0, 403, "{}", r.1);
}

fn acl_and_xattr_json(at: &impl Fn(&str, &str) -> String) {
    let f = "/j/plain";
    assert_eq!(
        http("PUT", &at(f, "MODIFYACLENTRIES&aclspec=user:bob:rwx")).0,
        200
    );
    let v = http("GET", &at(f, "GETACLSTATUS")).1;
    let a = &v["AclStatus"];
    assert_eq!(
        a["entries"],
        serde_json::json!(["user:bob:rwx", "group::r-x"]),
        "{v}"
    );
    assert_eq!(
        (&a["owner"], &a["permission"], &a["stickyBit"]),
        (&"root".into(), &"775".into(), &false.into())
    );
    assert_eq!(
        http("GET", &at(f, "GETFILESTATUS")).1["FileStatus"]["aclBit"],
        true
    );
    let m = remote(
        http("PUT", &at(f, "SETACL&aclspec=user:bob:rwz")),
        400,
        "java.lang.IllegalArgumentException",
    );
    assert!(m.contains("aclspec"), "{m}");
    remote(
        http("PUT", &at(f, "SETACL")),
        400,
        "java.lang.IllegalArgumentException",
    );
    let many: Vec<String> = (0..33).map(|i| format!("user:u{i}:r--")).collect();
    remote(
        http(
            "PUT",
            &at(f, &format!("MODIFYACLENTRIES&aclspec={}", many.join(","))),
        ),
        403,
        "org.apache.hadoop.hdfs.protocol.AclException",
    );
    assert_eq!(http("PUT", &at(f, "REMOVEACL")).0, 200);
    assert!(http("GET", &at(f, "GETFILESTATUS")).1["FileStatus"]
        .get("aclBit")
        .is_none());
    // Extended attributes in each of Hadoop's encodings.
    let set = |q: &str| http("PUT", &at(f, &format!("SETXATTR&{q}")));
    assert_eq!(
        set("xattr.name=user.a&xattr.value=0x6869&flag=CREATE").0,
        200
    );
    assert_eq!(
        set("xattr.name=user.b&xattr.value=%22text%22&flag=CREATE").0,
        200
    );
    remote(
        set("xattr.name=user.a&xattr.value=0x00&flag=CREATE"),
        403,
        "java.io.IOException",
    );
    assert_eq!(
        set("xattr.name=user.a&xattr.value=0sAAE%3D&flag=REPLACE").0,
        200
    );
    remote(
        set("xattr.name=user.c&xattr.value=0xzz&flag=CREATE"),
        403,
        "java.io.IOException",
    );
    remote(
        set("xattr.name=user.c&xattr.value=1"),
        400,
        "java.lang.IllegalArgumentException",
    );
    remote(
        set("xattr.name=user.c&flag=SOMETIMES"),
        400,
        "java.lang.IllegalArgumentException",
    );
    remote(
        set("xattr.name=nons&flag=CREATE"),
        400,
        "java.lang.IllegalArgumentException",
    );
    let get = |q: &str| http("GET", &at(f, &format!("GETXATTRS&{q}")));
    let v = get("xattr.name=user.a&xattr.name=user.b&encoding=HEX").1;
    let mut xs: Vec<(String, String)> = v["XAttrs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["name"].as_str().unwrap().into(),
                x["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    xs.sort();
    assert_eq!(
        xs,
        [
            ("user.a".to_string(), "0x0001".to_string()),
            ("user.b".into(), "0x74657874".into())
        ],
        "{v}"
    );
    assert_eq!(
        get("xattr.name=user.b&encoding=text").1["XAttrs"][0]["value"],
        "\"text\""
    );
    assert_eq!(
        get("xattr.name=user.a&encoding=base64").1["XAttrs"][0]["value"],
        "0sAAE="
    );
    remote(
        get("xattr.name=user.a&encoding=rot13"),
        400,
        "java.lang.IllegalArgumentException",
    );
    remote(
        get("xattr.name=user.a"),
        400,
        "java.lang.IllegalArgumentException",
    );
    let names = http("GET", &at(f, "LISTXATTRS")).1;
    let mut names: Vec<String> =
        serde_json::from_str(names["XAttrNames"].as_str().unwrap()).unwrap();
    names.sort();
    assert_eq!(names, ["user.a", "user.b"]);
    assert_eq!(http("PUT", &at(f, "REMOVEXATTR&xattr.name=user.a")).0, 200);
    assert_eq!(get("encoding=hex").1["XAttrs"].as_array().unwrap().len(), 1);
}

async fn quota_and_misc_json(at: &impl Fn(&str, &str) -> String, root: &Arc<MetaClient>) {
    root.mkdirs("/j/q", true).await.unwrap();
    assert_eq!(
        http(
            "PUT",
            &at("/j/q", "SETQUOTA&namespacequota=2&storagespacequota=-1")
        )
        .0,
        200
    );
    assert_eq!(http("PUT", &at("/j/q/a", "MKDIRS")).0, 200);
    let m = remote(
        http("PUT", &at("/j/q/b", "MKDIRS")),
        403,
        "org.apache.hadoop.hdfs.protocol.NSQuotaExceededException",
    );
    assert!(m.contains("quota=2 file count=3"), "{m}");
    remote(
        http(
            "PUT",
            &at("/j/q", "SETQUOTA&namespacequota=abc&storagespacequota=-1"),
        ),
        400,
        "java.lang.IllegalArgumentException",
    );
    remote(
        http("PUT", &at("/j/q", "SETQUOTA&namespacequota=5")),
        400,
        "java.lang.IllegalArgumentException",
    );
    let q = "SETQUOTABYSTORAGETYPE&storagetype=DISK&storagespacequota=1000";
    assert_eq!(http("PUT", &at("/j/q", q)).0, 200);
    let v = http("GET", &at("/j/q", "GETQUOTAUSAGE")).1;
    let u = &v["QuotaUsage"];
    assert_eq!(
        (&u["quota"], &u["spaceQuota"], &u["fileAndDirectoryCount"]),
        (&2.into(), &(-1).into(), &2.into()),
        "{v}"
    );
    assert_eq!(u["typeQuota"]["DISK"]["quota"], 1000, "{v}");
    let v = http("GET", &at("/j/q", "GETCONTENTSUMMARY")).1;
    let s = &v["ContentSummary"];
    assert_eq!(
        (&s["quota"], &s["directoryCount"], &s["spaceQuota"]),
        (&2.into(), &2.into(), &(-1).into()),
        "{v}"
    );
    // A space quota too small for one block (a block reserves its full
    // size times the replication).
    root.mkdirs("/j/ds", true).await.unwrap();
    assert_eq!(
        http(
            "PUT",
            &at(
                "/j/ds",
                "SETQUOTA&namespacequota=9223372036854775807&storagespacequota=1024"
            )
        )
        .0,
        200
    );
    let w = tdfs_client::FileWriter::create(root.clone(), "/j/ds/f", Default::default()).await;
    let e = match w {
        Ok(mut w) => w
            .write(b"x")
            .await
            .and(w.close().await.map(|_| ()))
            .unwrap_err(),
        Err(e) => e,
    };
    assert_eq!(
        tdfs_proto::java_class::java_class(e.hadoop_exception()),
        "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException",
        "{e}"
    );
    // Truncate at a block boundary, concat, and their bad parameters.
    write(&root.clone(), "/j/t", &text(4, 2 * MIB), 64 << 10).await;
    let (code, v) = http("POST", &at("/j/t", "TRUNCATE&newlength=1048576"));
    assert_eq!((code, v), (200, serde_json::json!({"boolean": true})));
    remote(
        http("POST", &at("/j/t", "TRUNCATE")),
        400,
        "java.lang.IllegalArgumentException",
    );
    remote(
        http("POST", &at("/j/t", "TRUNCATE&newlength=-3")),
        400,
        "java.lang.IllegalArgumentException",
    );
    write(&root.clone(), "/j/u", b"tail", 4).await;
    assert_eq!(http("POST", &at("/j/t", "CONCAT&sources=/j/u")).0, 200);
    assert_eq!(root.stat("/j/t").await.unwrap().length, MIB as u64 + 4);
    remote(
        http("POST", &at("/j/t", "CONCAT")),
        400,
        "java.lang.IllegalArgumentException",
    );
    // Server defaults carry the trash interval; the trash root is the
    // caller's; DELETE never moves to the trash.
    let d = http("GET", &at("/", "GETSERVERDEFAULTS")).1;
    assert_eq!(d["FsServerDefaults"]["trashInterval"], TRASH_MS / 60_000);
    let t = http(
        "GET",
        &format!(
            "{}&user.name=bob",
            at("/j", "GETTRASHROOT").replace("user.name=root&", "")
        ),
    )
    .1;
    assert_eq!(t, serde_json::json!({"Path": "/user/bob/.Trash"}));
    assert_eq!(http("DELETE", &at("/j/u2", "DELETE")).1["boolean"], false);
    assert_eq!(http("DELETE", &at("/j/t", "DELETE")).1["boolean"], true);
    assert!(
        root.stat("/user/root/.Trash").await.is_err(),
        "WebHDFS DELETE used the trash"
    );
}

/// One raw Hadoop IPC call on a fresh connection to the leader: the
/// reply's header and body.
async fn ipc(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
) -> (RpcResponseHeaderProto, Bytes) {
    let addr = &c.meta_hdfs[&c.leader().unwrap().config().id];
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let id = rand::random::<[u8; 16]>();
    s.write_all(&client_hello("root", &id)).await.unwrap();
    s.write_all(&call_frame(1, &id, method, req)).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    parse_reply(Bytes::from(buf)).unwrap()
}

/// A call that must succeed; its response decoded.
async fn ok_call<R: Message + Default>(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
) -> R {
    let (h, body) = ipc(c, method, req).await;
    assert_eq!(h.status, RpcStatusProto::Success as i32, "{method}: {h:?}");
    R::decode_length_delimited(body).unwrap()
}

/// A call that must fail with `class`; its message.
async fn failed_call(
    c: &LocalCluster,
    method: &str,
    req: &dyn ErasedMessage,
    class: &str,
) -> String {
    let (h, _) = ipc(c, method, req).await;
    assert_eq!(
        h.exception_class_name.as_deref(),
        Some(class),
        "{method}: {h:?}"
    );
    h.error_msg.unwrap_or_default()
}

/// What dfsadmin and the snapshot tools call, which FsShell cannot.
async fn raw_namenode_calls(c: &LocalCluster) {
    let d: p::GetServerDefaultsResponseProto =
        ok_call(c, "getServerDefaults", &p::GetServerDefaultsRequestProto {}).await;
    assert_eq!(d.server_defaults.trash_interval, Some(TRASH_MS / 60_000));
    let allow = p::AllowSnapshotRequestProto {
        snapshot_root: "/h/snap".into(),
    };
    let _: p::AllowSnapshotResponseProto = ok_call(c, "allowSnapshot", &allow).await;
    let q = p::SetQuotaRequestProto {
        path: "/h/q".into(),
        namespace_quota: 2,
        storagespace_quota: u64::MAX,
        storage_type: None,
    };
    let _: p::SetQuotaResponseProto = ok_call(c, "setQuota", &q).await;
    let q = p::SetQuotaRequestProto {
        path: "/h/q".into(),
        namespace_quota: i64::MAX as u64,
        storagespace_quota: 5000,
        storage_type: Some(p::StorageTypeProto::Disk as i32),
    };
    let _: p::SetQuotaResponseProto = ok_call(c, "setQuota", &q).await;
    let u: p::GetQuotaUsageResponseProto = ok_call(
        c,
        "getQuotaUsage",
        &p::GetQuotaUsageRequestProto {
            path: "/h/q".into(),
        },
    )
    .await;
    assert_eq!(
        (
            u.usage.quota,
            u.usage.space_quota,
            u.usage.file_and_directory_count
        ),
        (2, u64::MAX, 1)
    );
    let t = &u.usage.type_quota_infos.unwrap().type_quota_info[0];
    assert_eq!(
        (t.r#type, t.quota),
        (Some(p::StorageTypeProto::Disk as i32), 5000)
    );
    failed_call(
        c,
        "allowSnapshot",
        &p::AllowSnapshotRequestProto {
            snapshot_root: "/nope".into(),
        },
        "java.io.FileNotFoundException",
    )
    .await;
    let bad = p::ModifyAclEntriesRequestProto {
        src: "/h/acl".into(),
        acl_spec: vec![p::AclEntryProto {
            r#type: 42,
            scope: 0,
            permissions: 7,
            name: None,
        }],
    };
    failed_call(
        c,
        "modifyAclEntries",
        &bad,
        "org.apache.hadoop.HadoopIllegalArgumentException",
    )
    .await;
}

async fn raw_snapshot_reads(c: &LocalCluster) {
    let l: p::GetSnapshottableDirListingResponseProto = ok_call(
        c,
        "getSnapshottableDirListing",
        &p::GetSnapshottableDirListingRequestProto {},
    )
    .await;
    let l = l.snapshottable_dir_list.unwrap().snapshottable_dir_listing;
    assert_eq!(l.len(), 1);
    assert_eq!(
        (
            l[0].parent_fullpath.as_slice(),
            l[0].dir_status.path.as_slice()
        ),
        (&b"/h"[..], &b"snap"[..])
    );
    let s: p::GetSnapshotListingResponseProto = ok_call(
        c,
        "getSnapshotListing",
        &p::GetSnapshotListingRequestProto {
            snapshot_root: "/h/snap".into(),
        },
    )
    .await;
    let s = s.snapshot_list.unwrap().snapshot_listing;
    assert_eq!((s.len(), s[0].dir_status.path.as_slice()), (2, &b"a"[..]));
    let r = p::GetSnapshotDiffReportRequestProto {
        snapshot_root: "/h/snap".into(),
        from_snapshot: "a".into(),
        to_snapshot: "b".into(),
    };
    let r: p::GetSnapshotDiffReportResponseProto = ok_call(c, "getSnapshotDiffReport", &r).await;
    let e = &r.diff_report.diff_report_entries;
    assert!(
        e.iter()
            .any(|e| e.modification_label == "-" && e.fullpath == b"f"),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|e| e.modification_label == "M" && e.fullpath.is_empty()),
        "{e:?}"
    );
    let del = p::DeleteSnapshotRequestProto {
        snapshot_root: "/h/snap".into(),
        snapshot_name: "zz".into(),
    };
    failed_call(
        c,
        "deleteSnapshot",
        &del,
        "org.apache.hadoop.hdfs.protocol.SnapshotException",
    )
    .await;
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
    raw_namenode_calls(&c).await;

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
    raw_snapshot_reads(&c).await;
    assert_eq!(root.stat("/h/t/two").await.unwrap().length, MIB as u64);
    assert!(
        root.stat("/h/c/s").await.is_err(),
        "the concat source is gone"
    );
    c.shutdown().await;
}
