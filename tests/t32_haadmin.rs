//! `tdfs haadmin` over real processes: add a fourth metadata node (learner,
//! then voter), move leadership to it, remove a founding node; the namespace
//! is served throughout.

use std::process::{Command, Stdio};
use std::time::Duration;
use tdfs_testkit::procs::*;

fn ha(meta: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["haadmin", "--meta", meta];
    all.extend_from_slice(args);
    run_tdfs(&all, &[])
}

fn roles(meta: &str) -> Vec<(u64, String)> {
    let (code, out, err) = ha(meta, &["-getAllServiceState", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["id"].as_u64().unwrap(),
                n["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_transfer_and_remove_metadata_nodes() {
    let mut m = MetaProcs::start(3);
    let c = m.client("root");
    m.wait_leader(&c, Duration::from_secs(20)).await;
    for i in 0..20 {
        c.mkdirs(&format!("/ha/d{i}"), true).await.unwrap();
    }
    // Node 4 starts knowing the group but not in it: it waits to be added.
    let port = free_ports(1)[0];
    let addr4 = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(m.dir.path().join("meta-4.log")).unwrap();
    let child = Command::new(tdfs_bin())
        .args([
            "meta",
            "--id",
            "4",
            "--addr",
            &addr4,
            "--peers",
            &m.peers,
            "--superuser",
            "root",
        ])
        .args(FAST_RAFT)
        .arg("--data-dir")
        .arg(m.dir.path().join("meta-4"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    m.procs.insert(4, child);
    m.addrs.insert(4, addr4.clone());
    let meta = m.addr_list().join(",");

    let (code, out, err) = ha(&meta, &["-addMeta", "4", &addr4]);
    assert_eq!(code, 0, "{out}{err}");
    // The new voter learns of its promotion when it applies the membership
    // entry, a moment after the leader committed it.
    wait_for("node 4 a follower", Duration::from_secs(10), || async {
        let r = roles(&meta);
        (r.len() == 4 && r.iter().any(|(id, role)| *id == 4 && role == "follower")).then_some(())
    })
    .await;

    let (code, out, err) = ha(&meta, &["-transferLeader", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for("node 4 to lead", Duration::from_secs(10), || async {
        roles(&meta)
            .iter()
            .any(|(id, role)| *id == 4 && role == "leader")
            .then_some(())
    })
    .await;
    // The new leader has the whole namespace and takes writes.
    let mut cfg = tdfs_client::ClientConfig::new(vec![addr4.clone()], "root");
    cfg.deadline = Duration::from_secs(10);
    let c4 = tdfs_client::MetaClient::new(cfg).unwrap();
    assert_eq!(c4.list("/ha").await.unwrap().len(), 20);
    c4.mkdirs("/ha/after-transfer", false).await.unwrap();

    let (code, out, err) = ha(&meta, &["-removeMeta", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    let r = roles(&meta);
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|(id, _)| *id != 1), "{r:?}");
    // Removing an unknown node is a clear error.
    let (code, _, err) = ha(&meta, &["-removeMeta", "9"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("tdfs: "), "{err}");
    c4.mkdirs("/ha/after-remove", false).await.unwrap();
    assert!(!m.panicked());
}
