//! WebHDFS, the status page and `/metrics` over real HTTP: `curl` for the
//! two-step protocol and the error codes, the Python clients people use
//! (HdfsCLI and fsspec, installed from PyPI into a venv), and headless
//! Chromium for the status page.

#[path = "webhdfs/browser.rs"]
mod browser;
#[path = "webhdfs/namespace.rs"]
mod namespace;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tdfs_local::LocalCluster;
use tdfs_testkit::files::{bytes, cluster, sha};
use tdfs_testkit::webhdfs_py;
use tdfs_testkit::{files, procs};
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
    files::write(&root, "/m.bin", &data, 100_000).await;
    let mut sink = Vec::new();
    tdfs_client::read_range(&root, "/m.bin", 0, data.len() as u64, &mut sink)
        .await
        .unwrap();
    // The leader reports cluster health once a policy round has run.
    let (d2, h2) = (d.to_path_buf(), http.clone());
    let r = procs::wait_for(
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
