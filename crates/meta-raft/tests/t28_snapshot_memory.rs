//! What a Raft snapshot costs in memory beyond the namespace: building
//! one, sending it in openraft's 4 MiB chunks and writing it into a file
//! being received cost buffers, not the snapshot's size; checking and
//! decoding the received file costs the new namespace only. Measured with
//! a counting allocator (this test binary's own), on a snapshot several
//! times larger than the allowance, so holding the snapshot's bytes in
//! memory (as a `Vec<u8>` snapshot did) fails it.

use std::sync::Arc;
use tdfs_disk::Disk;
use tdfs_meta_raft::snap_file::SnapFile;
use tdfs_meta_raft::snapshot::{open_snapshot_file, write_snapshot_file};
use tdfs_meta_raft::types::{LogId, SnapshotMeta};
use tdfs_namespace::{LogOp, Namespace, Stamp};
use tdfs_proto::ids::CallId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;

const MIB: usize = 1 << 20;
/// What building, sending or receiving may take beyond the namespace: the
/// file buffer, one chunk being sent, one namespace chunk being encoded
/// or decoded, and the runtime's own.
const ALLOWANCE: usize = 24 * MIB;

/// The peak live heap above the start while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = tdfs_testkit::alloc::reset_peak();
    let out = f();
    (out, tdfs_testkit::alloc::peak().saturating_sub(base))
}

fn namespace(files: usize) -> Namespace {
    let mut ns = Namespace::new();
    let mut seq = 0;
    // A create needs a call id (the lease holder); the retry cache is
    // skipped, as if every client's calls had expired from it.
    let mut apply = |ns: &mut Namespace, op: LogOp| {
        seq += 1;
        let stamp = Stamp {
            user: "root".into(),
            call: Some(CallId { client: 1, seq }),
            now: 1,
            tick: 1,
        };
        ns.apply_ignoring_retry_cache(&stamp, &op, &mut Vec::new())
            .unwrap();
    };
    let init = LogOp::Init {
        superuser: "root".into(),
        supergroup: "supergroup".into(),
    };
    apply(&mut ns, init);
    for i in 0..files {
        // Long names make a large snapshot of few inodes.
        let path = format!("/d{}/{:0>200}", i / 1000, i);
        if i % 1000 == 0 {
            let dir = format!("/d{}", i / 1000);
            apply(
                &mut ns,
                LogOp::Mkdirs {
                    path: dir,
                    mode: 0o755,
                    parents: true,
                },
            );
        }
        let create = LogOp::Create {
            path: path.clone(),
            overwrite: false,
            replication: 3,
            block_size: 64 << 20,
            mode: 0o644,
            create_parents: false,
        };
        apply(&mut ns, create);
        apply(&mut ns, LogOp::Complete { path, last: None });
    }
    ns
}

fn meta() -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), 7)),
        last_membership: Default::default(),
        snapshot_id: "1-7-0".into(),
    }
}

/// Reads the snapshot file in 4 MiB chunks, as openraft's sender does,
/// writing each into `to`.
async fn pipe(from: &mut SnapFile, to: &mut SnapFile) -> u64 {
    let mut sent = 0;
    loop {
        let mut buf = Vec::with_capacity(4 * MIB);
        while buf.capacity() > buf.len() {
            if from.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
        if buf.is_empty() {
            return sent;
        }
        sent += buf.len() as u64;
        to.write_all(&buf).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_cost_buffers_not_their_size() {
    let root = tempfile::tempdir().unwrap();
    let disk = tdfs_disk::real();
    let (ns, ns_heap) = peak_of(|| namespace(300_000));
    let frozen = ns.freeze();
    let (size, build) =
        peak_of(|| write_snapshot_file(disk.as_ref(), root.path(), &meta(), &frozen).unwrap());
    let size = size as usize;
    println!(
        "namespace {} MiB on the heap; snapshot file {} MiB; build took {} MiB",
        ns_heap / MIB,
        size / MIB,
        build / MIB
    );
    assert!(
        size > 2 * ALLOWANCE,
        "the snapshot ({size} bytes) is too small to tell"
    );
    assert!(build < ALLOWANCE, "building took {build} bytes");

    let f = open_snapshot_file(disk.as_ref(), root.path())
        .unwrap()
        .unwrap();
    let mut from = SnapFile::reading(f);
    let into = root.path().join("snapshot.recv-0.tmp");
    let mut to = SnapFile::receiving(disk.clone() as Arc<dyn Disk>, into.clone()).unwrap();
    let base = tdfs_testkit::alloc::reset_peak();
    let sent = pipe(&mut from, &mut to).await;
    let transfer = tdfs_testkit::alloc::peak() - base;
    println!("sending and receiving took {} MiB", transfer / MIB);
    assert_eq!(sent as usize, size);
    assert!(transfer < ALLOWANCE, "the transfer took {transfer} bytes");

    drop(frozen);
    let base = tdfs_testkit::alloc::reset_peak();
    to.shutdown().await.unwrap();
    let got = to.take_received().await.unwrap();
    let check = tdfs_testkit::alloc::peak() - base;
    println!("checking and decoding took {} MiB", check / MIB);
    assert!(
        check < ns_heap + ns_heap / 4 + ALLOWANCE,
        "checking took {check} bytes for a namespace of {ns_heap}"
    );
    assert_eq!(got.ns.freeze().inode_count(), ns.freeze().inode_count());
    drop(to);
    assert!(
        !disk.exists(&into).unwrap(),
        "an uninstalled received file stays"
    );
}
