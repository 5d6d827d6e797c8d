//! A torn or corrupt tail of the Raft log: on restart the log is cut back to
//! its last intact record, the node comes up as leader with every write whose
//! record survived, and takes new writes. Damage before the tail (a bad
//! record that valid ones follow) is not a crash's doing: the node refuses
//! to start, naming the file and the offset.

use openraft::{EntryPayload, RaftLogReader};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tdfs_meta_raft::log_store::{log_file_path, LogStore};
use tdfs_namespace::LogOp;
use tdfs_proto::ids::CallId;
use tdfs_testkit::cluster::*;

fn log_path(cluster: &Cluster) -> PathBuf {
    log_file_path(&cluster.data_dir(1).join("raft"))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// Writes `n` directories one at a time (one log record each).
async fn write_dirs(
    cluster: &Cluster,
    client: u64,
    seq: &mut u64,
    prefix: &str,
    n: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for i in 0..n {
        *seq += 1;
        let p = format!("{prefix}{i}");
        cluster.mkdir(&[1], CallId { client, seq: *seq }, &p).await;
        out.push(p);
    }
    out
}

/// Restarts the node and checks it leads, has `present` and not `absent`,
/// and takes a new write.
async fn restart_and_check(
    cluster: &mut Cluster,
    client: u64,
    seq: &mut u64,
    present: &[String],
    absent: &[String],
) {
    cluster.restart(1).await;
    assert_eq!(cluster.wait_leader(&[1], Duration::from_secs(10)).await, 1);
    let node = cluster.node(1).clone();
    wait_until(
        Duration::from_secs(5),
        "the surviving writes to be applied",
        || missing(&node, present).is_empty(),
    )
    .await;
    for p in absent {
        assert!(!exists(&node, p), "{p} survived a torn record");
    }
    *seq += 1;
    let p = format!("/after-restart-{seq}");
    cluster.mkdir(&[1], CallId { client, seq: *seq }, &p).await;
    assert!(has_dir(&node, &p));
}

/// Opens the log directly and returns its last index.
fn reopen_last_index(cluster: &Cluster) -> Option<u64> {
    LogStore::open(tdfs_disk::real(), &cluster.data_dir(1).join("raft"), true)
        .unwrap()
        .last_index()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_last_record_is_truncated() {
    // The torn tail is this node's own (a crash mid-append): a local fault, on purpose.
    tdfs_testkit::log::allow_local("truncating a torn tail");
    let mut cluster = Cluster::start(1).await;
    cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let client = client_id();
    let mut seq = 0;
    let mut acked = write_dirs(&cluster, client, &mut seq, "/g/a", 20).await;

    // Three kinds of damaged tails, one after the other on the same log.
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let tails: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise(100)),
        ("a header announcing more than is there", {
            let mut t = 500u32.to_be_bytes().to_vec();
            t.extend_from_slice(&[0xab; 4]);
            t.extend(noise(60));
            t
        }),
        ("a complete record with a bad checksum", {
            let body = noise(40);
            let mut t = (body.len() as u32).to_be_bytes().to_vec();
            t.extend_from_slice(&(crc32c::crc32c(&body) ^ 1).to_be_bytes());
            t.extend(body);
            t
        }),
        ("half a header", vec![0, 0]),
    ];
    for (what, tail) in tails {
        cluster.stop(1).await;
        let path = log_path(&cluster);
        let good_len = file_len(&path);
        let good_last = reopen_last_index(&cluster);
        assert!(good_last.is_some());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&tail)
            .unwrap();
        assert_eq!(file_len(&path), good_len + tail.len() as u64);

        // Opening the log cuts the file back to the intact prefix, and
        // loses no record.
        assert_eq!(reopen_last_index(&cluster), good_last, "{what}");
        assert_eq!(file_len(&path), good_len, "{what}: file not truncated");
        // Opening again is a no-op.
        assert_eq!(reopen_last_index(&cluster), good_last, "{what}");
        assert_eq!(file_len(&path), good_len, "{what}");

        restart_and_check(&mut cluster, client, &mut seq, &acked, &[]).await;
        acked.push(format!("/after-restart-{seq}"));
        acked.extend(
            write_dirs(
                &cluster,
                client,
                &mut seq,
                &format!("/g/{}-", acked.len()),
                3,
            )
            .await,
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_last_record_is_dropped_whole() {
    // The torn tail is this node's own (a crash mid-append): a local fault, on purpose.
    tdfs_testkit::log::allow_local("truncating a torn tail");
    let mut cluster = Cluster::start(1).await;
    cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let client = client_id();
    let mut seq = 0;
    let mut kept: Vec<String> = Vec::new();

    // Cut 3 bytes off the end of the last record, then (second round) leave
    // only 5 bytes of its header.
    for (round, keep_of_last) in [(0, None), (1, Some(5u64))] {
        let mut written =
            write_dirs(&cluster, client, &mut seq, &format!("/c/r{round}-"), 10).await;
        cluster.stop(1).await;
        let path = log_path(&cluster);
        let len = file_len(&path);

        // The last record holds the last mkdir; measure it.
        let store =
            LogStore::open(tdfs_disk::real(), &cluster.data_dir(1).join("raft"), true).unwrap();
        let last = store.last_index().unwrap();
        let mut reader = store.clone();
        let entries = reader.try_get_log_entries(last..=last).await.unwrap();
        drop(reader);
        drop(store);
        assert_eq!(entries.len(), 1);
        let lost = written.pop().unwrap();
        match &entries[0].payload {
            EntryPayload::Normal(cmd) => {
                assert_eq!(cmd.ops.len(), 1);
                assert!(
                    matches!(&cmd.ops[0].op, LogOp::Mkdirs { path, .. } if *path == lost),
                    "last record is {:?}",
                    cmd.ops[0]
                );
            }
            other => panic!("last record is {other:?}"),
        }
        let record_len = tdfs_meta_raft::log_store::record_len(&entries[0]);
        let start_of_last = len - record_len;

        let cut_to = match keep_of_last {
            None => len - 3,
            Some(k) => start_of_last + k,
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut_to)
            .unwrap();

        // The partial record is dropped whole: the file ends where it began.
        assert_eq!(reopen_last_index(&cluster), Some(last - 1));
        assert_eq!(file_len(&path), start_of_last);

        kept.extend(written);
        restart_and_check(
            &mut cluster,
            client,
            &mut seq,
            &kept,
            std::slice::from_ref(&lost),
        )
        .await;
        kept.push(format!("/after-restart-{seq}"));
        // The lost directory can be made again.
        seq += 1;
        cluster.mkdir(&[1], CallId { client, seq }, &lost).await;
        kept.push(lost);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_in_the_middle_stops_the_node() {
    let mut cluster = Cluster::start(1).await;
    cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let client = client_id();
    let mut seq = 0;
    write_dirs(&cluster, client, &mut seq, "/m/a", 30).await;
    cluster.stop(1).await;
    let path = log_path(&cluster);
    let len = file_len(&path);
    // Flip one byte a third of the way in: inside some record's payload.
    let at = len / 3;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let err = match LogStore::open(tdfs_disk::real(), &cluster.data_dir(1).join("raft"), true) {
        Ok(_) => panic!("a log damaged in the middle opened"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("log.dat"), "{err}");
    assert!(err.contains("valid records follow"), "{err}");
    assert!(err.contains("offset"), "{err}");
    // Nothing was cut: the file is as damaged as it was, for inspection.
    assert_eq!(file_len(&path), len);
    // The node does not come up on it.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = tdfs_meta_raft::start(cluster.config(1), l, cluster.seams(1)).await;
    let msg = r.err().map(|e| format!("{e:#}")).unwrap_or_default();
    assert!(msg.contains("valid records follow"), "start: {msg:?}");
}

/// With `TDFS_BUGS=truncate-at-first-bad-record` (a log that cuts itself at
/// any damaged record, silently dropping the valid ones after it) the test
/// above fails: run it in a child process of this binary with the switch
/// on (the switch is read once per process).
#[test]
fn the_middle_damage_check_catches_truncate_at_first_bad_record() {
    let test = "a_damaged_record_in_the_middle_stops_the_node";
    let (passed, text) =
        run_self_with_bug(test, tdfs_meta_raft::bugs::Bug::TruncateAtFirstBadRecord);
    assert!(
        !passed && text.contains("a log damaged in the middle opened"),
        "with truncate-at-first-bad-record the middle-damage test must fail; it said:\n{text}"
    );
}
