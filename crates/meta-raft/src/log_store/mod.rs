//! The durable Raft log.
//!
//! One append-only file of records (format and recovery in [`format`]),
//! plus a small state file (vote, purged log id) replaced atomically, all
//! through the [`Disk`] seam (tests run it on a crashing or faulty disk).
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
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tdfs_disk::{Disk, DiskFile, FileWriter, Open};

const LOG_FILE: &str = "log.dat";
const STATE_FILE: &str = "state.bin";
/// Rewrite the log file when this many dead bytes precede the first live entry.
const COMPACT_BYTES: u64 = 32 << 20;
/// Decoded entries kept in memory (the most recent ones).
const CACHE_BYTES: usize = 32 << 20;
/// Largest state file read back (a vote and a log id are tiny).
const MAX_STATE: u64 = 1 << 20;

/// Called once the entries of an append are durable (or cannot be).
type Done = Box<dyn FnOnce(std::io::Result<()>) + Send>;

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
    /// The log file, opened for appending.
    file: Arc<dyn DiskFile>,
    /// Bytes in the log file.
    end: u64,
    /// Every live entry.
    index: BTreeMap<u64, Place>,
    /// The most recent entries, decoded, with their encoded sizes.
    cache: BTreeMap<u64, (Entry, usize)>,
    cache_bytes: usize,
    state: PersistedState,
    /// Callbacks of appended entries waiting for the next fsync.
    pending: Vec<Done>,
    /// Why the log stopped taking writes: once a write or an fsync failed,
    /// what the file holds past the last durable point is unknown (Linux
    /// forgets dirty pages a failed fsync could not write), so every later
    /// write is refused and the node must be restarted.
    failed: Option<String>,
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
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    fsync: bool,
    data: Mutex<Data>,
    wake: Condvar,
    /// Held by whoever runs an fsync that completes callbacks, so that
    /// truncation never races a flush in progress.
    sync_lock: Mutex<()>,
    /// The log file again, for fsync and reads outside `data` (replaced
    /// when the file is rewritten).
    sync_file: Mutex<Arc<dyn DiskFile>>,
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
    /// Opens (or creates) the log in `dir` on `disk`, truncating a torn
    /// tail. A log damaged before its tail is an error naming the file and
    /// offset. `fsync` off is for tests and benchmarks only.
    pub fn open(disk: Arc<dyn Disk>, dir: &Path, fsync: bool) -> Result<Self, StorageError> {
        disk.create_dir_all_durable(dir).map_err(write_err)?;
        let state = read_state(disk.as_ref(), dir)?;
        let path = dir.join(LOG_FILE);
        let file: Arc<dyn DiskFile> = disk.open(&path, Open::Append).map_err(read_err)?.into();
        if file.size().map_err(read_err)? == 0 {
            file.append(&file_header()).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
            disk.sync_dir(dir).map_err(write_err)?;
        }
        let purged = state.purged.map(|l| l.index);
        let mut found = scan(disk.as_ref(), &path, |prev, idx| {
            continues(prev, idx, purged)
        })
        .map_err(read_err)?;
        let mut file = file;
        if found.version != tdfs_namespace::FORMAT_VERSION {
            found = format::upgrade(disk.as_ref(), &path, found).map_err(write_err)?;
            file = disk.open(&path, Open::Append).map_err(read_err)?.into();
        }
        let valid = found.valid_end.max(FILE_HEADER);
        let len = file.size().map_err(read_err)?;
        if valid < len {
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
            file: file.clone(),
            end: valid,
            index: BTreeMap::new(),
            cache: BTreeMap::new(),
            cache_bytes: 0,
            state,
            pending: Vec::new(),
            failed: None,
        };
        for f in found.records {
            let log_id = *f.entry.get_log_id();
            if purged.is_some_and(|p| log_id.index <= p) {
                continue;
            }
            let place = Place {
                log_id,
                offset: f.offset,
                len: f.len,
            };
            data.index.insert(log_id.index, place);
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
        let shared = Arc::new(Shared {
            disk,
            dir: dir.to_path_buf(),
            fsync,
            data: Mutex::new(data),
            wake: Condvar::new(),
            sync_lock: Mutex::new(()),
            sync_file: Mutex::new(file),
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
        let path = self.shared.dir.join(STATE_FILE);
        self.shared
            .disk
            .write_atomic(&path, &with_crc(&body))
            .map_err(|e| write_err(format!("{}: {e}", path.display())))
    }

    fn log_path(&self) -> PathBuf {
        self.shared.dir.join(LOG_FILE)
    }

    /// fsyncs the file and completes every pending callback. Caller holds `sync_lock`.
    fn flush_now(&self) -> Result<(), StorageError> {
        let pending = std::mem::take(&mut lock(&self.shared.data).pending);
        let file = lock(&self.shared.sync_file).clone();
        let r = file.sync_data();
        if let Err(e) = &r {
            let why = format!("fsync of {} failed: {e}", self.log_path().display());
            lock(&self.shared.data).failed.get_or_insert(why);
        }
        for cb in pending {
            cb(match &r {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            });
        }
        r.map_err(|e| write_err(format!("fsync of {}: {e}", self.log_path().display())))
    }

    /// Reads entry `idx` from the file (not cached).
    fn read_entry(&self, place: Place) -> Result<Entry, StorageError> {
        let mut buf = vec![0u8; place.len as usize];
        let file = lock(&self.shared.sync_file).clone();
        file.read_exact_at(&mut buf, place.offset)
            .map_err(read_err)?;
        decode_payload(&buf[RECORD_HEADER..]).map_err(read_err)
    }

    /// Appends `entries` and calls `done` once they are durable (at once
    /// when fsync is off). An error means nothing of this call was
    /// appended and `done` is never called: the caller must not
    /// acknowledge them.
    fn append_entries(
        &self,
        entries: impl IntoIterator<Item = Entry>,
        done: Done,
    ) -> Result<(), StorageError> {
        let mut d = lock(&self.shared.data);
        if let Some(why) = &d.failed {
            return Err(write_err(format!(
                "the raft log takes no more writes: {why}"
            )));
        }
        let mut buf = Vec::new();
        let mut placed = Vec::new();
        for e in entries {
            let offset = d.end + buf.len() as u64;
            let rec = encode_record(&e).map_err(write_err)?;
            buf.extend_from_slice(&rec);
            placed.push((offset, rec.len() as u32, e));
        }
        if let Err(e) = d.file.append(&buf) {
            // A short write may have stored part of a record: cut it off
            // (best effort; a torn tail is cut at the next start anyway).
            let _ = d.file.set_len(d.end);
            let why = format!("append to {} failed: {e}", self.log_path().display());
            d.failed = Some(why.clone());
            return Err(write_err(why));
        }
        d.end += buf.len() as u64;
        for (offset, len, e) in placed {
            let log_id = *e.get_log_id();
            let place = Place {
                log_id,
                offset,
                len,
            };
            d.index.insert(log_id.index, place);
            d.cache_put(log_id.index, e, len as usize);
        }
        if self.shared.fsync && !crate::bugs::on(crate::bugs::Bug::AckBeforeFsync) {
            d.pending.push(done);
            self.shared.wake.notify_one();
        } else {
            drop(d);
            done(Ok(()));
        }
        Ok(())
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

fn read_state(disk: &dyn Disk, dir: &Path) -> Result<PersistedState, StorageError> {
    let path = dir.join(STATE_FILE);
    let raw = match disk.read_max(&path, MAX_STATE) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PersistedState::default()),
        Err(e) => return Err(read_err(format!("{}: {e}", path.display()))),
    };
    if raw.len() < 4
        || crc32c::crc32c(&raw[4..]) != u32::from_be_bytes(raw[..4].try_into().expect("4 bytes"))
    {
        return Err(read_err(format!("{} is corrupt", path.display())));
    }
    tdfs_proto::codec::decode(&raw[4..]).map_err(read_err)
}

/// Writes `name` in `dir` of the real disk atomically and durably: temp
/// file, fsync, rename, fsync dir (other crates' small files).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    tdfs_disk::Disk::write_atomic(&tdfs_disk::RealDisk, &dir.join(name), bytes)
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
        self.append_entries(
            entries,
            Box::new(move |r: std::io::Result<()>| callback.log_io_completed(r)),
        )
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
        if let Err(e) = d.file.set_len(place.offset).and_then(|_| d.file.sync_all()) {
            let why = format!("truncating {} failed: {e}", self.log_path().display());
            d.failed.get_or_insert(why.clone());
            return Err(write_err(why));
        }
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

/// Rewrites the log file with only the live records (copied as they are,
/// streamed through a buffer): temporary file, fsync, rename, fsync dir.
fn compact(shared: &Shared, d: &mut Data) -> Result<(), StorageError> {
    let path = shared.dir.join(LOG_FILE);
    let tmp = tdfs_disk::temp_path(&path);
    let old = lock(&shared.sync_file).clone();
    let new = shared.disk.open(&tmp, Open::Truncate).map_err(write_err)?;
    let mut moved = Vec::with_capacity(d.index.len());
    let end = {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, FileWriter::at(new.as_ref(), 0));
        w.write_all(&file_header()).map_err(write_err)?;
        let mut at = FILE_HEADER;
        let mut rec = Vec::new();
        for (idx, p) in d.index.iter() {
            rec.resize(p.len as usize, 0);
            old.read_exact_at(&mut rec, p.offset).map_err(read_err)?;
            w.write_all(&rec).map_err(write_err)?;
            moved.push((*idx, at));
            at += p.len as u64;
        }
        w.flush().map_err(write_err)?;
        at
    };
    new.sync_all().map_err(write_err)?;
    drop(new);
    shared.disk.rename(&tmp, &path).map_err(write_err)?;
    shared.disk.sync_dir(&shared.dir).map_err(write_err)?;
    let file: Arc<dyn DiskFile> = shared
        .disk
        .open(&path, Open::Append)
        .map_err(write_err)?
        .into();
    *lock(&shared.sync_file) = file.clone();
    d.file = file;
    d.end = end;
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

#[cfg(test)]
mod tests;
