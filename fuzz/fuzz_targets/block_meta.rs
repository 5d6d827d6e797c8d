//! The block store's meta file reader (`blk_ID_GEN.meta`: magic, id,
//! generation, length, SHA-256, chunk size, chunk count, per-chunk CRC32C,
//! then a CRC32C of it all). The raw bytes are parsed, then the same bytes
//! with their trailing checksum fixed up (so the fuzzer gets past it), and
//! for some inputs a data directory holding them as a meta file is opened
//! and the replica verified.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use tdfs_datanode::block_store::decode_meta_for_fuzzing;
use tdfs_datanode::{BlockStore, StoreConfig};

/// Longest data file created next to a fuzzed meta file.
const MAX_DATA: u64 = 1 << 20;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("tdfs-fuzz-block-meta-{}", std::process::id()))
    })
}

fn fixed_crc(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    if v.len() >= 4 {
        let body = v.len() - 4;
        let sum = crc32c::crc32c(&v[..body]);
        v[body..].copy_from_slice(&sum.to_le_bytes());
    }
    v
}

fn load_dir(meta: &[u8], data_len: u64) {
    let root = dir();
    let current = root.join("current");
    let _ = std::fs::remove_dir_all(&current);
    // A bad meta file is quarantined; start each input without it.
    let _ = std::fs::remove_dir_all(root.join("quarantine"));
    std::fs::create_dir_all(&current).expect("mkdir");
    std::fs::write(current.join("blk_1_1.meta"), meta).expect("write meta");
    let f = std::fs::File::create(current.join("blk_1_1.data")).expect("create data");
    f.set_len(data_len).expect("set_len");
    drop(f);
    let mut cfg = StoreConfig::new(root);
    cfg.fsync = false;
    cfg.capacity = Some(1 << 40);
    let store = BlockStore::open(cfg).expect("a bad meta file must not stop the store");
    if let Some(r) = store.get(1) {
        assert_eq!(r.len, data_len);
        let _ = store.verify(1);
        if let Ok(reader) = store.open_read(1, r.gen) {
            let mut buf = vec![0u8; tdfs_transfer::CHUNK];
            for i in 0..reader.chunks().min(4) {
                let _ = reader.read_chunk(i, &mut buf);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, b)) = data.split_first() else {
        return;
    };
    let _ = decode_meta_for_fuzzing(b);
    let mut fixed = b.to_vec();
    if ctl & 2 == 2 && fixed.len() >= 24 {
        // Name the block the file is stored as (blk_1_1), so it can load.
        fixed[8..16].copy_from_slice(&1u64.to_le_bytes());
        fixed[16..24].copy_from_slice(&1u64.to_le_bytes());
    }
    let fixed = fixed_crc(&fixed);
    let parsed = decode_meta_for_fuzzing(&fixed);
    if let Ok((_, _, len, n)) = parsed {
        assert_eq!(n as u64, len.div_ceil(tdfs_transfer::CHUNK as u64));
    }
    if ctl & 1 == 1 {
        // The data file matches the meta's length when that is small, so
        // the replica loads and its CRCs and digest get checked.
        let data_len = match parsed {
            Ok((_, _, len, _)) if len <= MAX_DATA => len,
            _ => u64::from(ctl >> 2) * 1000,
        };
        load_dir(&fixed, data_len);
    }
});
