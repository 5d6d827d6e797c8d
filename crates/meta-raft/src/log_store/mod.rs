//! The durable Raft log.
//!
//! One append-only file of records (format and recovery in [`format`]),
//! plus a small state file (vote, purged log id) replaced atomically.
//! Appends are written at once and made durable by a flusher thread that
//! fsyncs whatever has accumulated and only then reports the entries
//! flushed: group commit, many entries per fsync, without blocking the
//! Raft core during the fsync.
//!
//! Memory holds an index of every live entry (its log id and place in the
//! file) and the most recent entries decoded; older ones (a lagging
//! follower's) are read back from the file. So the log's memory does not
//! grow with the namespace's write rate between snapshots.

pub mod format;

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use format::{decode_payload, encode_record, file_header, scan, FILE_HEADER, RECORD_HEADER};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogId, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

const LOG_FILE: &str = "log.dat";
const STATE_FILE: &str = "state.bin";
/// Rewrite the log file when this many dead bytes precede the first live entry.
const COMPACT_BYTES: u64 = 32 << 20;
/// Decoded entries kept in memory (the most recent ones).
const CACHE_BYTES: usize = 32 << 20;

/// Persisted alongside the log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PersistedState {
    vote: Option<Vote>,
    purged: Option<LogId>,
}

/// Where a live entry is.
#[derive(Clone, Copy, Debug)]
struct Place {
    log_id: LogId,
    offset: u64,
    /// Bytes of the whole record.
    len: u32,
}

struct Data {
    file: File,
    /// Bytes in the log file.
    end: u64,
    /// Every live entry.
    index: BTreeMap<u64, Place>,
    /// The most recent entries, decoded, with their encoded sizes.
    cache: BTreeMap<u64, (Entry, usize)>,
    cache_bytes: usize,
    state: PersistedState,
    /// Callbacks of appended entries waiting for the next fsync.
    pending: Vec<LogFlushed<TypeConfig>>,
}

impl Data {
    fn cache_put(&mut self, idx: u64, e: Entry, size: usize) {
        self.cache_bytes += size;
        self.cache.insert(idx, (e, size));
        while self.cache_bytes > CACHE_BYTES {
            let Some((_, (_, s))) = self.cache.pop_first() else {
                break;
            };
            self.cache_bytes -= s;
        }
    }

    fn cache_drop_from(&mut self, idx: u64) {
        for (_, (_, s)) in self.cache.split_off(&idx) {
            self.cache_bytes -= s;
        }
    }

    fn cache_drop_upto(&mut self, idx: u64) {
        let keep = self.cache.split_off(&(idx + 1));
        for (_, (_, s)) in std::mem::replace(&mut self.cache, keep) {
            self.cache_bytes -= s;
        }
    }
}

struct Shared {
    dir: PathBuf,
    fsync: bool,
    data: Mutex<Data>,
    wake: Condvar,
    /// Held by whoever runs an fsync that completes callbacks, so that
    /// truncation never races a flush in progress.
    sync_lock: Mutex<()>,
    /// A second handle on the log file, for fsync and reads outside `data`.
    sync_file: Mutex<File>,
}

/// The durable log store; clones share the same log.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
    /// The last committed index openraft told us of (for metrics; not
    /// persisted: the log replays from the applied state on restart).
    committed: prometheus_client::metrics::gauge::Gauge,
}

fn write_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}
fn read_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, truncating a torn tail. A log
    /// damaged before its tail is an error naming the file and offset.
    /// `fsync` off is for tests and benchmarks only.
    pub fn open(dir: &Path, fsync: bool) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(write_err)?;
        let state = read_state(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(read_err)?;
        let purged = state.purged.map(|l| l.index);
        let found = scan(&path, |prev, idx| continues(prev, idx, purged)).map_err(read_err)?;
        let mut valid = found.valid_end;
        let len = file.metadata().map_err(read_err)?.len();
        if len == 0 {
            file.write_all(&file_header()).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
            valid = FILE_HEADER;
        } else if valid < len {
            tracing::warn!(
                fault = "local",
                "raft log {}: truncating a torn tail of {} bytes at offset {valid}",
                path.display(),
                len - valid
            );
            file.set_len(valid).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        let mut data = Data {
            file,
            end: valid.max(FILE_HEADER),
            index: BTreeMap::new(),
            cache: BTreeMap::new(),
            cache_bytes: 0,
            state,
            pending: Vec::new(),
        };
        for f in found.records {
            let log_id = *f.entry.get_log_id();
            if purged.is_some_and(|p| log_id.index <= p) {
                continue;
            }
            data.index.insert(
                log_id.index,
                Place {
                    log_id,
                    offset: f.offset,
                    len: f.len,
                },
            );
            data.cache_put(log_id.index, f.entry, f.len as usize);
        }
        if let (Some(p), Some((&first, _))) = (purged, data.index.iter().next()) {
            if first != p + 1 {
                return Err(read_err(format!(
                    "{}: the log starts at {first} but the purge point is {p}: the log is damaged",
                    path.display()
                )));
            }
        }
        let sync_file = data.file.try_clone().map_err(read_err)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fsync,
            data: Mutex::new(data),
            wake: Condvar::new(),
            sync_lock: Mutex::new(()),
            sync_file: Mutex::new(sync_file),
        });
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flusher(weak))
            .map_err(write_err)?;
        Ok(LogStore {
            shared,
            committed: Default::default(),
        })
    }

    /// Where the committed index is published, for metrics.
    pub fn committed_index(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.committed.clone()
    }

    /// Index of the last entry (or of the purge point).
    pub fn last_index(&self) -> Option<u64> {
        let d = lock(&self.shared.data);
        d.index
            .keys()
            .next_back()
            .copied()
            .or(d.state.purged.map(|l| l.index))
    }

    /// Bytes of log after entry `index` (what a snapshot at `index` would
    /// let go): the snapshot policy's measure.
    pub fn bytes_after(&self, index: u64) -> u64 {
        let d = lock(&self.shared.data);
        match d.index.range(index + 1..).next() {
            Some((_, p)) => d.end - p.offset,
            None => 0,
        }
    }

    fn persist_state(&self, st: &PersistedState) -> Result<(), StorageError> {
        let body = tdfs_proto::codec::encode(st).map_err(write_err)?;
        write_atomic(&self.shared.dir, STATE_FILE, &with_crc(&body)).map_err(write_err)
    }

    /// fsyncs the file and completes every pending callback. Caller holds `sync_lock`.
    fn flush_now(&self) -> Result<(), StorageError> {
        let pending = std::mem::take(&mut lock(&self.shared.data).pending);
        let r = lock(&self.shared.sync_file).sync_data();
        let ok = r.is_ok();
        for cb in pending {
            cb.log_io_completed(match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            });
        }
        if ok {
            Ok(())
        } else {
            Err(write_err("fsync of the raft log failed"))
        }
    }

    /// Reads entry `idx` from the file (not cached).
    fn read_entry(&self, place: Place) -> Result<Entry, StorageError> {
        let mut buf = vec![0u8; place.len as usize];
        lock(&self.shared.sync_file)
            .read_exact_at(&mut buf, place.offset)
            .map_err(read_err)?;
        decode_payload(&buf[RECORD_HEADER..]).map_err(read_err)
    }
}

/// Whether a record for `idx` may follow one for `prev`. Records up to the
/// purge point are dead; after an installed snapshot purged past the end
/// of the log, appends resume right after the purge point, leaving a gap
/// behind dead records.
fn continues(prev: Option<u64>, idx: u64, purged: Option<u64>) -> bool {
    match prev {
        None => true,
        Some(p) => idx == p + 1 || purged.is_some_and(|pg| p <= pg && idx <= pg + 1),
    }
}

fn flusher(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        {
            let d = lock(&shared.data);
            if d.pending.is_empty() {
                let _ = shared.wake.wait_timeout(d, Duration::from_millis(100));
                continue;
            }
        }
        let store = LogStore {
            shared: shared.clone(),
            committed: Default::default(),
        };
        let _g = lock(&shared.sync_lock);
        if let Err(e) = store.flush_now() {
            tracing::error!(fault = "local", "raft log flush failed: {e}");
        }
    }
}

fn with_crc(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn read_state(dir: &Path) -> Result<PersistedState, StorageError> {
    let path = dir.join(STATE_FILE);
    let raw = match std::fs::read(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PersistedState::default()),
        Err(e) => return Err(read_err(e)),
    };
    if raw.len() < 4
        || crc32c::crc32c(&raw[4..]) != u32::from_be_bytes(raw[..4].try_into().expect("4 bytes"))
    {
        return Err(read_err(format!("{} is corrupt", path.display())));
    }
    tdfs_proto::codec::decode(&raw[4..]).map_err(read_err)
}

/// Writes `name` in `dir` atomically and durably: temp file, fsync, rename, fsync dir.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Bytes the record of `entry` takes in the file (tests cut records).
pub fn record_len(entry: &Entry) -> u64 {
    encode_record(entry).map_or(0, |r| r.len() as u64)
}

fn bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    let c = |b: Bound<&u64>| match b {
        Bound::Included(&s) => Bound::Included(s),
        Bound::Excluded(&s) => Bound::Excluded(s),
        Bound::Unbounded => Bound::Unbounded,
    };
    (c(range.start_bound()), c(range.end_bound()))
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let wanted: Vec<(u64, Option<Entry>, Place)> = {
            let d = lock(&self.shared.data);
            d.index
                .range(bounds(&range))
                .map(|(i, p)| (*i, d.cache.get(i).map(|(e, _)| e.clone()), *p))
                .collect()
        };
        wanted
            .into_iter()
            .map(|(_, cached, place)| match cached {
                Some(e) => Ok(e),
                None => self.read_entry(place),
            })
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn save_committed(&mut self, c: Option<LogId>) -> Result<(), StorageError> {
        self.committed.set(c.map_or(0, |l| l.index) as i64);
        Ok(())
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let d = lock(&self.shared.data);
        let last = d
            .index
            .values()
            .next_back()
            .map(|p| p.log_id)
            .or(d.state.purged);
        Ok(LogState {
            last_purged_log_id: d.state.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let st = {
            let mut d = lock(&self.shared.data);
            d.state.vote = Some(*vote);
            d.state.clone()
        };
        self.persist_state(&st)
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(lock(&self.shared.data).state.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut d = lock(&self.shared.data);
        let mut buf = Vec::new();
        let mut placed = Vec::new();
        for e in entries {
            let offset = d.end + buf.len() as u64;
            let rec = encode_record(&e).map_err(write_err)?;
            buf.extend_from_slice(&rec);
            placed.push((offset, rec.len() as u32, e));
        }
        d.file.write_all(&buf).map_err(write_err)?;
        d.end += buf.len() as u64;
        for (offset, len, e) in placed {
            let log_id = *e.get_log_id();
            d.index.insert(
                log_id.index,
                Place {
                    log_id,
                    offset,
                    len,
                },
            );
            d.cache_put(log_id.index, e, len as usize);
        }
        if self.shared.fsync && !crate::bugs::on(crate::bugs::Bug::AckBeforeFsync) {
            d.pending.push(callback);
            self.shared.wake.notify_one();
        } else {
            drop(d);
            callback.log_io_completed(Ok(()));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let _g = lock(&self.shared.sync_lock);
        self.flush_now()?;
        let mut d = lock(&self.shared.data);
        let Some(&place) = d.index.get(&log_id.index) else {
            return Ok(());
        };
        d.index.split_off(&log_id.index);
        d.cache_drop_from(log_id.index);
        d.file.set_len(place.offset).map_err(write_err)?;
        d.file.sync_all().map_err(write_err)?;
        d.end = place.offset;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let _g = lock(&self.shared.sync_lock);
        let st = {
            let mut d = lock(&self.shared.data);
            if d.state.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            d.state.purged = Some(log_id);
            d.state.clone()
        };
        // The purge point is durable before any entry leaves the file.
        self.persist_state(&st)?;
        self.flush_now()?;
        let mut d = lock(&self.shared.data);
        let keep = d.index.split_off(&(log_id.index + 1));
        d.index = keep;
        d.cache_drop_upto(log_id.index);
        let first_live = d.index.values().next().map(|p| p.offset).unwrap_or(d.end);
        if first_live >= COMPACT_BYTES {
            compact(&self.shared, &mut d)?;
        }
        Ok(())
    }
}

/// Rewrites the log file with only the live records (copied as they are).
fn compact(shared: &Shared, d: &mut Data) -> Result<(), StorageError> {
    let mut buf = file_header().to_vec();
    let old = lock(&shared.sync_file).try_clone().map_err(write_err)?;
    let mut moved = Vec::with_capacity(d.index.len());
    for (idx, p) in d.index.iter() {
        let mut rec = vec![0u8; p.len as usize];
        old.read_exact_at(&mut rec, p.offset).map_err(read_err)?;
        moved.push((*idx, buf.len() as u64));
        buf.extend_from_slice(&rec);
    }
    write_atomic(&shared.dir, LOG_FILE, &buf).map_err(write_err)?;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(shared.dir.join(LOG_FILE))
        .map_err(write_err)?;
    *lock(&shared.sync_file) = file.try_clone().map_err(write_err)?;
    d.file = file;
    d.end = buf.len() as u64;
    for (idx, off) in moved {
        if let Some(p) = d.index.get_mut(&idx) {
            p.offset = off;
        }
    }
    tracing::info!("raft log compacted to {} bytes", d.end);
    Ok(())
}

/// The log file of a log directory (tests damage it).
pub fn log_file_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}
