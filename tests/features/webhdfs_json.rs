//! t83's raw WebHDFS checks: Hadoop's JSON shapes for snapshots, ACLs,
//! xattrs and quotas, and the `RemoteException` (status and Java class)
//! of every kind of bad request.

use super::*;

pub async fn snapshot_json(at: &impl Fn(&str, &str) -> String) {
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
    snapshot_reads(at);
    snapshot_errors(at);
}

fn snapshot_reads(at: &impl Fn(&str, &str) -> String) {
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
}

fn snapshot_errors(at: &impl Fn(&str, &str) -> String) {
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

pub fn acl_and_xattr_json(at: &impl Fn(&str, &str) -> String) {
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
    xattr_json(at);
}

fn xattr_json(at: &impl Fn(&str, &str) -> String) {
    let f = "/j/plain";
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
    xattr_reads(at);
}

fn xattr_reads(at: &impl Fn(&str, &str) -> String) {
    let f = "/j/plain";
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

pub async fn quota_and_misc_json(at: &impl Fn(&str, &str) -> String, root: &Arc<MetaClient>) {
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
    space_quota(at, root).await;
    truncate_and_concat(at, root).await;
    defaults_and_trash(at, root).await;
}

async fn space_quota(at: &impl Fn(&str, &str) -> String, root: &Arc<MetaClient>) {
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
    // And through WebHDFS's two steps: the data step answers the
    // exception Hadoop's client unwraps.
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "-L", "--max-time", "30", "-X", "PUT"])
        .args(["-H", "Content-Type: application/octet-stream"])
        .args(["--data-binary", "some bytes", "-w", "\n%{http_code}"])
        .arg(at("/j/ds/g", "CREATE"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    let r = (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    );
    let m = remote(
        r,
        403,
        "org.apache.hadoop.hdfs.protocol.DSQuotaExceededException",
    );
    assert!(
        m.contains("The DiskSpace quota of /j/ds is exceeded"),
        "{m}"
    );
}

async fn truncate_and_concat(at: &impl Fn(&str, &str) -> String, root: &Arc<MetaClient>) {
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
}

async fn defaults_and_trash(at: &impl Fn(&str, &str) -> String, root: &Arc<MetaClient>) {
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
