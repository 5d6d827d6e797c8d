//! The durable Raft log.
//!
//! One append-only file of records `[len u32][crc32c u32][bincode entry]`,
//! plus a small state file (vote, purged log id) replaced atomically. Appends
//! are written at once and made durable by a flusher thread that fsyncs
//! whatever has accumulated and only then reports the entries flushed: group
//! commit, many entries per fsync, without blocking the Raft core during the
//! fsync. On open, the first record that is incomplete, fails its CRC or does
//! not decode ends the log: the torn tail is truncated, never replayed.

use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, RaftLogId, RaftLogReader, StorageIOError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

const LOG_FILE: &str = "log.dat";
const STATE_FILE: &str = "state.bin";
/// Largest record accepted when reading the log back.
const MAX_RECORD: usize = 64 << 20;
/// Rewrite the log file when this many dead bytes precede the first live entry.
const COMPACT_BYTES: u64 = 32 << 20;

/// Live entries by index, each with its offset in the log file.
type Entries = BTreeMap<u64, (u64, Entry)>;

/// Persisted alongside the log.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct PersistedState {
    vote: Option<Vote>,
    purged: Option<LogId>,
}

struct Data {
    file: File,
    /// Bytes in the log file.
    end: u64,
    /// Live entries with their offset in the file.
    entries: BTreeMap<u64, (u64, Entry)>,
    state: PersistedState,
    /// Callbacks of appended entries waiting for the next fsync.
    pending: Vec<LogFlushed<TypeConfig>>,
}

struct Shared {
    dir: PathBuf,
    fsync: bool,
    data: Mutex<Data>,
    wake: Condvar,
    /// Held by whoever runs an fsync that completes callbacks, so that
    /// truncation never races a flush in progress.
    sync_lock: Mutex<()>,
    /// A second handle on the log file, used for fsync outside `data`.
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

impl LogStore {
    /// Opens (or creates) the log in `dir`, truncating a torn tail.
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
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).map_err(read_err)?;
        let purged_idx = state.purged.map(|l| l.index);
        let (entries, valid) = scan(&raw, purged_idx)?;
        if valid < raw.len() as u64 {
            tracing::warn!(
                "raft log {}: truncating a torn or corrupt tail of {} bytes at offset {valid}",
                path.display(),
                raw.len() as u64 - valid
            );
            file.set_len(valid).map_err(write_err)?;
            file.sync_all().map_err(write_err)?;
        }
        let sync_file = file.try_clone().map_err(read_err)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fsync,
            data: Mutex::new(Data {
                file,
                end: valid,
                entries,
                state,
                pending: Vec::new(),
            }),
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
        let d = self.shared.data.lock().unwrap();
        d.entries
            .keys()
            .next_back()
            .copied()
            .or(d.state.purged.map(|l| l.index))
    }

    fn persist_state(&self, st: &PersistedState) -> Result<(), StorageError> {
        let body = tdfs_proto::codec::encode(st).map_err(write_err)?;
        write_atomic(&self.shared.dir, STATE_FILE, &with_crc(&body)).map_err(write_err)
    }

    /// fsyncs the file and completes every pending callback. Caller holds `sync_lock`.
    fn flush_now(&self) -> Result<(), StorageError> {
        let pending = std::mem::take(&mut self.shared.data.lock().unwrap().pending);
        let r = self.shared.sync_file.lock().unwrap().sync_data();
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
}

/// Parses records; returns the live entries and the length of the valid prefix.
fn scan(raw: &[u8], purged: Option<u64>) -> Result<(Entries, u64), StorageError> {
    let mut entries = BTreeMap::new();
    let mut pos = 0usize;
    let mut prev: Option<u64> = None;
    while pos + 8 <= raw.len() {
        let len = u32::from_be_bytes(raw[pos..pos + 4].try_into().unwrap()) as usize;
        let crc = u32::from_be_bytes(raw[pos + 4..pos + 8].try_into().unwrap());
        if len > MAX_RECORD || pos + 8 + len > raw.len() {
            break;
        }
        let body = &raw[pos + 8..pos + 8 + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let Ok(entry) = tdfs_proto::codec::decode_large::<Entry>(body) else {
            break;
        };
        let idx = entry.get_log_id().index;
        if let Some(p) = prev {
            // Records up to the purge point are dead; after an installed
            // snapshot purged past the end of the log, appends resume right
            // after the purge point, leaving a gap behind dead records.
            let resumes_after_purge = purged.is_some_and(|pg| p <= pg && idx <= pg + 1);
            if idx != p + 1 && !resumes_after_purge {
                // A record that does not continue the log is a torn rewrite.
                break;
            }
        }
        prev = Some(idx);
        if purged.is_none_or(|p| idx > p) {
            entries.insert(idx, (pos as u64, entry));
        }
        pos += 8 + len;
    }
    if let (Some(p), Some((&first, _))) = (purged, entries.iter().next()) {
        if first != p + 1 {
            return Err(read_err(format!(
                "raft log starts at {first} but the purge point is {p}: log is damaged"
            )));
        }
    }
    Ok((entries, pos as u64))
}

fn flusher(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        {
            let d = shared.data.lock().unwrap();
            if d.pending.is_empty() {
                let _ = shared
                    .wake
                    .wait_timeout(d, Duration::from_millis(100))
                    .unwrap();
                continue;
            }
        }
        let store = LogStore {
            shared: shared.clone(),
            committed: Default::default(),
        };
        let _g = shared.sync_lock.lock().unwrap();
        if let Err(e) = store.flush_now() {
            tracing::error!("raft log flush failed: {e}");
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
        || crc32c::crc32c(&raw[4..]) != u32::from_be_bytes(raw[..4].try_into().unwrap())
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

fn encode_record(entry: &Entry) -> Result<Vec<u8>, StorageError> {
    let body = tdfs_proto::codec::encode(entry).map_err(write_err)?;
    let mut rec = Vec::with_capacity(body.len() + 8);
    rec.extend_from_slice(&(body.len() as u32).to_be_bytes());
    rec.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    rec.extend_from_slice(&body);
    Ok(rec)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let d = self.shared.data.lock().unwrap();
        let start = match range.start_bound() {
            Bound::Included(&s) => Bound::Included(s),
            Bound::Excluded(&s) => Bound::Excluded(s),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&s) => Bound::Included(s),
            Bound::Excluded(&s) => Bound::Excluded(s),
            Bound::Unbounded => Bound::Unbounded,
        };
        Ok(d.entries
            .range((start, end))
            .map(|(_, (_, e))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn save_committed(&mut self, c: Option<LogId>) -> Result<(), StorageError> {
        self.committed.set(c.map_or(0, |l| l.index) as i64);
        Ok(())
    }

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let d = self.shared.data.lock().unwrap();
        let last = d
            .entries
            .values()
            .next_back()
            .map(|(_, e)| *e.get_log_id())
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
            let mut d = self.shared.data.lock().unwrap();
            d.state.vote = Some(*vote);
            d.state.clone()
        };
        self.persist_state(&st)
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e.to_string())).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.shared.data.lock().unwrap().state.vote)
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
        let mut d = self.shared.data.lock().unwrap();
        let mut buf = Vec::new();
        let mut placed = Vec::new();
        for e in entries {
            let off = d.end + buf.len() as u64;
            buf.extend_from_slice(&encode_record(&e)?);
            placed.push((off, e));
        }
        d.file.write_all(&buf).map_err(write_err)?;
        d.end += buf.len() as u64;
        for (off, e) in placed {
            d.entries.insert(e.get_log_id().index, (off, e));
        }
        if self.shared.fsync {
            d.pending.push(callback);
            self.shared.wake.notify_one();
        } else {
            drop(d);
            callback.log_io_completed(Ok(()));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let _g = self.shared.sync_lock.lock().unwrap();
        self.flush_now()?;
        let mut d = self.shared.data.lock().unwrap();
        let Some(&(off, _)) = d.entries.get(&log_id.index) else {
            return Ok(());
        };
        d.entries.split_off(&log_id.index);
        d.file.set_len(off).map_err(write_err)?;
        d.file.sync_all().map_err(write_err)?;
        d.end = off;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let _g = self.shared.sync_lock.lock().unwrap();
        let st = {
            let mut d = self.shared.data.lock().unwrap();
            if d.state.purged.is_some_and(|p| p.index >= log_id.index) {
                return Ok(());
            }
            d.state.purged = Some(log_id);
            d.state.clone()
        };
        // The purge point is durable before any entry leaves the file.
        self.persist_state(&st)?;
        self.flush_now()?;
        let mut d = self.shared.data.lock().unwrap();
        let keep = d.entries.split_off(&(log_id.index + 1));
        d.entries = keep;
        let first_live = d.entries.values().next().map(|(o, _)| *o).unwrap_or(d.end);
        if first_live >= COMPACT_BYTES {
            compact(&self.shared, &mut d)?;
        }
        Ok(())
    }
}

/// Rewrites the log file with only the live entries.
fn compact(shared: &Shared, d: &mut Data) -> Result<(), StorageError> {
    let mut buf = Vec::new();
    let mut offsets = Vec::new();
    for (idx, (_, e)) in d.entries.iter() {
        offsets.push((*idx, buf.len() as u64));
        buf.extend_from_slice(&encode_record(e)?);
    }
    write_atomic(&shared.dir, LOG_FILE, &buf).map_err(write_err)?;
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(shared.dir.join(LOG_FILE))
        .map_err(write_err)?;
    *shared.sync_file.lock().unwrap() = file.try_clone().map_err(write_err)?;
    d.file = file;
    d.end = buf.len() as u64;
    for (idx, off) in offsets {
        if let Some(slot) = d.entries.get_mut(&idx) {
            slot.0 = off;
        }
    }
    tracing::info!("raft log compacted to {} bytes", d.end);
    Ok(())
}

/// Opens the log and appends garbage or cuts bytes: used by tests to fake a
/// crash in the middle of a write.
pub fn log_file_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}
