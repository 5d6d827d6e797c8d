//! t83's snapshot diffs through Hadoop's own client: a real diff (create,
//! delete, rename across directories, a modified file, and more created
//! entries than one listing page) read with `getSnapshotDiffReport` over
//! `hdfs://` (paged `getSnapshotDiffReportListing` calls) and over
//! `webhdfs://`, and the raw `GETSNAPSHOTDIFFLISTING` pages.

use super::*;

/// Created directories under `/sd/bulk`: more than one page (1,000).
pub const BULK: usize = 1100;

/// `/sd` with snapshots `s1` and `s2` and the changes between them; a
/// later change makes the current state differ from `s2` too.
pub async fn make_diff(root: &Arc<MetaClient>) {
    for d in ["/sd/keep", "/sd/sub", "/sd/bulk"] {
        root.mkdirs(d, true).await.unwrap();
    }
    for f in ["/sd/keep/mod.txt", "/sd/del.txt", "/sd/ren.txt"] {
        write(root, f, b"abc", 64 << 10).await;
    }
    root.allow_snapshot("/sd").await.unwrap();
    root.create_snapshot("/sd", Some("s1")).await.unwrap();
    write(root, "/sd/new.txt", b"new", 64 << 10).await;
    root.delete("/sd/del.txt", false).await.unwrap();
    let mv = MetaRequest::Rename {
        src: "/sd/ren.txt".into(),
        dst: "/sd/sub/ren2.txt".into(),
        into_dir: false,
    };
    root.meta(mv).await.unwrap();
    let own = MetaRequest::SetOwner {
        path: "/sd/keep/mod.txt".into(),
        owner: Some("alice".into()),
        group: None,
    };
    root.meta(own).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..8 {
        let root = root.clone();
        tasks.spawn(async move {
            for i in (k..BULK).step_by(8) {
                root.mkdirs(&format!("/sd/bulk/d{i:04}"), false)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    root.create_snapshot("/sd", Some("s2")).await.unwrap();
    root.delete("/sd/sub", true).await.unwrap();
}

/// The pairs diffed, both ways and against the current state.
/// ("" is the current state.)
const PAIRS: [(&str, &str); 4] = [("s1", "s2"), ("s2", "s1"), ("s1", ""), ("", "s2")];

/// Hadoop's reports over `uri`, as tdfs's own client prints them.
pub async fn hadoop_reports_match(h: &Hadoop, conf: &Path, uri: &str, root: &MetaClient) {
    let mut args = vec![uri, "/sd"];
    for (a, b) in PAIRS {
        args.extend([a, b]);
    }
    let out = h
        .run_class(conf, "root", "SnapDiff", &args, Duration::from_secs(120))
        .await;
    let reports: Vec<&str> = out.split("=== ").skip(1).collect();
    assert_eq!(reports.len(), PAIRS.len(), "{out}");
    for ((a, b), got) in PAIRS.iter().zip(reports) {
        let want = root.snapshot_diff("/sd", a, b).await.unwrap().to_string();
        let got = got.split_once('\n').unwrap().1;
        assert_eq!(got, want, "{uri}: the diff {a} → {b}");
    }
    let s1s2 = root
        .snapshot_diff("/sd", "s1", "s2")
        .await
        .unwrap()
        .to_string();
    for line in [
        "M\t.\n",
        "+\t./new.txt\n",
        "-\t./del.txt\n",
        "R\t./ren.txt -> ./sub/ren2.txt\n",
        "M\t./keep/mod.txt\n",
        "M\t./bulk\n",
        "+\t./bulk/d1099\n",
    ] {
        assert!(s1s2.contains(line), "{line:?} in {s1s2}");
    }
    assert_eq!(s1s2.lines().count(), 1 + 7 + BULK, "{s1s2}");
}

/// `GETSNAPSHOTDIFFLISTING` page by page, as `WebHdfsFileSystem` reads it.
pub fn raw_listing_pages(web: &str) {
    let (mut index, mut path) = (-1i64, String::new());
    let (mut created, mut pages) = (Vec::new(), 0);
    let mut others = Vec::new();
    loop {
        let url = format!(
            "http://{web}/webhdfs/v1/sd?user.name=root&op=GETSNAPSHOTDIFFLISTING\
             &oldsnapshotname=s1&snapshotname=s2&snapshotdiffstartpath={path}\
             &snapshotdiffindex={index}"
        );
        let (code, v) = http("GET", &url);
        assert_eq!(code, 200, "{v}");
        let l = &v["SnapshotDiffReportListing"];
        assert_eq!(l["isFromEarlier"], true, "{v}");
        pages += 1;
        for e in l["createList"].as_array().unwrap() {
            created.push(e["sourcePath"].as_str().unwrap().to_string());
            assert!(e["dirId"].as_u64().unwrap() > 0 && e["fileId"].as_u64().is_some());
        }
        for kind in ["modifyList", "deleteList"] {
            others.extend(l[kind].as_array().unwrap().iter().cloned());
        }
        index = l["lastIndex"].as_i64().unwrap();
        path = l["lastPath"].as_str().unwrap().to_string();
        if index == -1 && path.is_empty() {
            break;
        }
        assert!(pages < 10, "the cursor moves on: {v}");
    }
    assert_eq!(pages, 2, "1,000 entries a page");
    // The bulk directories, new.txt, and the rename's created reference.
    assert_eq!(created.len(), BULK + 2);
    assert!(created.iter().any(|p| p == "sub/ren2.txt"));
    let renamed = others
        .iter()
        .find(|e| e["sourcePath"] == "ren.txt")
        .expect("the rename's deleted entry");
    assert_eq!(
        (&renamed["isReference"], &renamed["targetPath"]),
        (&true.into(), &"sub/ren2.txt".into())
    );
}

/// `getSnapshotDiffReportListing` page by page over raw Hadoop IPC (the
/// Hadoop client falls back to `getSnapshotDiffReport` when the listing
/// is missing, so its report alone does not show the listing works).
pub async fn raw_rpc_listing_pages(c: &LocalCluster) {
    let (mut cursor, mut pages) = (None, 0);
    let (mut modified, mut created, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        let req = p::GetSnapshotDiffReportListingRequestProto {
            snapshot_root: "/sd".into(),
            from_snapshot: "s1".into(),
            to_snapshot: "s2".into(),
            cursor: cursor.take(),
        };
        let r: p::GetSnapshotDiffReportListingResponseProto =
            rpc_calls::ok_call(c, "getSnapshotDiffReportListing", &req).await;
        let d = r.diff_report;
        assert!(d.is_from_earlier);
        pages += 1;
        modified.extend(d.modified_entries);
        created.extend(d.created_entries);
        deleted.extend(d.deleted_entries);
        let cur = d.cursor.expect("a cursor");
        if cur.start_path.is_empty() && cur.index == -1 {
            break;
        }
        assert!(pages < 10, "the cursor moves on: {cur:?}");
        cursor = Some(cur);
    }
    assert_eq!(pages, 2, "1,000 entries a page");
    let paths = |v: &[p::SnapshotDiffReportListingEntryProto]| -> Vec<String> {
        v.iter()
            .map(|e| String::from_utf8_lossy(&e.fullpath).into_owned())
            .collect()
    };
    assert_eq!(paths(&modified), ["", "bulk", "keep/mod.txt", "sub"]);
    assert_eq!(paths(&deleted), ["del.txt", "ren.txt"]);
    assert_eq!(created.len(), BULK + 2);
    // The root and the directories are reference entries under their own
    // id; their children carry it.
    let (root, bulk) = (&modified[0], &modified[1]);
    assert!(root.is_reference && root.dir_id == root.file_id.unwrap());
    assert!(!modified[2].is_reference, "a modified file");
    let in_bulk = created.iter().filter(|e| e.dir_id == bulk.dir_id).count();
    assert_eq!(in_bulk, BULK);
    // The rename: a deleted and a created reference entry, one inode.
    let (from, to) = (
        &deleted[1],
        created.iter().find(|e| e.fullpath == b"sub/ren2.txt"),
    );
    let to = to.expect("the rename's created entry");
    assert!(from.is_reference && to.is_reference);
    assert_eq!(from.target_path.as_deref(), Some(&b"sub/ren2.txt"[..]));
    assert_eq!((from.file_id, from.dir_id), (to.file_id, root.dir_id));
    assert_eq!(to.dir_id, modified[3].dir_id, "created in sub");
}
