//! The block store: durability, crash leftovers, space accounting, digests,
//! generations, verification and the directory lock.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use tdfs_datanode::block_store::{BlockState, BlockStore, StoreConfig};
use tdfs_proto::FsError;
use tdfs_transfer::{Finish, CHUNK};

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    tdfs_testkit::data::bytes(seed, len)
}

use tdfs_testkit::data::sha;

fn open(dir: &Path) -> Arc<BlockStore> {
    BlockStore::open(StoreConfig::new(dir)).unwrap()
}

fn open_cap(dir: &Path, cap: u64) -> Arc<BlockStore> {
    let mut cfg = StoreConfig::new(dir);
    cfg.capacity = Some(cap);
    BlockStore::open(cfg).unwrap()
}

fn put(store: &Arc<BlockStore>, id: u64, gen: u64, data: &[u8]) -> Result<(), FsError> {
    let mut w = store.begin_write(id, gen, data.len() as u64)?;
    for c in data.chunks(CHUNK) {
        w.write_chunk(c, crc32c::crc32c(c))?;
    }
    w.finish(Finish {
        len: data.len() as u64,
        sha256: sha(data),
    })?;
    Ok(())
}

fn read_all(store: &BlockStore, id: u64, gen: u64) -> Result<Vec<u8>, FsError> {
    let r = store.open_read(id, gen)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    for i in 0..r.chunks() {
        let (n, crc) = r.read_chunk(i, &mut buf)?;
        assert_eq!(crc32c::crc32c(&buf[..n]), crc, "chunk {i}");
        out.extend_from_slice(&buf[..n]);
    }
    Ok(out)
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5];
    let node_id;
    {
        let store = open(dir.path());
        node_id = store.datanode_id().clone();
        assert_eq!(node_id.0.len(), 16);
        assert!(node_id.0.bytes().all(|b| b.is_ascii_hexdigit()));
        for (i, &n) in sizes.iter().enumerate() {
            let data = pattern(n, i as u64);
            put(&store, i as u64 + 1, 7, &data).unwrap();
            assert_eq!(read_all(&store, i as u64 + 1, 7).unwrap(), data);
            let r = store.get(i as u64 + 1).unwrap();
            assert_eq!((r.len, r.gen, r.sha256), (n as u64, 7, sha(&data)));
            assert_eq!(store.state(i as u64 + 1), Some(BlockState::Finalized));
        }
        let u = store.usage();
        assert_eq!(u.blocks, sizes.len() as u64);
        assert_eq!(u.used, sizes.iter().sum::<usize>() as u64);
        assert_eq!(u.pending, 0);
        assert!(u.capacity >= u.used);
    }
    let store = open(dir.path());
    assert_eq!(store.datanode_id(), &node_id, "the id is stable");
    assert_eq!(store.replicas().len(), sizes.len());
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(
            read_all(&store, i as u64 + 1, 7).unwrap(),
            pattern(n, i as u64)
        );
        assert!(store.verify(i as u64 + 1).unwrap());
    }
    assert!(matches!(
        store.open_read(99, 7),
        Err(FsError::BlockNotFound(99))
    ));
    assert!(matches!(
        store.open_read(1, 6),
        Err(FsError::BlockNotFound(1))
    ));
}

#[test]
fn leftovers_of_a_crash_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        put(&store, 1, 1, &pattern(CHUNK + 3, 1)).unwrap();
        put(&store, 2, 1, &pattern(10, 2)).unwrap();
        // A writer that never finishes: the process "dies" with it.
        let mut w = store.begin_write(3, 1, 100).unwrap();
        w.write_chunk(b"partial", crc32c::crc32c(b"partial"))
            .unwrap();
        std::mem::forget(w);
    }
    let rbw = dir.path().join("rbw");
    let cur = dir.path().join("current");
    assert!(!files(&rbw).is_empty());
    fs::write(rbw.join("blk_4_1_9.meta"), b"junk").unwrap();
    // Crash between publishing the data file and its meta file.
    fs::write(cur.join("blk_5_1.data"), pattern(100, 5)).unwrap();
    // The forgotten writer keeps its store (and the lock) alive in this
    // process: reopen a copy of the directory, as a restarted node would.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(dir.path(), copy.path());
    let store = open(copy.path());
    assert!(files(&copy.path().join("rbw")).is_empty(), "rbw cleaned");
    assert_eq!(
        files(&copy.path().join("current")),
        vec![
            "blk_1_1.data",
            "blk_1_1.meta",
            "blk_2_1.data",
            "blk_2_1.meta"
        ]
    );
    assert_eq!(store.replicas().len(), 2);
    assert_eq!(store.get(5), None);
    assert_eq!(store.usage().used, (CHUNK + 3 + 10) as u64);
}

fn copy_tree(from: &Path, to: &Path) {
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            fs::create_dir_all(&dst).unwrap();
            copy_tree(&e.path(), &dst);
        } else if e.file_name() != "LOCK" {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

#[test]
fn torn_or_mismatched_meta_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let cur = dir.path().join("current");
    {
        let store = open(dir.path());
        for id in 1..=5 {
            put(&store, id, 1, &pattern(2 * CHUNK + 17, id)).unwrap();
        }
    }
    // 1: torn (truncated) meta. 2: a flipped bit in the meta. 3: the data
    // file shorter than the meta says. 4: meta without data. 5 stays good.
    let m1 = cur.join("blk_1_1.meta");
    let len = fs::metadata(&m1).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&m1)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let m2 = cur.join("blk_2_1.meta");
    let mut b = fs::read(&m2).unwrap();
    b[40] ^= 0x10;
    fs::write(&m2, b).unwrap();
    let d3 = cur.join("blk_3_1.data");
    fs::OpenOptions::new()
        .write(true)
        .open(&d3)
        .unwrap()
        .set_len(CHUNK as u64)
        .unwrap();
    fs::remove_file(cur.join("blk_4_1.data")).unwrap();
    let store = open(dir.path());
    assert_eq!(store.replicas().len(), 1);
    assert!(store.get(5).is_some());
    assert_eq!(files(&cur), vec!["blk_5_1.data", "blk_5_1.meta"]);
    // They were finalized replicas: quarantined, not deleted.
    assert_eq!(store.quarantined(), vec![(1, 1), (2, 1), (3, 1), (4, 1)]);
    assert_eq!(
        files(&dir.path().join("quarantine")),
        vec![
            "blk_1_1.data",
            "blk_1_1.meta",
            "blk_2_1.data",
            "blk_2_1.meta",
            "blk_3_1.data",
            "blk_3_1.meta",
            "blk_4_1.meta"
        ]
    );
}

#[test]
fn garbage_meta_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cur = dir.path().join("current");
    {
        let store = open(dir.path());
        put(&store, 1, 1, &pattern(3 * CHUNK, 1)).unwrap();
    }
    let good = fs::read(cur.join("blk_1_1.meta")).unwrap();
    let mut seed = 1u64;
    for round in 0..200u64 {
        let mut b = good.clone();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        match round % 4 {
            0 => b.truncate((seed % b.len() as u64) as usize),
            1 => {
                let i = (seed % b.len() as u64) as usize;
                b[i] ^= 1 << (seed % 8);
            }
            2 => b = pattern((seed % 200) as usize, seed),
            _ => b.extend_from_slice(&pattern((seed % 9) as usize + 1, seed)),
        }
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("current")).unwrap();
        fs::write(d.path().join("current/blk_1_1.meta"), &b).unwrap();
        fs::copy(
            cur.join("blk_1_1.data"),
            d.path().join("current/blk_1_1.data"),
        )
        .unwrap();
        let store = open(d.path());
        assert!(
            store.get(1).is_none(),
            "round {round}: a damaged meta file was accepted"
        );
    }
    // A meta file damaged while the store runs: reading is an error.
    let store = open(dir.path());
    let mut b = good.clone();
    b[70] ^= 0xff;
    fs::write(cur.join("blk_1_1.meta"), &b).unwrap();
    assert!(matches!(
        store.open_read(1, 1),
        Err(FsError::ChecksumMismatch { .. })
    ));
    assert!(!store.verify(1).unwrap());
}

#[test]
fn no_space_with_a_small_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_cap(dir.path(), 200_000);
    match store.begin_write(1, 1, 300_000) {
        Err(FsError::NoSpace(msg)) => {
            assert!(msg.contains(&store.datanode_id().0), "{msg}");
            assert!(msg.contains("300000"), "{msg}");
            assert!(msg.contains("200000"), "{msg}");
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    let w1 = store.begin_write(1, 1, 120_000).unwrap();
    assert_eq!(store.usage().pending, 120_000);
    assert_eq!(store.state(1), Some(BlockState::Receiving));
    assert!(matches!(
        store.begin_write(2, 1, 120_000),
        Err(FsError::NoSpace(_))
    ));
    drop(w1);
    assert_eq!(store.usage().pending, 0);
    assert_eq!(store.state(1), None);
    assert!(files(&dir.path().join("rbw")).is_empty());

    put(&store, 2, 1, &pattern(150_000, 2)).unwrap();
    let u = store.usage();
    assert_eq!(
        (u.used, u.pending, u.blocks, u.capacity),
        (150_000, 0, 1, 200_000)
    );
    assert!(matches!(
        store.begin_write(3, 1, 60_000),
        Err(FsError::NoSpace(_))
    ));
    // Writing past the reservation needs space too.
    let mut w = store.begin_write(3, 1, 10).unwrap();
    let c = pattern(CHUNK, 3);
    assert!(matches!(
        w.write_chunk(&c, crc32c::crc32c(&c)),
        Err(FsError::NoSpace(_))
    ));
    drop(w);
    assert!(store.delete(2, 1).unwrap().any());
    assert_eq!(store.usage().used, 0);
    put(&store, 3, 1, &pattern(190_000, 3)).unwrap();
}

#[test]
fn digest_or_length_mismatch_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(2 * CHUNK + 9, 1);
    let write = |fin: Finish| {
        let mut w = store.begin_write(1, 1, data.len() as u64).unwrap();
        for c in data.chunks(CHUNK) {
            w.write_chunk(c, crc32c::crc32c(c)).unwrap();
        }
        w.finish(fin)
    };
    let mut bad = sha(&data);
    bad[0] ^= 1;
    assert!(matches!(
        write(Finish {
            len: data.len() as u64,
            sha256: bad
        }),
        Err(FsError::ChecksumMismatch { block: 1, .. })
    ));
    assert!(matches!(
        write(Finish {
            len: data.len() as u64 + 1,
            sha256: sha(&data)
        }),
        Err(FsError::ChecksumMismatch { .. })
    ));
    assert!(store.get(1).is_none());
    assert!(files(&dir.path().join("rbw")).is_empty());
    assert!(files(&dir.path().join("current")).is_empty());
    assert_eq!(store.usage().pending, 0);

    // A chunk whose CRC does not match, oversized and out-of-order chunks.
    let mut w = store.begin_write(2, 1, 100).unwrap();
    assert!(matches!(
        w.write_chunk(b"abc", crc32c::crc32c(b"abd")),
        Err(FsError::ChecksumMismatch { .. })
    ));
    let big = vec![0u8; CHUNK + 1];
    assert!(w.write_chunk(&big, crc32c::crc32c(&big)).is_err());
    w.write_chunk(b"abc", crc32c::crc32c(b"abc")).unwrap();
    assert!(
        w.write_chunk(b"abc", crc32c::crc32c(b"abc")).is_err(),
        "after a short chunk"
    );
    drop(w);
    assert!(store.get(2).is_none());
    write(Finish {
        len: data.len() as u64,
        sha256: sha(&data),
    })
    .unwrap();
    assert!(store.verify(1).unwrap());
}

#[test]
fn a_higher_generation_replaces_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let cur = dir.path().join("current");
    let a = pattern(CHUNK + 1, 1);
    let b = pattern(100, 2);
    {
        let store = open(dir.path());
        put(&store, 1, 1, &a).unwrap();
        let old_reader = store.open_read(1, 1).unwrap();
        put(&store, 1, 2, &b).unwrap();
        let r = store.get(1).unwrap();
        assert_eq!((r.gen, r.len), (2, 100));
        assert_eq!(store.usage().used, 100);
        assert_eq!(store.usage().blocks, 1);
        assert_eq!(read_all(&store, 1, 2).unwrap(), b);
        assert!(matches!(
            store.open_read(1, 1),
            Err(FsError::BlockNotFound(1))
        ));
        // A reader opened before keeps reading the old bytes.
        let mut buf = vec![0u8; CHUNK];
        let (n, _) = old_reader.read_chunk(1, &mut buf).unwrap();
        assert_eq!(&buf[..n], &a[CHUNK..]);
        assert_eq!(files(&cur), vec!["blk_1_2.data", "blk_1_2.meta"]);
        // An older generation is refused.
        assert!(store.begin_write(1, 1, 10).is_err());
        // The same replica again is accepted and changes nothing.
        put(&store, 1, 2, &b).unwrap();
        // The same generation with other bytes is refused.
        assert!(put(&store, 1, 2, &pattern(100, 3)).is_err());
        assert_eq!(read_all(&store, 1, 2).unwrap(), b);
        assert_eq!(store.usage().pending, 0);
    }
    // Both generations on disk (a crash before the old one was removed):
    // the newer wins on load.
    {
        let other = tempfile::tempdir().unwrap();
        let store = open(other.path());
        put(&store, 1, 1, &a).unwrap();
        drop(store);
        for f in ["blk_1_1.data", "blk_1_1.meta"] {
            fs::copy(other.path().join("current").join(f), cur.join(f)).unwrap();
        }
    }
    let store = open(dir.path());
    assert_eq!(store.get(1).unwrap().gen, 2);
    assert_eq!(files(&cur), vec!["blk_1_2.data", "blk_1_2.meta"]);
}

#[test]
fn verify_detects_a_flipped_byte_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let data = pattern(3 * CHUNK + 5, 1);
    put(&store, 1, 1, &data).unwrap();
    put(&store, 2, 1, &data).unwrap();
    assert!(store.verify(1).unwrap());
    assert_eq!(store.state(1), Some(BlockState::Finalized));
    let path = dir.path().join("current/blk_1_1.data");
    let mut b = fs::read(&path).unwrap();
    b[2 * CHUNK + 100] ^= 0x01;
    fs::write(&path, &b).unwrap();
    assert!(!store.verify(1).unwrap());
    let path2 = dir.path().join("current/blk_2_1.data");
    fs::OpenOptions::new()
        .write(true)
        .open(&path2)
        .unwrap()
        .set_len(CHUNK as u64)
        .unwrap();
    assert!(!store.verify(2).unwrap());
    // Reading the truncated replica is an error, not a panic.
    let r = store.open_read(2, 1).unwrap();
    let mut buf = vec![0u8; CHUNK];
    assert!(r.read_chunk(3, &mut buf).is_err());
    assert!(matches!(store.verify(42), Err(FsError::BlockNotFound(42))));
}

#[test]
fn delete_removes_the_replica() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    put(&store, 1, 1, &pattern(1000, 1)).unwrap();
    assert!(store.delete(1, 1).unwrap().any());
    assert!(!store.delete(1, 1).unwrap().any());
    assert!(store.get(1).is_none());
    assert_eq!(store.state(1), None);
    assert!(matches!(
        store.open_read(1, 1),
        Err(FsError::BlockNotFound(1))
    ));
    assert_eq!(store.usage().used, 0);
    assert!(files(&dir.path().join("current")).is_empty());
}

#[test]
fn the_directory_lock_prevents_a_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    match BlockStore::open(StoreConfig::new(dir.path())) {
        Err(FsError::Io(msg)) => assert!(msg.contains("in use"), "{msg}"),
        other => panic!("second open: {other:?}"),
    }
    drop(store);
    let _again = open(dir.path());
}

#[test]
fn a_corrupt_id_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("datanode.id"), b"\xff\xfe garbage \n").unwrap();
    assert!(BlockStore::open(StoreConfig::new(dir.path())).is_err());
}

#[test]
fn truncate_cuts_in_place_or_beside_the_old_replica_and_survives_reopen() {
    use tdfs_datanode::block_store::Truncated;
    use tdfs_proto::meta::BlockInfo;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(3 * CHUNK + 100, 14);
    let store = open(dir.path());
    put(&store, 1, 1, &data).unwrap();
    put(&store, 2, 1, &data).unwrap();
    let src = |id| BlockInfo {
        id,
        gen: 1,
        len: data.len() as u64,
        sha256: None,
    };
    // In place, inside a chunk: the new generation replaces the old one.
    let cut = CHUNK + 17;
    let Truncated::Stored(r) = store.truncate_copy(&src(1), 1, 2, cut as u64).unwrap() else {
        panic!("not stored")
    };
    assert_eq!(
        (r.id, r.gen, r.len, r.sha256),
        (1, 2, cut as u64, sha(&data[..cut]))
    );
    assert_eq!(read_all(&store, 1, 2).unwrap(), &data[..cut]);
    assert!(store.open_read(1, 1).is_err());
    // Repeating the command reports the stored replica again.
    assert_eq!(
        store.truncate_copy(&src(1), 1, 2, cut as u64).unwrap(),
        Truncated::Stored(r)
    );
    // Copy-on-truncate at a chunk boundary: the old replica stays.
    let Truncated::Stored(r) = store
        .truncate_copy(&src(2), 9, 3, 2 * CHUNK as u64)
        .unwrap()
    else {
        panic!("not stored")
    };
    assert_eq!(r.sha256, sha(&data[..2 * CHUNK]));
    assert_eq!(read_all(&store, 2, 1).unwrap(), data);
    // Longer than the replica: refused.
    assert!(store
        .truncate_copy(&src(2), 10, 3, data.len() as u64 + 1)
        .is_err());
    drop(store);
    let store = open(dir.path());
    assert_eq!(read_all(&store, 1, 2).unwrap(), &data[..cut]);
    assert_eq!(read_all(&store, 9, 3).unwrap(), &data[..2 * CHUNK]);
    assert_eq!(read_all(&store, 2, 1).unwrap(), data);
}

#[test]
fn truncate_of_a_corrupt_replica_quarantines_it() {
    use tdfs_datanode::block_store::Truncated;
    use tdfs_proto::meta::BlockInfo;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(2 * CHUNK, 15);
    let store = open(dir.path());
    put(&store, 4, 1, &data).unwrap();
    // Flip a byte in the first chunk on disk.
    let path = dir.path().join("current/blk_4_1.data");
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let src = BlockInfo {
        id: 4,
        gen: 1,
        len: data.len() as u64,
        sha256: None,
    };
    assert_eq!(
        store.truncate_copy(&src, 4, 2, 100).unwrap(),
        Truncated::Corrupt { gen: 1 }
    );
    assert_eq!(store.state(4), Some(BlockState::Quarantined));
}
