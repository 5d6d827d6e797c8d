//! Append: a complete file is reopened under the caller's lease and grows
//! by new blocks after its last one; the lease keeps other writers out; a
//! dead appender's file is recovered with what was acknowledged.

use std::sync::Arc;
use std::time::Duration;
use tdfs_client::FileWriter;
use tdfs_proto::FsError;
use tdfs_testkit::files::{bytes, cluster, read, sha, write};
use tdfs_testkit::procs;

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_adds_blocks_after_the_last_one() {
    let (_d, c) = cluster(3, MIB, |_| {}).await;
    let root = c.client("root");
    let first = bytes(1, (2 * MIB + MIB / 2) as usize);
    write(&root, "/f", &first, 100_000).await;
    let more = bytes(2, (MIB + 700_000) as usize);
    let mut w = FileWriter::append(root.clone(), "/f").await.unwrap();
    for p in more.chunks(64_000) {
        w.write(p).await.unwrap();
    }
    assert_eq!(w.close().await.unwrap(), more.len() as u64);
    let mut all = first.clone();
    all.extend_from_slice(&more);
    let st = root.stat("/f").await.unwrap();
    assert_eq!(st.length, all.len() as u64);
    assert!(!st.under_construction);
    let got = read(&root, "/f", 0, u64::MAX).await;
    assert_eq!(sha(&got), sha(&all));
    // The old blocks are untouched; the appended bytes are in new blocks.
    let lbs = root.block_locations("/f", 0, u64::MAX).await.unwrap();
    let lens: Vec<u64> = lbs.blocks.iter().map(|b| b.block.len).collect();
    assert_eq!(lens, [MIB, MIB, MIB / 2, MIB, 700_000]);
    // A range across the seam between the old last block and the first new one.
    let seam = first.len() as u64;
    assert_eq!(
        read(&root, "/f", seam - 10, 20).await,
        &all[seam as usize - 10..seam as usize + 10]
    );
    // Appending to an empty file works too.
    root.create_empty("/empty").await.unwrap();
    let mut w = FileWriter::append(root.clone(), "/empty").await.unwrap();
    w.write(b"abc").await.unwrap();
    w.close().await.unwrap();
    assert_eq!(read(&root, "/empty", 0, 3).await, b"abc");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_is_refused_while_another_writer_holds_the_lease() {
    let (_d, c) = cluster(3, MIB, |_| {}).await;
    let root = c.client("root");
    write(&root, "/f", b"hello", 5).await;
    let a = FileWriter::append(root.clone(), "/f").await.unwrap();
    // Another client (another lease holder) is refused while `a` is open.
    let other = c.client("root");
    match FileWriter::append(other.clone(), "/f").await {
        Err(FsError::LeaseConflict { .. }) => {}
        Err(e) => panic!("expected a lease conflict, got {e}"),
        Ok(_) => panic!("a second appender was let in"),
    }
    a.close().await.unwrap();
    let mut b = FileWriter::append(other.clone(), "/f").await.unwrap();
    b.write(b" world").await.unwrap();
    b.close().await.unwrap();
    assert_eq!(read(&root, "/f", 0, 100).await, b"hello world");
    // Errors: a missing file, a directory, a user without write permission.
    assert!(matches!(
        FileWriter::append(root.clone(), "/nope").await.err(),
        Some(FsError::FileNotFound(_))
    ));
    root.mkdirs("/dir", false).await.unwrap();
    assert!(FileWriter::append(root.clone(), "/dir").await.is_err());
    let mallory = c.client("mallory");
    assert!(matches!(
        FileWriter::append(mallory, "/f").await.err(),
        Some(FsError::PermissionDenied { .. })
    ));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_appender_leaves_the_acknowledged_data() {
    let (_d, c) = cluster(3, MIB, |cfg| {
        cfg.tweak_meta = Some(Arc::new(|m| {
            m.superuser = "root".into();
            m.lease_timeout_ms = 1500;
        }))
    })
    .await;
    let root = c.client("root");
    let first = bytes(3, (MIB + 1000) as usize);
    write(&root, "/f", &first, 100_000).await;
    // A separate client appends two full blocks and part of a third, then
    // vanishes without closing (its lease stops being renewed).
    let dying = c.client("root");
    let more = bytes(4, (2 * MIB + 5000) as usize);
    {
        let mut w = FileWriter::append(dying.clone(), "/f").await.unwrap();
        w.write(&more).await.unwrap();
        // The first two appended blocks are acknowledged once the third
        // starts; dropping the writer unclosed abandons the third.
        drop(w);
    }
    drop(dying);
    let st = procs::wait_for(
        "lease recovery closes the file",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move {
                let st = root.stat("/f").await.ok()?;
                (!st.under_construction).then_some(st)
            }
        },
    )
    .await;
    // The file is the original plus a prefix of the appended bytes made of
    // whole acknowledged blocks (at least the first two) — never torn.
    let got = read(&root, "/f", 0, u64::MAX).await;
    assert_eq!(got.len() as u64, st.length);
    assert_eq!(&got[..first.len()], &first[..]);
    let tail = &got[first.len()..];
    assert!(
        tail.len() >= 2 * MIB as usize,
        "acknowledged blocks kept ({} bytes)",
        tail.len()
    );
    assert_eq!(tail, &more[..tail.len()]);
    // And it can be appended to again.
    let mut w = FileWriter::append(root.clone(), "/f").await.unwrap();
    w.write(b"!").await.unwrap();
    w.close().await.unwrap();
    assert_eq!(root.stat("/f").await.unwrap().length, st.length + 1);
    c.shutdown().await;
}
