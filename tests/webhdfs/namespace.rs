//! WebHDFS namespace operations with curl, and the Hadoop exceptions
//! (status, `RemoteException` JSON) their failures carry.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn namespace_operations_and_hadoop_errors() {
    let (dir, c, http) = start(3).await;
    let d = dir.path();
    let root = c.client("root");
    // As the superuser unless the query names another user.
    let get = |p: &str, q: &str| {
        if q.contains("user.name=") {
            url(&http, p, q)
        } else {
            url(&http, p, &format!("{q}&user.name=root"))
        }
    };

    // MKDIRS with a permission, then status and listings.
    let r = curl(
        d,
        &["-X", "PUT"],
        &get("/a/b", "op=MKDIRS&permission=750&user.name=root"),
    )
    .await;
    assert_eq!(r.json(), serde_json::json!({"boolean": true}));
    let r = curl(d, &[], &get("/a/b", "op=GETFILESTATUS")).await;
    let st = &r.json()["FileStatus"];
    assert_eq!(
        (st["type"].as_str(), st["permission"].as_str()),
        (Some("DIRECTORY"), Some("750"))
    );
    for i in 0..5 {
        let w =
            tdfs_client::FileWriter::create(root.clone(), &format!("/a/f{i}"), Default::default())
                .await
                .unwrap();
        w.close().await.unwrap();
    }
    let r = curl(d, &[], &get("/a", "op=LISTSTATUS")).await;
    let names: Vec<String> = r.json()["FileStatuses"]["FileStatus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pathSuffix"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b", "f0", "f1", "f2", "f3", "f4"]);
    let r = curl(d, &[], &get("/a", "op=LISTSTATUS_BATCH&startAfter=f1")).await;
    let j = r.json();
    assert_eq!(j["DirectoryListing"]["remainingEntries"], 0);
    assert_eq!(
        j["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let r = curl(d, &[], &get("/a", "op=GETCONTENTSUMMARY")).await;
    let cs = &r.json()["ContentSummary"];
    assert_eq!(
        (cs["fileCount"].as_u64(), cs["directoryCount"].as_u64()),
        (Some(5), Some(2))
    );
    let r = curl(d, &[], &get("/", "op=GETHOMEDIRECTORY&user.name=carol")).await;
    assert_eq!(r.json(), serde_json::json!({"Path": "/user/carol"}));
    let r = curl(d, &[], &get("/", "op=GETTRASHROOT&user.name=carol")).await;
    assert_eq!(r.json(), serde_json::json!({"Path": "/user/carol/.Trash"}));

    // Setters.
    let put = |p: &str, q: &str| {
        let u = get(p, q);
        async move { curl(d, &["-X", "PUT"], &u).await }
    };
    assert_eq!(
        put("/a/f0", "op=SETREPLICATION&replication=2&user.name=root")
            .await
            .json()["boolean"],
        true
    );
    assert_eq!(
        put("/a/f0", "op=SETPERMISSION&permission=600&user.name=root")
            .await
            .status,
        200
    );
    assert_eq!(
        put("/a/f0", "op=SETOWNER&owner=bob&group=eng&user.name=root")
            .await
            .status,
        200
    );
    assert_eq!(
        put(
            "/a/f0",
            "op=SETTIMES&modificationtime=1000&accesstime=-1&user.name=root"
        )
        .await
        .status,
        200
    );
    let st = root.stat("/a/f0").await.unwrap();
    assert_eq!(
        (
            st.replication,
            st.mode,
            st.owner.as_str(),
            st.group.as_str(),
            st.mtime
        ),
        (2, 0o600, "bob", "eng", 1000)
    );
    // HdfsCLI's findings: a directory's replication cannot be set (false,
    // not an error); an explicit permission is applied as given.
    let r = put("/a", "op=SETREPLICATION&replication=2&user.name=root").await;
    assert_eq!(r.json(), serde_json::json!({"boolean": false}));
    let r = put("/a/open", "op=MKDIRS&permission=777&user.name=root").await;
    assert_eq!(r.json()["boolean"], true);
    assert_eq!(root.stat("/a/open").await.unwrap().mode, 0o777);
    root.delete("/a/open", false).await.unwrap();
    let r = curl(d, &[], &get("/", "op=GETSERVERDEFAULTS")).await;
    let sd = &r.json()["FsServerDefaults"];
    assert_eq!(
        (sd["blockSize"].as_u64(), sd["trashInterval"].as_u64()),
        (Some(MIB), Some(0))
    );
    assert_eq!(sd["checksumType"], 2, "CRC32C");
    let r = put("/a/f1", "op=RENAME&destination=/a/b&user.name=root").await;
    assert_eq!(r.json()["boolean"], true);
    assert!(root.exists("/a/b/f1").await.unwrap().is_some());
    let r = put("/a/nope", "op=RENAME&destination=/a/x&user.name=root").await;
    assert_eq!(r.json()["boolean"], false);
    let r = curl(d, &[], &get("/a/f2", "op=GET_BLOCK_LOCATIONS")).await;
    let lb = &r.json()["LocatedBlocks"];
    assert_eq!(
        (
            lb["fileLength"].as_u64(),
            lb["isLastBlockComplete"].as_bool()
        ),
        (Some(0), Some(true))
    );
    let r = curl(d, &[], &get("/a/f2", "op=GETFILEBLOCKLOCATIONS")).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"BlockLocations": {"BlockLocation": []}})
    );
    let r = curl(d, &[], &get("/a/f2", "op=GETFILECHECKSUM")).await;
    assert_eq!(r.json()["FileChecksum"]["length"], 28);
    let q = "op=GETFILECHECKSUM&checksumcombinemode=COMPOSITE_CRC";
    let r = curl(d, &[], &get("/a/f2", q)).await;
    assert_eq!(
        r.json()["FileChecksum"],
        serde_json::json!({"algorithm": "COMPOSITE-CRC32C", "bytes": "00000000", "length": 4})
    );

    // Errors, as Hadoop answers them.
    let r = curl(d, &[], &get("/missing", "op=GETFILESTATUS")).await;
    assert_remote(&r, 404, "FileNotFoundException", "does not exist");
    let r = curl(d, &["-L"], &get("/missing", "op=OPEN")).await;
    assert_remote(&r, 404, "FileNotFoundException", "does not exist");
    let r = put("/a/b/c", "op=MKDIRS&user.name=mallory").await;
    assert_remote(&r, 403, "AccessControlException", "user=mallory");
    let r = curl(
        d,
        &["-X", "DELETE"],
        &get("/a", "op=DELETE&recursive=false&user.name=root"),
    )
    .await;
    assert_remote(&r, 403, "PathIsNotEmptyDirectoryException", "/a");
    let r = curl(d, &[], &get("/a", "op=NOSUCHOP")).await;
    assert_remote(&r, 400, "IllegalArgumentException", "NOSUCHOP");
    let r = curl(d, &[], &get("/a", "")).await;
    assert_remote(&r, 400, "IllegalArgumentException", "op");
    let r = curl(d, &[], &get("/a", "op=MKDIRS")).await;
    assert_remote(&r, 400, "IllegalArgumentException", "PUT");
    let r = put("/a/f3", "op=CREATE&overwrite=perhaps").await;
    assert_remote(&r, 400, "IllegalArgumentException", "overwrite");
    let r = curl(d, &["-X", "POST"], &get("/a/f3", "op=TRUNCATE")).await;
    assert_remote(&r, 400, "IllegalArgumentException", "newlength");
    let r = curl(d, &["--path-as-is"], &get("/a/../etc", "op=GETFILESTATUS")).await;
    assert_remote(&r, 400, "InvalidPathException", "'..'");
    let r = curl(d, &[], &get("/a//b", "op=GETFILESTATUS")).await;
    assert_remote(&r, 400, "InvalidPathException", "empty component");
    // Unknown parameters are ignored; DELETE recursive works.
    let r = curl(
        d,
        &["-X", "DELETE"],
        &get("/a", "op=DELETE&recursive=True&user.name=root&foo=bar"),
    )
    .await;
    assert_eq!(r.json()["boolean"], true);
    assert!(root.exists("/a").await.unwrap().is_none());
    let r = curl(d, &["-X", "DELETE"], &get("/a", "op=DELETE&user.name=root")).await;
    assert_eq!(r.json()["boolean"], false);
    c.shutdown().await;
}
