//! Block stores on an in-memory (and maybe faulty) disk, and what the tests
//! do with them.

use super::sha;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tdfs_datanode::block_store::{BlockStore, StoreConfig};
use tdfs_disk::{Disk, MemDisk, Open};
use tdfs_proto::meta::ReplicaReport;
use tdfs_proto::FsError;
use tdfs_transfer::{Finish, CHUNK};

/// The data directory of the stores on in-memory disks.
pub const DIR: &str = "/dn";

/// A store in [`DIR`] on `disk`, sized by the disk, with fsync on.
pub fn open_on(disk: Arc<dyn Disk>) -> Arc<BlockStore> {
    BlockStore::open(StoreConfig::new(DIR).on(disk)).unwrap()
}

/// Writes and publishes replica `id`/`gen`.
pub fn put(
    store: &Arc<BlockStore>,
    id: u64,
    gen: u64,
    data: &[u8],
) -> Result<ReplicaReport, FsError> {
    let mut w = store.begin_write(id, gen, data.len() as u64)?;
    for c in data.chunks(CHUNK) {
        w.write_chunk(c, crc32c::crc32c(c))?;
    }
    w.finish(Finish {
        len: data.len() as u64,
        sha256: sha(data),
    })
}

/// Reads a whole replica, checking every chunk against its stored CRC.
pub fn read_all(store: &BlockStore, id: u64, gen: u64) -> Result<Vec<u8>, FsError> {
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

/// The names in `DIR/sub`, sorted.
pub fn names(disk: &dyn Disk, sub: &str) -> Vec<String> {
    let mut v: Vec<String> = disk
        .read_dir(&Path::new(DIR).join(sub))
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Flips one bit of the file at `DIR/rel`, as a failing disk would.
pub fn flip(disk: &MemDisk, rel: &str, at: u64) {
    let f = disk
        .open(&Path::new(DIR).join(rel), Open::ReadWrite)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).unwrap();
    f.write_all_at(&[b[0] ^ 0x20], at).unwrap();
    f.sync_data().unwrap();
}

/// Polls `f` until it holds, failing the test after `secs` seconds.
pub fn wait_until(what: &str, secs: u64, f: impl FnMut() -> bool) {
    crate::wait::wait_until_blocking(what, Duration::from_secs(secs), f)
}
