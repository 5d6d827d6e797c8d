//! The concurrent workload: namespace workers whose every call is recorded
//! in the [`History`], data writers (multi-block files and appends whose
//! contents derive from the run seed), readers that verify what they read,
//! and writers abandoned mid-file.

use super::history::{
    classify, is_pair, is_tree, key_count, key_path, key_slots, History, NsOp, Ret, TREE_KEYS,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tdfs_client::{read_range, CreateOptions, FileWriter, MetaClient};
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::FsError;

/// Directory of the data files.
pub const DATA_DIR: &str = "/chaos/data";
/// Block size of every data file: small, so files span several blocks.
pub const BLOCK: u64 = 1 << 20;
/// Acknowledged bytes one writer keeps at most before deleting old files.
const LIVE_BUDGET: u64 = 48 << 20;

/// The byte at every offset of a file is a function of the file's seed.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        let p = offset + k as u64;
        let mut z = seed ^ (p / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        *b = (z >> (8 * (p % 8))) as u8;
    }
}

/// SHA-256 of a file's first `len` bytes.
pub fn expected_sha(seed: u64, len: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill(seed, off, &mut buf[..n]);
        h.update(&buf[..n]);
        off += n as u64;
    }
    h.finalize().into()
}

/// Everything the checker needs to know about one data file.
#[derive(Clone, Debug, Default)]
pub struct DataFile {
    pub path: String,
    pub seed: u64,
    /// Whether the create call was acknowledged (else the file may be absent).
    pub created: bool,
    /// Length at the last acknowledged close.
    pub acked_len: u64,
    /// The attempt that did not end in an acknowledged close, if any:
    /// (its start offset, bytes it tried to write). The file is left alone
    /// afterwards, to lease recovery.
    pub failed: Option<(u64, u64)>,
    /// Written by a `tdfs dfs -put` that was killed (path is `._COPYING_`).
    pub killed_cli: bool,
    /// The workload deleted it: `Some(true)` acknowledged (it must be
    /// gone), `Some(false)` not acknowledged (either way is fine).
    pub deleted: Option<bool>,
    /// A truncate to this length was sent but not acknowledged: the file
    /// has either length (applied or not, never half-applied). The file is
    /// left alone afterwards.
    pub trunc: Option<u64>,
    /// Truncated (acknowledged) at least once.
    pub truncated: bool,
    /// Overwritten by a new file of the same path (checked as that one).
    pub replaced: bool,
    /// A truncate or overwrite is in flight or unfinished: readers keep off.
    pub busy: bool,
    /// Bumped before each truncate or overwrite: a read that saw the epoch
    /// change under it is not judged (its expected length moved).
    pub epoch: u64,
}

impl DataFile {
    /// Lengths the file may have once lease recovery is done: the last
    /// acknowledged length, or, after a failed attempt, any block boundary
    /// of that attempt or its full length (never a torn block).
    pub fn allowed_lengths(&self) -> Vec<u64> {
        let mut v = vec![self.acked_len];
        if let Some((start, len)) = self.failed {
            let mut b = start + BLOCK;
            while b < start + len {
                v.push(b);
                b += BLOCK;
            }
            v.push(start + len);
        }
        if let Some(t) = self.trunc {
            v.push(t);
        }
        v
    }

    /// Whether the file may be missing altogether.
    pub fn may_be_absent(&self) -> bool {
        !self.created
    }
}

/// Counters shown in the run summary.
#[derive(Default)]
pub struct Counters {
    pub files_ok: AtomicU64,
    pub files_failed: AtomicU64,
    pub appends_ok: AtomicU64,
    pub reads_ok: AtomicU64,
    pub reads_failed: AtomicU64,
    pub bytes_written: AtomicU64,
    pub abandoned: AtomicU64,
    /// Acknowledged truncates at a block boundary / inside a block.
    pub truncs_boundary: AtomicU64,
    pub truncs_inside: AtomicU64,
    /// Truncates whose outcome is unknown to the client.
    pub truncs_unknown: AtomicU64,
    /// Snapshot files deleted / overwritten (acknowledged) during the run.
    pub snap_deletes: AtomicU64,
    pub snap_overwrites: AtomicU64,
}

/// State shared by the workload tasks, the nemesis and the checker.
pub struct Shared {
    pub hist: History,
    pub files: Mutex<Vec<DataFile>>,
    /// Wrong data read back while the run went on.
    pub violations: Mutex<Vec<String>>,
    pub counters: Counters,
    /// Why reads failed (message with digits blanked → count), for the summary.
    pub read_errors: Mutex<std::collections::BTreeMap<String, u64>>,
    /// When each successful data operation (an acknowledged close, append
    /// or truncate, a verified read) completed, µs on the history's clock.
    pub data_acks: Mutex<Vec<u64>>,
    /// Per tree key: appends hold it exclusively, other mutations shared
    /// (see `tree.rs`).
    pub tree_locks: Vec<tokio::sync::RwLock<()>>,
    /// Tree keys no longer mutated (an append left a file open too long).
    pub tree_frozen: Vec<AtomicBool>,
    pub stop: AtomicBool,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            hist: History::new(),
            files: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            counters: Counters::default(),
            read_errors: Mutex::new(Default::default()),
            data_acks: Mutex::new(Vec::new()),
            tree_locks: (0..TREE_KEYS).map(|_| Default::default()).collect(),
            tree_frozen: (0..TREE_KEYS).map(|_| AtomicBool::new(false)).collect(),
            stop: AtomicBool::new(false),
        })
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn add_file(&self, f: DataFile) -> usize {
        let mut v = self.files.lock().unwrap();
        v.push(f);
        v.len() - 1
    }

    pub fn update(&self, i: usize, f: impl FnOnce(&mut DataFile)) {
        f(&mut self.files.lock().unwrap()[i]);
    }

    /// Notes that a data operation just succeeded.
    pub fn data_ack(&self) {
        let t = self.hist.now();
        self.data_acks.lock().unwrap().push(t);
    }
}

/// One namespace operation on a random key, recorded.
async fn ns_step(sh: &Shared, c: &Arc<MetaClient>, worker: usize, rng: &mut StdRng) {
    let key = rng.gen_range(0..key_count());
    if is_tree(key) {
        return super::tree::step(sh, c, worker, key, rng).await;
    }
    let slot = if is_pair(key) {
        rng.gen_range(0..2u8)
    } else {
        0
    };
    let roll = rng.gen_range(0..100);
    let op = match roll {
        0..=24 => NsOp::Create(slot),
        25..=44 => NsOp::Delete(slot),
        45..=64 if is_pair(key) => NsOp::Rename {
            from: slot,
            to: 1 - slot,
        },
        45..=64 => NsOp::Mkdir(slot),
        _ => NsOp::Stat(slot),
    };
    meta_op(sh, c, worker, key, op).await;
}

/// Sends one namespace call (anything but an append) for `op` on `key`,
/// records it, and closes a created file.
pub async fn meta_op(sh: &Shared, c: &MetaClient, worker: usize, key: usize, op: NsOp) -> Ret {
    let path = |s: u8| key_path(key, s as usize);
    let invoke = sh.hist.now();
    let req = match op {
        NsOp::Create(s) => MetaRequest::Create {
            path: path(s),
            overwrite: false,
            replication: Some(1),
            block_size: None,
            mode: None,
            create_parents: false,
        },
        NsOp::Mkdir(s) => MetaRequest::Mkdirs {
            path: path(s),
            mode: None,
            parents: false,
        },
        NsOp::Delete(s) | NsOp::DeleteAll(s) => MetaRequest::Delete {
            path: path(s),
            recursive: matches!(op, NsOp::DeleteAll(_)),
        },
        NsOp::Stat(s) => MetaRequest::GetFileInfo { path: path(s) },
        NsOp::Rename { from, to } => MetaRequest::Rename {
            src: path(from),
            dst: path(to),
            into_dir: true,
        },
        NsOp::Append(..) => unreachable!("appends go through a FileWriter"),
    };
    let res = match c.meta(req).await {
        Ok(MetaResponse::Status(st)) if matches!(op, NsOp::Stat(_)) => stat_ret(&st),
        Ok(_) => Ret::Ok,
        Err(e) => classify(op, &e),
    };
    sh.hist.record(worker, key, op, invoke, res);
    // A created file is closed at once (not part of the model: closing
    // changes no path's existence). If that fails, lease recovery closes it.
    if let (NsOp::Create(s), Ret::Ok) = (op, res) {
        let _ = c
            .meta(MetaRequest::Complete {
                path: path(s),
                last: None,
            })
            .await;
    }
    res
}

/// What a stat that found something returned, in the model's terms.
pub fn stat_ret(st: &tdfs_proto::meta::FileStatus) -> Ret {
    if st.is_dir() {
        Ret::IsDir
    } else {
        Ret::IsFile(st.length)
    }
}

/// Namespace worker: mutations and reads on random keys until stopped.
pub async fn ns_worker(sh: Arc<Shared>, c: Arc<MetaClient>, worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !sh.stopped() {
        ns_step(&sh, &c, worker, &mut rng).await;
    }
}

/// Read-only worker on a client pinned to one metadata node: after a fault
/// (a paused or partitioned old leader) its reads must still be linearizable.
pub async fn stat_worker(sh: Arc<Shared>, c: Arc<MetaClient>, worker: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !sh.stopped() {
        let key = rng.gen_range(0..key_count());
        let slot = rng.gen_range(0..key_slots(key)) as u8;
        let op = NsOp::Stat(slot);
        let invoke = sh.hist.now();
        let res = match c.stat(&key_path(key, slot as usize)).await {
            Ok(st) => stat_ret(&st),
            Err(e) => classify(op, &e),
        };
        sh.hist.record(worker, key, op, invoke, res);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    }
}

/// Writes `len` bytes of the file's stream from `start` through `w`.
async fn pour(w: &mut FileWriter, seed: u64, start: u64, len: u64) -> Result<(), FsError> {
    let mut buf = vec![0u8; 256 << 10];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(buf.len() as u64) as usize;
        fill(seed, start + off, &mut buf[..n]);
        w.write(&buf[..n]).await?;
        off += n as u64;
    }
    Ok(())
}

fn opts() -> CreateOptions {
    CreateOptions {
        overwrite: false,
        replication: Some(3),
        block_size: Some(BLOCK),
        ..CreateOptions::default()
    }
}

/// Creates and writes a new file; records how it went.
async fn write_new(sh: &Shared, c: &Arc<MetaClient>, path: String, seed: u64, len: u64) -> usize {
    write_file(sh, c, path, seed, len, false).await
}

/// Creates (or, with `overwrite`, replaces) and writes a file; records how
/// it went.
pub async fn write_file(
    sh: &Shared,
    c: &Arc<MetaClient>,
    path: String,
    seed: u64,
    len: u64,
    overwrite: bool,
) -> usize {
    let idx = sh.add_file(DataFile {
        path: path.clone(),
        seed,
        failed: Some((0, len)),
        ..Default::default()
    });
    let o = CreateOptions {
        overwrite,
        ..opts()
    };
    let mut w = match FileWriter::create(c.clone(), &path, o).await {
        Ok(w) => w,
        Err(_) => {
            sh.counters.files_failed.fetch_add(1, Ordering::Relaxed);
            return idx;
        }
    };
    sh.update(idx, |f| f.created = true);
    let r = match pour(&mut w, seed, 0, len).await {
        Ok(()) => w.close().await.map(|_| ()),
        Err(e) => Err(e),
    };
    if r.is_ok() {
        sh.update(idx, |f| {
            f.acked_len = len;
            f.failed = None;
        });
        sh.counters.files_ok.fetch_add(1, Ordering::Relaxed);
        sh.counters.bytes_written.fetch_add(len, Ordering::Relaxed);
        sh.data_ack();
    } else {
        sh.counters.files_failed.fetch_add(1, Ordering::Relaxed);
    }
    idx
}

/// Appends to a file whose last attempt was acknowledged.
pub async fn append(sh: &Shared, c: &Arc<MetaClient>, idx: usize, len: u64) {
    let (path, seed, start) = {
        let f = &sh.files.lock().unwrap()[idx];
        (f.path.clone(), f.seed, f.acked_len)
    };
    sh.update(idx, |f| f.failed = Some((start, len)));
    let r = match FileWriter::append(c.clone(), &path).await {
        Ok(mut w) => match pour(&mut w, seed, start, len).await {
            Ok(()) => w.close().await.map(|_| ()),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    if r.is_ok() {
        sh.update(idx, |f| {
            f.acked_len = start + len;
            f.failed = None;
        });
        sh.counters.appends_ok.fetch_add(1, Ordering::Relaxed);
        sh.counters.bytes_written.fetch_add(len, Ordering::Relaxed);
        sh.data_ack();
    }
}

/// Truncates an acknowledged, closed file to a seeded length: half the
/// time at a block boundary (done at once), else inside a block (the last
/// block is recovered to the new length; waits for the file to close).
pub async fn truncate(sh: &Shared, c: &MetaClient, idx: usize, rng: &mut StdRng) {
    let len = sh.files.lock().unwrap()[idx].acked_len;
    if len == 0 {
        return;
    }
    let boundary = rng.gen_bool(0.5);
    let new_len = if boundary {
        rng.gen_range(0..=(len - 1) / BLOCK) * BLOCK
    } else {
        let mut l = rng.gen_range(1..len);
        if l.is_multiple_of(BLOCK) {
            l -= 1;
        }
        l
    };
    truncate_to(sh, c, idx, new_len).await;
}

/// Truncates an acknowledged, closed file to `new_len` (shorter than it),
/// recording the outcome.
pub async fn truncate_to(sh: &Shared, c: &MetaClient, idx: usize, new_len: u64) {
    let path = sh.files.lock().unwrap()[idx].path.clone();
    let inside = !new_len.is_multiple_of(BLOCK);
    sh.update(idx, |f| {
        f.busy = true;
        f.epoch += 1;
    });
    match c.truncate(&path, new_len).await {
        Ok(done) => {
            sh.data_ack();
            sh.update(idx, |f| {
                f.acked_len = new_len;
                f.truncated = true;
            });
            if inside {
                sh.counters.truncs_inside.fetch_add(1, Ordering::Relaxed);
            } else {
                sh.counters.truncs_boundary.fetch_add(1, Ordering::Relaxed);
            }
            // Closed once the last block is recovered; until then (or if
            // that takes too long) the file stays busy, left alone.
            if done || c.wait_closed(&path, Duration::from_secs(30)).await.is_ok() {
                sh.update(idx, |f| f.busy = false);
            }
        }
        Err(_) => {
            sh.update(idx, |f| f.trunc = Some(new_len));
            sh.counters.truncs_unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts a file with its own client and drops both halfway through a
/// block: the file is left to lease recovery.
async fn abandon(sh: &Shared, c: Arc<MetaClient>, path: String, seed: u64) {
    let len = BLOCK + BLOCK / 2;
    let idx = sh.add_file(DataFile {
        path: path.clone(),
        seed,
        failed: Some((0, len)),
        ..Default::default()
    });
    if let Ok(mut w) = FileWriter::create(c, &path, opts()).await {
        sh.update(idx, |f| f.created = true);
        let _ = pour(&mut w, seed, 0, len).await;
        drop(w);
    }
    sh.counters.abandoned.fetch_add(1, Ordering::Relaxed);
}

/// Data writer: new multi-block files, appends, and now and then an
/// abandoned writer (`mk_client` makes it a client of its own).
pub async fn writer(
    sh: Arc<Shared>,
    c: Arc<MetaClient>,
    mk_client: impl Fn() -> Arc<MetaClient>,
    worker: usize,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mine: Vec<usize> = Vec::new();
    let mut n = 0;
    while !sh.stopped() {
        n += 1;
        let path = format!("{DATA_DIR}/w{worker}-{n}");
        let fseed = rng.gen();
        let roll = rng.gen_range(0..100);
        let appendable: Vec<usize> = {
            let files = sh.files.lock().unwrap();
            mine.iter()
                .copied()
                .filter(|&i| {
                    files[i].failed.is_none()
                        && files[i].deleted.is_none()
                        && !files[i].busy
                        && files[i].trunc.is_none()
                        && files[i].acked_len < 12 * BLOCK
                })
                .collect()
        };
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..200))).await;
        // Keep the live data bounded (the disks are small tmpfs): delete
        // the oldest acknowledged file once over budget.
        let live: Vec<(usize, u64)> = {
            let files = sh.files.lock().unwrap();
            mine.iter()
                .map(|&i| (i, files[i].acked_len))
                .filter(|&(i, _)| files[i].failed.is_none() && files[i].deleted.is_none())
                .collect()
        };
        if live.iter().map(|&(_, l)| l).sum::<u64>() > LIVE_BUDGET {
            let (idx, _) = live[0];
            let path = sh.files.lock().unwrap()[idx].path.clone();
            let ok = c.delete(&path, false).await.is_ok();
            sh.update(idx, |f| f.deleted = Some(ok));
            continue;
        }
        if roll < 30 && !appendable.is_empty() {
            let idx = appendable[rng.gen_range(0..appendable.len())];
            let len = rng.gen_range(BLOCK / 4..BLOCK * 3 / 2);
            append(&sh, &c, idx, len).await;
        } else if roll < 38 && !appendable.is_empty() {
            let idx = appendable[rng.gen_range(0..appendable.len())];
            truncate(&sh, &c, idx, &mut rng).await;
        } else if roll < 43 {
            abandon(&sh, mk_client(), path, fseed).await;
        } else {
            let len = rng.gen_range(BLOCK / 2..BLOCK * 7 / 2);
            mine.push(write_new(&sh, &c, path, fseed, len).await);
        }
    }
}

/// Reader: reads the acknowledged prefix of random files and checks it.
pub async fn reader(sh: Arc<Shared>, c: Arc<MetaClient>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !sh.stopped() {
        let pick = {
            let files = sh.files.lock().unwrap();
            let ok: Vec<usize> = files
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.created && f.acked_len > 0 && f.deleted.is_none() && !f.busy && !f.replaced
                })
                .map(|(i, _)| i)
                .collect();
            (!ok.is_empty()).then(|| {
                let i = ok[rng.gen_range(0..ok.len())];
                let f = &files[i];
                (i, f.path.clone(), f.seed, f.acked_len, f.epoch)
            })
        };
        let Some((idx, path, fseed, len, epoch)) = pick else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut out = Vec::with_capacity(len as usize);
        match read_range(&c, &path, 0, len, &mut out).await {
            Ok(_) => {
                // A truncate or overwrite began during the read: what it
                // should have returned is not known; do not judge it.
                if sh.files.lock().unwrap()[idx].epoch != epoch {
                    continue;
                }
                sh.counters.reads_ok.fetch_add(1, Ordering::Relaxed);
                let got: [u8; 32] = Sha256::digest(&out).into();
                if out.len() as u64 == len && got == expected_sha(fseed, len) {
                    sh.data_ack();
                } else {
                    sh.violations.lock().unwrap().push(format!(
                        "read of {path} [0, {len}) returned {} bytes that do not match what was \
                         acknowledged",
                        out.len()
                    ));
                }
            }
            Err(e) => {
                sh.counters.reads_failed.fetch_add(1, Ordering::Relaxed);
                let class: String = e
                    .to_string()
                    .chars()
                    .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
                    .take(100)
                    .collect();
                *sh.read_errors.lock().unwrap().entry(class).or_default() += 1;
                // Counted once per 100 ms of unavailability, not per spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
