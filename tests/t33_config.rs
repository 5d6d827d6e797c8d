//! Daemon configuration: every flag can come from the `--config` TOML file
//! (same names, `-` or `_`), flags win over the file and the file over the
//! defaults `--help` shows; a key no daemon knows is refused in one line
//! naming it; the event stream reaches operators through `tdfs events`.

use std::process::{Command, Stdio};
use std::time::Duration;
use tdfs_client::{ClientConfig, MetaClient};
use tdfs_testkit::procs::*;

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn misspelt_and_mistyped_keys_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("meta", "id = 1\nreplicaton = 2\n", "replicaton"),
        ("meta", "heartbeat_ms = \"fast\"\n", "heartbeat-ms"),
        ("meta", "no-fsync = 3\n", "no-fsync"),
        ("datanode", "capacty = \"1g\"\n", "capacty"),
        ("local", "datanode = 2\n", "datanode"),
        ("meta", "id = [\n", "not valid TOML"),
    ];
    for (i, (daemon, text, named)) in cases.iter().enumerate() {
        let file = write(dir.path(), &format!("c{i}.toml"), text);
        let (code, _, err) = run_tdfs(&[daemon, "--config", &file], &[]);
        assert_ne!(code, 0, "{daemon} with {text:?}");
        assert!(err.starts_with("tdfs: "), "{daemon} {text:?}: {err}");
        assert!(
            err.contains(named),
            "{daemon} {text:?} must name {named}: {err}"
        );
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{daemon} {text:?}: {err}"
        );
    }
    let (code, _, err) = run_tdfs(&["meta", "--config", "/nonexistent.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn help_shows_every_default() {
    let (code, out, _) = run_tdfs(&["meta", "--help"], &[]);
    assert_eq!(code, 0);
    for (flag, default) in [
        ("--replication", "[default: 3]"),
        ("--heartbeat-ms", "[default: 50]"),
        ("--dead-after-ms", "[default: 30000]"),
        ("--lease-timeout-ms", "[default: 60000]"),
        ("--balance-threshold", "[default: 10]"),
        ("--trash-interval", "[default: 0]"),
        ("--block-size", "[default: 67108864]"),
    ] {
        let line = out
            .lines()
            .skip_while(|l| !l.contains(flag))
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains(default),
            "{flag} should show {default}: {out}"
        );
    }
    let (_, out, _) = run_tdfs(&["local", "--help"], &[]);
    assert!(out.contains("--config"), "{out}");
    assert!(out.contains("[default: 1440]"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_win_over_the_file_and_the_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_ports(1)[0];
    let addr = format!("127.0.0.1:{port}");
    let data = dir.path().join("meta");
    let file = write(
        dir.path(),
        "meta.toml",
        &format!(
            "id = 1\naddr = \"{addr}\"\ndata_dir = \"{}\"\npeers = [\"1={addr}\"]\n\
             replication = 2\nblock-size = \"1m\"\ntrash_interval = 5\nsuperuser = \"root\"\n\
             balance-threshold = 0\nno-fsync = true\n",
            data.display()
        ),
    );
    let mut child = Command::new(tdfs_bin())
        .args(["meta", "--config", &file, "--replication", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut cfg = ClientConfig::new(vec![addr.clone()], "root");
    cfg.deadline = Duration::from_secs(5);
    let c = MetaClient::new(cfg).unwrap();
    let d = wait_for("the node to serve", Duration::from_secs(30), || async {
        c.server_defaults().await.ok()
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(d.replication, 1, "the flag wins over the file");
    assert_eq!(d.block_size, 1 << 20, "the file wins over the default");
    assert_eq!(d.trash_interval_ms, 5 * 60_000);
    assert!(data.join("raft").exists() || data.read_dir().unwrap().next().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_its_config_and_events_show_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "local.toml",
        "meta = 1\ndatanodes = 2\nreplication = 2\nno_cluster_key = true\n",
    );
    let data = dir.path().join("data");
    let mut child = spawn_local(&data, &["--config", &file]);
    let cluster = data.join("cluster.json");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&cluster).unwrap()).unwrap();
    assert_eq!(doc["meta"].as_array().unwrap().len(), 1);
    assert_eq!(doc["datanodes"].as_array().unwrap().len(), 2);
    let cluster = cluster.display().to_string();
    let local = write(dir.path(), "f.txt", "some bytes for two replicas\n");
    let (code, _, err) = run_tdfs(&["dfs", "--cluster", &cluster, "-put", &local, "/f"], &[]);
    assert_eq!(code, 0, "{err}");
    // The events of the metadata node and both datanodes, merged by time.
    let (code, out, err) = run_tdfs(&["events", "--cluster", &cluster, "--json"], &[]);
    assert_eq!(code, 0, "{err}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let of = |t: &str| events.iter().filter(|e| e["type"] == t).count();
    assert_eq!(of("leader_elected"), 1, "{out}");
    assert!(of("datanode_registered") >= 2, "{out}");
    assert!(of("replica_finalized") >= 2, "{out}");
    for e in &events {
        assert!(
            e["seq"].is_u64() && e["time_ms"].is_u64() && e["node"].is_string(),
            "{e}"
        );
        if e["type"] == "datanode_registered" {
            assert!(e["datanode"].is_string(), "{e}");
        }
    }
    let nodes: std::collections::BTreeSet<&str> =
        events.iter().filter_map(|e| e["node"].as_str()).collect();
    assert!(nodes.len() >= 3, "events from every node: {nodes:?}");
    let times: Vec<u64> = events
        .iter()
        .map(|e| e["time_ms"].as_u64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "merged by time: {times:?}"
    );
    // The text form: one line per event.
    let (code, text, _) = run_tdfs(&["events", "--cluster", &cluster], &[]);
    assert_eq!(code, 0);
    assert_eq!(text.lines().count(), events.len());
    assert!(text.contains("leader_elected term="), "{text}");
    // --follow prints the history, then what happens next, as it happens.
    let mut follow = Command::new(tdfs_bin())
        .args(["events", "--follow", "--json", "--cluster", &cluster])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(lines).lines().map_while(Result::ok) {
            if tx.send(serde_json::from_str(&l).unwrap()).is_err() {
                return;
            }
        }
    });
    for _ in 0..events.len() {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("the history first");
    }
    let (code, _, err) = run_tdfs(&["dfs", "--cluster", &cluster, "-put", &local, "/g"], &[]);
    assert_eq!(code, 0, "{err}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut finalized = 0;
    while finalized < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let e = rx
            .recv_timeout(left)
            .expect("--follow shows the new replicas");
        if e["type"] == "replica_finalized" {
            assert_eq!(e["block"], 2, "the second file's block: {e}");
            finalized += 1;
        }
    }
    follow.kill().unwrap();
    follow.wait().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}
