//! WebHDFS, the status page and `/metrics` over real HTTP: `curl` for the
//! two-step protocol and the error codes, the Python clients people use
//! (HdfsCLI and fsspec, installed from PyPI into a venv), and headless
//! Chromium for the status page.

mod common;
#[path = "common/webhdfs_py.rs"]
mod webhdfs_py;

use common::data::{bytes, cluster, sha};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tdfs_local::LocalCluster;
use tokio::process::Command;
use tokio::sync::OnceCell;

const MIB: u64 = 1 << 20;

/// One HTTP exchange through curl: status, headers (lower-case names) and body.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs `curl -s -D <headers> -o <body> ARGS URL`; follows no redirect
/// unless ARGS says `-L`.
async fn curl(dir: &Path, args: &[&str], url: &str) -> Http {
    let n: u64 = rand::random();
    let hp = dir.join(format!("h-{n}"));
    let bp = dir.join(format!("b-{n}"));
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "60", "-D"])
        .arg(&hp)
        .arg("-o")
        .arg(&bp)
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("curl runs");
    assert!(
        out.status.success(),
        "curl {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&hp).unwrap();
    let body = std::fs::read(&bp).unwrap_or_default();
    let _ = std::fs::remove_file(&hp);
    let _ = std::fs::remove_file(&bp);
    // With -L there is one header block per response; keep the last.
    let last = head
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or("");
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body,
    }
}

fn url(http: &str, path: &str, query: &str) -> String {
    format!("http://{http}/webhdfs/v1{path}?{query}")
}

/// Asserts a WebHDFS error: status, Hadoop exception name, and a message part.
fn assert_remote(r: &Http, status: u16, exception: &str, msg: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let j = r.json();
    let e = &j["RemoteException"];
    assert_eq!(e["exception"], exception, "{j}");
    assert!(e["javaClassName"].as_str().unwrap().ends_with(exception));
    assert!(
        e["message"].as_str().unwrap().contains(msg),
        "message {:?} lacks {msg:?}",
        e["message"]
    );
}

async fn start(datanodes: usize) -> (tempfile::TempDir, LocalCluster, String) {
    let (dir, c) = cluster(datanodes, MIB, |_| {}).await;
    let leader = c.leader().unwrap().id();
    let http = c.meta_http[&leader].clone();
    (dir, c, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_step_create_append_and_open_with_curl() {
    let (dir, c, http) = start(3).await;
    let d = dir.path();
    let root = c.client("root");
    root.mkdirs("/data", true).await.unwrap();
    root.meta(tdfs_proto::meta::MetaRequest::SetOwner {
        path: "/data".into(),
        owner: Some("alice".into()),
        group: None,
    })
    .await
    .unwrap();
    let data = bytes(80, (3 * MIB + 12345) as usize);
    let file = d.join("up.bin");
    std::fs::write(&file, &data).unwrap();

    // Step one answers 307 with a Location on a datanode's HTTP address.
    let u = url(
        &http,
        "/data/f.bin",
        "op=CREATE&user.name=alice&overwrite=False",
    );
    let r = curl(d, &["-X", "PUT"], &u).await;
    assert_eq!(r.status, 307, "{}", r.text());
    let loc = r.header("location").unwrap().to_string();
    let dn_http: Vec<String> = c.datanodes.iter().filter_map(|s| s.http.clone()).collect();
    assert!(
        dn_http
            .iter()
            .any(|h| loc.starts_with(&format!("http://{h}/webhdfs/v1/data/f.bin?"))),
        "{loc} is not on a datanode ({dn_http:?})"
    );
    // Step two streams the body in chunked transfer encoding.
    let f = file.to_str().unwrap();
    let r = curl(
        d,
        &["-X", "PUT", "-H", "Transfer-Encoding: chunked", "-T", f],
        &loc,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let st = root.stat("/data/f.bin").await.unwrap();
    assert_eq!((st.length, st.owner.as_str()), (data.len() as u64, "alice"));

    // OPEN follows the redirect to a datanode holding the data.
    let r = curl(
        d,
        &["-L"],
        &url(&http, "/data/f.bin", "op=OPEN&user.name=alice"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(sha(&r.body), sha(&data));
    // A range across a block boundary, with noredirect.
    let q = format!(
        "op=OPEN&offset={}&length={}&noredirect=true",
        MIB - 7,
        MIB + 9
    );
    let r = curl(d, &[], &url(&http, "/data/f.bin", &q)).await;
    assert_eq!(r.status, 200);
    let loc = r.json()["Location"].as_str().unwrap().to_string();
    let r = curl(d, &[], &loc).await;
    assert_eq!(r.body, &data[(MIB - 7) as usize..(2 * MIB + 2) as usize]);

    // APPEND adds after the end; the file reads back as both parts.
    let more = bytes(81, 700_000);
    let mf = d.join("more.bin");
    std::fs::write(&mf, &more).unwrap();
    let u = url(&http, "/data/f.bin", "op=APPEND&user.name=alice");
    let r = curl(d, &["-L", "-X", "POST", "-T", mf.to_str().unwrap()], &u).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = curl(d, &["-L"], &url(&http, "/data/f.bin", "op=OPEN")).await;
    let mut both = data.clone();
    both.extend_from_slice(&more);
    assert_eq!(sha(&r.body), sha(&both));

    // CREATE over an existing file without overwrite is refused.
    let u = url(&http, "/data/f.bin", "op=CREATE&user.name=alice");
    let r = curl(d, &["-L", "-X", "PUT", "-T", f], &u).await;
    assert_remote(&r, 403, "FileAlreadyExistsException", "already exists");
    // ... and with overwrite=true it replaces the file.
    let u = url(
        &http,
        "/data/f.bin",
        "op=CREATE&user.name=alice&overwrite=TRUE",
    );
    let r = curl(d, &["-L", "-X", "PUT", "-T", mf.to_str().unwrap()], &u).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        root.stat("/data/f.bin").await.unwrap().length,
        more.len() as u64
    );
    c.shutdown().await;
}

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

/// The metric names every scrape must carry.
fn assert_metrics(text: &str, names: &[&str]) {
    for n in names {
        assert!(
            text.lines()
                .any(|l| !l.starts_with('#') && l.starts_with(n)),
            "metric {n} missing from:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_on_metadata_nodes_and_datanodes() {
    let (dir, c, http) = start(3).await;
    let d = dir.path();
    let root = c.client("root");
    let data = bytes(82, (2 * MIB + 5) as usize);
    common::data::write(&root, "/m.bin", &data, 100_000).await;
    let mut sink = Vec::new();
    tdfs_client::read_range(&root, "/m.bin", 0, data.len() as u64, &mut sink)
        .await
        .unwrap();
    // The leader reports cluster health once a policy round has run.
    let (d2, h2) = (d.to_path_buf(), http.clone());
    let r = common::wait_for(
        "leader metrics with 3 live datanodes",
        Duration::from_secs(10),
        move || {
            let (d2, h2) = (d2.clone(), h2.clone());
            async move {
                let r = curl(&d2, &[], &format!("http://{h2}/metrics")).await;
                r.text()
                    .contains("tdfs_meta_datanodes{state=\"live\"} 3")
                    .then_some(r)
            }
        },
    )
    .await;
    let t = r.text();
    assert_metrics(
        &t,
        &[
            "tdfs_meta_raft_term ",
            "tdfs_meta_raft_role{state=\"leader\"} 1",
            "tdfs_meta_raft_commit_index ",
            "tdfs_meta_raft_applied_index ",
            "tdfs_meta_raft_last_log_index ",
            "tdfs_meta_operations_total{op=\"create\"}",
            "tdfs_meta_operation_seconds_bucket{",
            "tdfs_meta_datanodes{state=\"dead\"} 0",
            "tdfs_meta_blocks 3",
            "tdfs_meta_blocks_under_replicated 0",
            "tdfs_meta_blocks_corrupt 0",
            "tdfs_meta_blocks_missing 0",
        ],
    );
    // A follower serves its own Raft state.
    let follower = c.meta_http.iter().find(|(_, h)| **h != http).unwrap().1;
    let t = curl(d, &[], &format!("http://{follower}/metrics"))
        .await
        .text();
    assert_metrics(
        &t,
        &[
            "tdfs_meta_raft_role{state=\"follower\"} 1",
            "tdfs_meta_raft_term ",
        ],
    );
    // Datanodes: bytes in and out, verification failures.
    let mut written = 0;
    let mut read = 0;
    for s in &c.datanodes {
        let r = curl(
            d,
            &[],
            &format!("http://{}/metrics", s.http.as_ref().unwrap()),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().contains("openmetrics"));
        let t = r.text();
        assert_metrics(
            &t,
            &[
                "tdfs_datanode_bytes_written_total ",
                "tdfs_datanode_bytes_read_total ",
                "tdfs_datanode_verification_failures_total 0",
                "tdfs_datanode_capacity_bytes ",
                "tdfs_datanode_replicas ",
            ],
        );
        let val = |name: &str| -> u64 {
            t.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap() as u64
        };
        written += val("tdfs_datanode_bytes_written_total ");
        read += val("tdfs_datanode_bytes_read_total ");
    }
    assert_eq!(
        written,
        3 * data.len() as u64,
        "three replicas of every byte"
    );
    assert!(read >= data.len() as u64);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_webhdfs_clients_unchanged() {
    let py = webhdfs_py::python().await;
    let (dir, c, http) = start(4).await;
    let root = c.client("root");
    root.mkdirs("/py", true).await.unwrap();
    root.meta(tdfs_proto::meta::MetaRequest::SetOwner {
        path: "/py".into(),
        owner: Some("alice".into()),
        group: None,
    })
    .await
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/webhdfs/clients.py");
    let seed: u64 = rand::random::<u16>() as u64;
    println!("python clients seed {seed}");
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        Command::new(py)
            .arg(script)
            .arg(&http)
            .arg("alice")
            .arg(dir.path())
            .arg(seed.to_string())
            .output(),
    )
    .await
    .expect("python clients finish within 5 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python clients failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.shutdown().await;
}

/// Debian's Chromium, installed once if missing.
async fn chromium() -> &'static str {
    static BIN: OnceCell<&'static str> = OnceCell::const_new();
    BIN.get_or_init(|| async {
        let have = || Path::new("/usr/bin/chromium").exists();
        if !have() {
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "-q", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .output()
            };
            let out = install().await.expect("apt-get runs");
            if !out.status.success() {
                let _ = Command::new("apt-get").arg("update").output().await;
                let out = install().await.expect("apt-get runs");
                assert!(
                    out.status.success(),
                    "cannot install chromium: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        assert!(have(), "chromium is not installed");
        "/usr/bin/chromium"
    })
    .await
}

async fn headless(bin: &str, args: &[String]) -> std::process::Output {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
            ])
            .args(["--hide-scrollbars", "--window-size=1280,1000"])
            .args(args)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("chromium finishes within 90 s")
    .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_page_in_headless_chromium() {
    let bin = chromium().await;
    let (_dir, mut c, leader_http) = start(4).await;
    let root = c.client("root");
    common::data::write(&root, "/s.bin", &bytes(83, (3 * MIB) as usize), 200_000).await;
    // One datanode goes away: the page shows it as stale (then dead).
    c.stop_datanode(3).await;
    let gone = c.datanodes[3].id.clone().unwrap();
    common::wait_for(
        "the stopped datanode is no longer live",
        Duration::from_secs(20),
        || {
            let root = root.clone();
            let gone = gone.clone();
            async move {
                match root.admin(tdfs_proto::meta::AdminRequest::Report).await {
                    Ok(tdfs_proto::meta::AdminResponse::Report(r)) => r
                        .datanodes
                        .iter()
                        .any(|d| d.id == gone && d.state != "live")
                        .then_some(()),
                    _ => None,
                }
            }
        },
    )
    .await;
    // Served by a follower too; rendered by a real browser.
    let follower = c
        .meta_http
        .values()
        .find(|h| **h != leader_http)
        .unwrap()
        .clone();
    let out = headless(bin, &["--dump-dom".into(), format!("http://{follower}/")]).await;
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(dom.matches("class=\"datanode-row\"").count(), 4, "{dom}");
    for s in &c.datanodes {
        assert!(
            dom.contains(&s.id.as_ref().unwrap().0),
            "row for {:?}",
            s.id
        );
    }
    assert!(
        dom.contains("class=\"stale\"") || dom.contains("class=\"dead\""),
        "the stopped datanode shows as stale or dead: {dom}"
    );
    assert!(dom.contains("class=\"bar"), "capacity bars");
    assert_eq!(dom.matches("class=\"meta-row\"").count(), 3);
    for k in [
        "Leader",
        "Term",
        "Capacity used",
        "Under-replicated blocks",
        "Corrupt blocks",
        "Missing blocks",
    ] {
        assert!(dom.contains(k), "summary has {k}");
    }
    // The counts are the leader's maintained ones, and agree with a walk of the namespace.
    let walked = root.fsck("/").await.unwrap();
    for (id, want) in [
        ("files", walked.files),
        ("directories", walked.directories),
        ("blocks", walked.blocks),
        ("corrupt_blocks", walked.corrupt),
        ("missing_blocks", walked.missing),
    ] {
        let needle = format!("id=\"{id}\">{want}<");
        assert!(dom.contains(&needle), "status page shows {needle}: {dom}");
    }
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        bin,
        &[
            format!("--screenshot={}", shot.display()),
            format!("http://{leader_http}/"),
        ],
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot saved");
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "a real PNG"
    );
    println!("status page screenshot: {}", shot.display());
    c.shutdown().await;
}
