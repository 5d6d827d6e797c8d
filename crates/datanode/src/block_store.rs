//! A durable store of block replicas in one local data directory.
//!
//! ```text
//! DIR/LOCK                       held (flock) for the life of the process
//! DIR/datanode.id                this node's stable id (16 hex characters)
//! DIR/rbw/blk_ID_GEN_TOKEN.data  replicas being written (removed on open)
//! DIR/rbw/blk_ID_GEN_TOKEN.meta
//! DIR/current/blk_ID_GEN.data    finalized replicas
//! DIR/current/blk_ID_GEN.meta
//! ```
//!
//! A replica is received into `rbw/`. Publishing it fsyncs its data and meta
//! files, renames the data file into `current/`, fsyncs the directory,
//! renames the meta file (the commit point) and fsyncs the directory again.
//! On open, a data file without a valid meta file, a meta file that fails its
//! checksum or does not match its data file, and everything under `rbw/` are
//! deleted: a crash at any point leaves either no replica or a complete one.
//! When several generations of one block are present, the highest wins.
//!
//! The meta file (little-endian):
//!
//! ```text
//! magic "TDFSBLK1" | id u64 | gen u64 | len u64 | sha256 [32] | chunk u32 | n u32 | crc32c u32 * n | crc32c(all before) u32
//! ```
//!
//! Every method does blocking file I/O: from async code call them through
//! `spawn_blocking` (or a dedicated thread).

use prometheus_client::metrics::counter::Counter;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tdfs_proto::meta::{DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId, FsError};
use tdfs_transfer::{Finish, CHUNK};

const LOCK_FILE: &str = "LOCK";
const ID_FILE: &str = "datanode.id";
const CURRENT: &str = "current";
const RBW: &str = "rbw";
const META_MAGIC: &[u8; 8] = b"TDFSBLK1";
/// Fixed part of a meta file before the chunk CRCs.
const META_HEADER: usize = 8 + 8 + 8 + 8 + 32 + 4 + 4;
/// Meta files larger than this are rejected unread (a 256 GiB block).
const MAX_META: u64 = (META_HEADER as u64) + 4 * (1 << 22) + 4;
/// Writeback of a replica being received is started every this many bytes.
const SYNC_BEHIND: u64 = 8 << 20;

/// Asks the kernel to start writing `[start, start+len)` of `f` back to
/// disk without waiting for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`).
/// Best effort: durability still comes from the fsync at publish time.
fn start_writeback(f: &File, start: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: the fd is open for the duration of the call; the call only
    // schedules I/O and reads no memory of ours.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            start as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Bytes read per system call when verifying a replica.
const VERIFY_BATCH: usize = 16 * CHUNK;

/// Where and how a [`BlockStore`] keeps its replicas.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub dir: PathBuf,
    /// Bytes this store may hold. `None`: what it holds plus the disk's
    /// free space.
    pub capacity: Option<u64>,
    /// fsync data, meta and directories when publishing (default true).
    pub fsync: bool,
}

impl StoreConfig {
    /// A store in `dir`, sized by the disk, with fsync on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            capacity: None,
            fsync: true,
        }
    }
}

/// The life cycle of a replica on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Being written into `rbw/`; invisible to readers and the checker.
    Receiving,
    /// Published and readable.
    Finalized,
    /// Being removed; no longer readable.
    Deleting,
    /// Finalized and being re-read by the integrity checker.
    Checking,
}

#[derive(Clone, Debug)]
struct Replica {
    gen: u64,
    len: u64,
    sha256: [u8; 32],
    deleting: bool,
    /// Verifications in progress.
    checking: u32,
}

impl Replica {
    fn state(&self) -> BlockState {
        if self.deleting {
            BlockState::Deleting
        } else if self.checking > 0 {
            BlockState::Checking
        } else {
            BlockState::Finalized
        }
    }

    fn report(&self, id: BlockId) -> ReplicaReport {
        ReplicaReport {
            id,
            gen: self.gen,
            len: self.len,
            sha256: self.sha256,
        }
    }
}

struct Receiving {
    id: BlockId,
    reserved: u64,
}

#[derive(Default)]
struct Inner {
    replicas: HashMap<BlockId, Replica>,
    /// Writers in progress, by token.
    receiving: HashMap<u64, Receiving>,
    /// Bytes of finalized replicas.
    used: u64,
    /// Bytes reserved by writers in progress.
    pending: u64,
    /// Bytes already written by writers in progress (they are on disk, so
    /// the disk's free space no longer counts them).
    rbw_written: u64,
}

/// A durable local block store; share it as `Arc<BlockStore>`.
pub struct BlockStore {
    cfg: StoreConfig,
    node: DatanodeId,
    current: PathBuf,
    rbw: PathBuf,
    inner: Mutex<Inner>,
    /// Serializes publishing and deleting (renames and unlinks).
    publish: Mutex<()>,
    next_token: AtomicU64,
    /// Held for the life of the store: the flock on `LOCK`.
    _lock: File,
    /// Counters for `/metrics`.
    pub stats: Arc<StoreStats>,
}

/// What the store has done since it opened, for `/metrics`.
/// The counters are Prometheus counters, registered as they are by
/// [`crate::metrics::DatanodeMetrics`].
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Bytes received into replicas.
    pub bytes_written: Counter,
    /// Bytes read out of replicas for callers (not by verification).
    pub bytes_read: Counter,
    /// Replicas finalized.
    pub blocks_finalized: Counter,
    /// Replicas found corrupt: by verification, or a digest that did not
    /// match on finalize.
    pub verify_failures: Counter,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("dir", &self.cfg.dir)
            .field("node", &self.node)
            .finish()
    }
}

fn io_at(what: &str, path: &Path, e: io::Error) -> FsError {
    FsError::Io(format!("{what} {}: {e}", path.display()))
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

fn lock_poisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_at("cannot fsync directory", dir, e))
}

#[allow(clippy::unnecessary_cast)]
fn disk_available(dir: &Path) -> io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs is plain old data; zeroed is a valid value and the
    // call fills it in. `c` is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64)
}

/// A parsed, checksum-verified meta file.
#[derive(Debug)]
struct Meta {
    id: BlockId,
    gen: u64,
    len: u64,
    sha256: [u8; 32],
    crcs: Vec<u32>,
}

fn encode_meta(r: &ReplicaReport, crcs: &[u32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(META_HEADER + 4 * crcs.len() + 4);
    b.extend_from_slice(META_MAGIC);
    b.extend_from_slice(&r.id.to_le_bytes());
    b.extend_from_slice(&r.gen.to_le_bytes());
    b.extend_from_slice(&r.len.to_le_bytes());
    b.extend_from_slice(&r.sha256);
    b.extend_from_slice(&(CHUNK as u32).to_le_bytes());
    b.extend_from_slice(&(crcs.len() as u32).to_le_bytes());
    for c in crcs {
        b.extend_from_slice(&c.to_le_bytes());
    }
    let sum = crc32c::crc32c(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Parses a meta file; every length is checked before it is used.
fn decode_meta(b: &[u8]) -> Result<Meta, String> {
    if b.len() < META_HEADER + 4 {
        return Err(format!("meta file of {} bytes is too short", b.len()));
    }
    if &b[..8] != META_MAGIC {
        return Err("bad magic".into());
    }
    let body = b.len() - 4;
    let stored = le_u32(b, body);
    if crc32c::crc32c(&b[..body]) != stored {
        return Err("meta checksum mismatch (torn or corrupt meta file)".into());
    }
    let id = le_u64(b, 8);
    let gen = le_u64(b, 16);
    let len = le_u64(b, 24);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&b[32..64]);
    let chunk = le_u32(b, 64) as usize;
    let n = le_u32(b, 68) as usize;
    if chunk != CHUNK {
        return Err(format!("chunk size {chunk}, expected {CHUNK}"));
    }
    if n as u64 != chunk_count(len) {
        return Err(format!("{n} chunk checksums for a length of {len}"));
    }
    if body != META_HEADER + 4 * n {
        return Err(format!("meta file of {} bytes for {n} chunks", b.len()));
    }
    let crcs = b[META_HEADER..body]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Meta {
        id,
        gen,
        len,
        sha256,
        crcs,
    })
}

/// Parses the bytes of a meta file as a load does and returns its block id,
/// generation, length and number of chunk CRCs (an entry point for the
/// fuzz targets in `fuzz/`).
#[doc(hidden)]
pub fn decode_meta_for_fuzzing(b: &[u8]) -> Result<(BlockId, u64, u64, usize), String> {
    decode_meta(b).map(|m| (m.id, m.gen, m.len, m.crcs.len()))
}

fn read_meta(path: &Path) -> Result<Meta, String> {
    let mut f = File::open(path).map_err(|e| e.to_string())?;
    let size = f.metadata().map_err(|e| e.to_string())?.len();
    if size > MAX_META {
        return Err(format!("meta file of {size} bytes is too large"));
    }
    let mut b = Vec::with_capacity(size as usize);
    f.read_to_end(&mut b).map_err(|e| e.to_string())?;
    decode_meta(&b)
}

/// Parses `blk_ID_GEN.data` / `blk_ID_GEN.meta`.
fn parse_name(name: &str) -> Option<(BlockId, u64, bool)> {
    let (stem, is_meta) = if let Some(s) = name.strip_suffix(".meta") {
        (s, true)
    } else {
        (name.strip_suffix(".data")?, false)
    };
    let rest = stem.strip_prefix("blk_")?;
    let (id, gen) = rest.split_once('_')?;
    Some((id.parse().ok()?, gen.parse().ok()?, is_meta))
}

fn replica_paths(current: &Path, id: BlockId, gen: u64) -> (PathBuf, PathBuf) {
    (
        current.join(format!("blk_{id}_{gen}.data")),
        current.join(format!("blk_{id}_{gen}.meta")),
    )
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

fn load_or_create_id(dir: &Path) -> Result<DatanodeId, FsError> {
    let path = dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(FsError::Io(format!(
                    "{} does not hold a valid datanode id ({:?}); remove it to get a new id",
                    path.display(),
                    s.chars().take(80).collect::<String>()
                )));
            }
            Ok(DatanodeId(id.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes: [u8; 8] = rand::random();
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let tmp = dir.join(format!("{ID_FILE}.tmp"));
            let write = || -> io::Result<()> {
                let mut f = File::create(&tmp)?;
                f.write_all(format!("{id}\n").as_bytes())?;
                f.sync_all()?;
                fs::rename(&tmp, &path)
            };
            write().map_err(|e| io_at("cannot write", &path, e))?;
            sync_dir(dir)?;
            Ok(DatanodeId(id))
        }
        Err(e) => Err(io_at("cannot read", &path, e)),
    }
}

impl BlockStore {
    /// Opens (creating if needed) the data directory, locks it, and loads the
    /// finalized replicas, deleting leftovers of a crash.
    pub fn open(cfg: StoreConfig) -> Result<Arc<BlockStore>, FsError> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| io_at("cannot create data directory", &dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_at("cannot open lock file", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let holder = fs::read_to_string(&lock_path).unwrap_or_default();
                return Err(FsError::Io(format!(
                    "data directory {} is already in use by another datanode (lock {} held{})",
                    dir.display(),
                    lock_path.display(),
                    match holder.trim() {
                        "" => String::new(),
                        pid => format!(" by pid {pid}"),
                    }
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(io_at("cannot lock", &lock_path, e));
            }
        }
        // Record the holder for the error message of a second process.
        let _ = lock.set_len(0);
        let _ = lock.write_all(format!("{}\n", std::process::id()).as_bytes());

        let node = load_or_create_id(&dir)?;
        let current = dir.join(CURRENT);
        let rbw = dir.join(RBW);
        for d in [&current, &rbw] {
            fs::create_dir_all(d).map_err(|e| io_at("cannot create", d, e))?;
        }

        // Replicas that were being received when the process died.
        let mut removed = 0usize;
        for entry in fs::read_dir(&rbw).map_err(|e| io_at("cannot list", &rbw, e))? {
            let entry = entry.map_err(|e| io_at("cannot list", &rbw, e))?;
            let p = entry.path();
            let r = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| io_at("cannot remove partial replica", &p, e))?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(
                "removed {removed} partial replica file(s) from {}",
                rbw.display()
            );
            if cfg.fsync {
                sync_dir(&rbw)?;
            }
        }

        let (replicas, deleted) = Self::load_current(&current)?;
        if deleted > 0 && cfg.fsync {
            sync_dir(&current)?;
        }
        let used = replicas.values().map(|r| r.len).sum();
        tracing::info!(
            "block store {} (datanode {node}): {} replicas, {used} bytes",
            dir.display(),
            replicas.len()
        );
        Ok(Arc::new(BlockStore {
            cfg,
            node,
            current,
            rbw,
            inner: Mutex::new(Inner {
                replicas,
                used,
                ..Inner::default()
            }),
            publish: Mutex::new(()),
            next_token: AtomicU64::new(1),
            stats: Arc::default(),
            _lock: lock,
        }))
    }

    /// Scans `current/`: returns the valid replicas (highest generation per
    /// block) and how many files were deleted.
    fn load_current(current: &Path) -> Result<(HashMap<BlockId, Replica>, usize), FsError> {
        let mut metas: Vec<(BlockId, u64, PathBuf)> = Vec::new();
        let mut datas: HashMap<(BlockId, u64), PathBuf> = HashMap::new();
        let mut deleted = 0usize;
        for entry in fs::read_dir(current).map_err(|e| io_at("cannot list", current, e))? {
            let entry = entry.map_err(|e| io_at("cannot list", current, e))?;
            let path = entry.path();
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                tracing::warn!("ignoring unexpected file {}", path.display());
                continue;
            };
            match parse_name(name) {
                Some((id, gen, true)) => metas.push((id, gen, path)),
                Some((id, gen, false)) => {
                    datas.insert((id, gen), path);
                }
                None => tracing::warn!("ignoring unexpected file {}", path.display()),
            }
        }
        let mut found: HashMap<BlockId, Replica> = HashMap::new();
        let mut superseded: Vec<(BlockId, u64)> = Vec::new();
        for (id, gen, meta_path) in metas {
            let data_path = datas.remove(&(id, gen));
            let valid = match (read_meta(&meta_path), &data_path) {
                (Err(e), _) => Err(e),
                (Ok(_), None) => Err("its data file is missing".to_string()),
                (Ok(m), Some(dp)) => {
                    let dlen = fs::metadata(dp).map(|md| md.len()).unwrap_or(u64::MAX);
                    if m.id != id || m.gen != gen {
                        Err(format!("it describes block {} gen {}", m.id, m.gen))
                    } else if dlen != m.len {
                        Err(format!("data file is {dlen} bytes, meta says {}", m.len))
                    } else {
                        Ok(m)
                    }
                }
            };
            match valid {
                Ok(m) => {
                    let rep = Replica {
                        gen,
                        len: m.len,
                        sha256: m.sha256,
                        deleting: false,
                        checking: 0,
                    };
                    match found.get(&id) {
                        Some(old) if old.gen > gen => superseded.push((id, gen)),
                        Some(old) => {
                            superseded.push((id, old.gen));
                            found.insert(id, rep);
                        }
                        None => {
                            found.insert(id, rep);
                        }
                    }
                }
                Err(why) => {
                    tracing::warn!(
                        "deleting replica {id} gen {gen}: invalid meta {}: {why}",
                        meta_path.display()
                    );
                    remove_quietly(&meta_path);
                    if let Some(dp) = data_path {
                        remove_quietly(&dp);
                    }
                    deleted += 1;
                }
            }
        }
        for ((id, gen), path) in datas {
            tracing::warn!(
                "deleting replica {id} gen {gen}: data file {} has no meta file",
                path.display()
            );
            remove_quietly(&path);
            deleted += 1;
        }
        for (id, gen) in superseded {
            tracing::info!("deleting replica {id} gen {gen}: a newer generation exists");
            let (d, m) = replica_paths(current, id, gen);
            remove_quietly(&m);
            remove_quietly(&d);
            deleted += 1;
        }
        Ok((found, deleted))
    }

    /// This node's stable id (kept in `DIR/datanode.id`).
    pub fn datanode_id(&self) -> &DatanodeId {
        &self.node
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn capacity_locked(&self, inner: &Inner) -> u64 {
        match self.cfg.capacity {
            Some(c) => c,
            None => {
                let free = disk_available(&self.cfg.dir).unwrap_or(0);
                inner
                    .used
                    .saturating_add(inner.rbw_written)
                    .saturating_add(free)
            }
        }
    }

    fn usage_locked(&self, inner: &Inner) -> DatanodeUsage {
        DatanodeUsage {
            capacity: self.capacity_locked(inner),
            used: inner.used,
            pending: inner.pending,
            blocks: inner.replicas.values().filter(|r| !r.deleting).count() as u64,
        }
    }

    /// Capacity, bytes held, bytes reserved by writes in progress, replicas.
    pub fn usage(&self) -> DatanodeUsage {
        self.usage_locked(&lock_poisoned(&self.inner))
    }

    fn no_space(&self, block: BlockId, needed: u64, u: &DatanodeUsage) -> FsError {
        let avail = u.capacity.saturating_sub(u.used).saturating_sub(u.pending);
        FsError::NoSpace(format!(
            "datanode {} cannot take block {block}: {needed} bytes needed, {avail} available \
             (capacity {}, used {}, reserved {})",
            self.node, u.capacity, u.used, u.pending
        ))
    }

    /// Starts receiving replica `id`/`gen`, reserving `expected_len` bytes.
    /// Fails with `NoSpace` when they are not available, and when a newer
    /// generation of the block is already stored.
    pub fn begin_write(
        self: &Arc<Self>,
        id: BlockId,
        gen: u64,
        expected_len: u64,
    ) -> Result<ReplicaWriter, FsError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        {
            let mut inner = lock_poisoned(&self.inner);
            if let Some(r) = inner.replicas.get(&id) {
                if r.gen > gen && !r.deleting {
                    return Err(FsError::InvalidArgument(format!(
                        "datanode {} holds block {id} at gen {}, newer than gen {gen}",
                        self.node, r.gen
                    )));
                }
            }
            let u = self.usage_locked(&inner);
            if u.capacity.saturating_sub(u.used).saturating_sub(u.pending) < expected_len {
                return Err(self.no_space(id, expected_len, &u));
            }
            inner.pending += expected_len;
            inner.receiving.insert(
                token,
                Receiving {
                    id,
                    reserved: expected_len,
                },
            );
        }
        let data_path = self.rbw.join(format!("blk_{id}_{gen}_{token}.data"));
        let meta_path = self.rbw.join(format!("blk_{id}_{gen}_{token}.meta"));
        let mut w = ReplicaWriter {
            store: self.clone(),
            token,
            id,
            gen,
            data: None,
            data_path,
            meta_path,
            crcs: Vec::new(),
            sha: Sha256::new(),
            len: 0,
            reserved: expected_len,
            short_seen: false,
            released: false,
        };
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&w.data_path)
            .map_err(|e| self.write_error("cannot create", &w.data_path, e))?;
        w.data = Some(f);
        Ok(w)
    }

    fn write_error(&self, what: &str, path: &Path, e: io::Error) -> FsError {
        if is_no_space(&e) {
            FsError::NoSpace(format!(
                "datanode {}: disk full: {what} {}: {e}",
                self.node,
                path.display()
            ))
        } else {
            io_at(what, path, e)
        }
    }

    /// Grows a writer's reservation by `extra` bytes.
    fn reserve_more(&self, token: u64, block: BlockId, extra: u64) -> Result<(), FsError> {
        let mut inner = lock_poisoned(&self.inner);
        let u = self.usage_locked(&inner);
        if u.capacity.saturating_sub(u.used).saturating_sub(u.pending) < extra {
            return Err(self.no_space(block, extra, &u));
        }
        inner.pending += extra;
        if let Some(r) = inner.receiving.get_mut(&token) {
            r.reserved += extra;
        }
        Ok(())
    }

    /// Moves a completed writer's files into `current/` (see the module doc
    /// for the order) and records the replica.
    fn publish(&self, w: &mut ReplicaWriter, report: &ReplicaReport) -> Result<(), FsError> {
        let _p = lock_poisoned(&self.publish);
        let old = {
            let inner = lock_poisoned(&self.inner);
            inner.replicas.get(&w.id).cloned()
        };
        if let Some(old) = &old {
            if old.gen > w.gen || (old.gen == w.gen && !old.deleting) {
                if old.gen == w.gen && old.len == report.len && old.sha256 == report.sha256 {
                    // The same replica again: keep the stored one.
                    return Ok(());
                }
                return Err(FsError::InvalidArgument(format!(
                    "datanode {} already holds block {} at gen {} (received gen {})",
                    self.node, w.id, old.gen, w.gen
                )));
            }
        }
        let (data_dst, meta_dst) = replica_paths(&self.current, w.id, w.gen);
        fs::rename(&w.data_path, &data_dst).map_err(|e| io_at("cannot publish", &data_dst, e))?;
        if self.cfg.fsync {
            if let Err(e) = sync_dir(&self.current) {
                remove_quietly(&data_dst);
                return Err(e);
            }
        }
        if let Err(e) = fs::rename(&w.meta_path, &meta_dst) {
            remove_quietly(&data_dst);
            return Err(io_at("cannot publish", &meta_dst, e));
        }
        if self.cfg.fsync {
            sync_dir(&self.current)?;
        }
        {
            let mut inner = lock_poisoned(&self.inner);
            if let Some(r) = inner.receiving.remove(&w.token) {
                inner.pending -= r.reserved;
            }
            inner.rbw_written -= w.len;
            if let Some(prev) = inner.replicas.insert(
                w.id,
                Replica {
                    gen: w.gen,
                    len: report.len,
                    sha256: report.sha256,
                    deleting: false,
                    checking: 0,
                },
            ) {
                inner.used -= prev.len;
            }
            inner.used += report.len;
            w.released = true;
        }
        if let Some(old) = old {
            // The new generation is committed; the old one can go.
            let (d, m) = replica_paths(&self.current, w.id, old.gen);
            remove_quietly(&m);
            remove_quietly(&d);
        }
        Ok(())
    }

    fn release(&self, token: u64, written: u64) {
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.receiving.remove(&token) {
            inner.pending -= r.reserved;
        }
        inner.rbw_written -= written;
    }

    /// Every finalized replica (those being deleted excluded).
    pub fn replicas(&self) -> Vec<ReplicaReport> {
        let inner = lock_poisoned(&self.inner);
        let mut v: Vec<ReplicaReport> = inner
            .replicas
            .iter()
            .filter(|(_, r)| !r.deleting)
            .map(|(id, r)| r.report(*id))
            .collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// The finalized replica of block `id`, if any.
    pub fn get(&self, id: BlockId) -> Option<ReplicaReport> {
        let inner = lock_poisoned(&self.inner);
        inner
            .replicas
            .get(&id)
            .filter(|r| !r.deleting)
            .map(|r| r.report(id))
    }

    /// The state of block `id` on this node: its finalized replica's state,
    /// else `Receiving` when a write is in progress.
    pub fn state(&self, id: BlockId) -> Option<BlockState> {
        let inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.replicas.get(&id) {
            return Some(r.state());
        }
        inner
            .receiving
            .values()
            .any(|r| r.id == id)
            .then_some(BlockState::Receiving)
    }

    /// Deletes the finalized replica of block `id`; false if there was none.
    pub fn delete(&self, id: BlockId) -> Result<bool, FsError> {
        let _p = lock_poisoned(&self.publish);
        let gen = {
            let mut inner = lock_poisoned(&self.inner);
            match inner.replicas.get_mut(&id) {
                Some(r) if !r.deleting => {
                    r.deleting = true;
                    r.gen
                }
                _ => return Ok(false),
            }
        };
        let (d, m) = replica_paths(&self.current, id, gen);
        // The meta file first: a data file without it is garbage on load.
        let result = [&m, &d]
            .into_iter()
            .try_for_each(|p| match fs::remove_file(p) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_at("cannot delete", p, e)),
                _ => Ok(()),
            });
        if let Err(e) = result {
            let mut inner = lock_poisoned(&self.inner);
            if let Some(r) = inner.replicas.get_mut(&id) {
                r.deleting = false;
            }
            return Err(e);
        }
        if self.cfg.fsync {
            sync_dir(&self.current)?;
        }
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.replicas.remove(&id) {
            inner.used -= r.len;
        }
        Ok(true)
    }

    /// Opens finalized replica `id` at generation `gen` for reading.
    pub fn open_read(&self, id: BlockId, gen: u64) -> Result<ReplicaReader, FsError> {
        {
            let inner = lock_poisoned(&self.inner);
            match inner.replicas.get(&id) {
                Some(r) if !r.deleting && r.gen == gen => {}
                _ => return Err(FsError::BlockNotFound(id)),
            }
        }
        let (dp, mp) = replica_paths(&self.current, id, gen);
        let data = match File::open(&dp) {
            Ok(f) => f,
            // Deleted or replaced since the look-up.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FsError::BlockNotFound(id))
            }
            Err(e) => return Err(io_at("cannot open", &dp, e)),
        };
        let meta = match read_meta(&mp) {
            Ok(m) if m.id == id && m.gen == gen => m,
            Ok(m) => {
                return Err(FsError::ChecksumMismatch {
                    block: id,
                    detail: format!("meta file describes block {} gen {}", m.id, m.gen),
                })
            }
            Err(e) if !mp.exists() => {
                tracing::debug!("replica {id} vanished while opening: {e}");
                return Err(FsError::BlockNotFound(id));
            }
            Err(e) => {
                return Err(FsError::ChecksumMismatch {
                    block: id,
                    detail: format!("meta file {}: {e}", mp.display()),
                })
            }
        };
        Ok(ReplicaReader {
            id,
            gen,
            len: meta.len,
            sha256: meta.sha256,
            crcs: meta.crcs,
            data,
            stats: Some(self.stats.clone()),
        })
    }

    /// Re-reads finalized replica `id` and checks its SHA-256 and every chunk
    /// CRC against its meta file. `Ok(false)`: the replica is corrupt.
    /// `BlockNotFound` if it is missing or was replaced meanwhile.
    pub fn verify(&self, id: BlockId) -> Result<bool, FsError> {
        let gen = {
            let mut inner = lock_poisoned(&self.inner);
            match inner.replicas.get_mut(&id) {
                Some(r) if !r.deleting => {
                    r.checking += 1;
                    r.gen
                }
                _ => return Err(FsError::BlockNotFound(id)),
            }
        };
        let result = self.verify_gen(id, gen);
        if matches!(result, Ok(false)) {
            self.stats.verify_failures.inc();
        }
        let mut inner = lock_poisoned(&self.inner);
        match inner.replicas.get_mut(&id) {
            Some(r) if r.gen == gen => {
                r.checking = r.checking.saturating_sub(1);
                if r.deleting {
                    Err(FsError::BlockNotFound(id))
                } else {
                    result
                }
            }
            _ => Err(FsError::BlockNotFound(id)),
        }
    }

    fn verify_gen(&self, id: BlockId, gen: u64) -> Result<bool, FsError> {
        let reader = match self.open_read(id, gen) {
            // Verification reads are not counted as reads served.
            Ok(r) => ReplicaReader { stats: None, ..r },
            Err(FsError::ChecksumMismatch { detail, .. }) => {
                tracing::warn!("replica {id}: {detail}");
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let file_len = reader
            .data
            .metadata()
            .map_err(|e| FsError::Io(format!("replica {id}: {e}")))?
            .len();
        if file_len != reader.len {
            tracing::warn!(
                "replica {id}: data file is {file_len} bytes, meta says {}",
                reader.len
            );
            return Ok(false);
        }
        let mut buf = vec![0u8; VERIFY_BATCH];
        let mut sha = Sha256::new();
        let per_batch = (VERIFY_BATCH / CHUNK) as u64;
        let mut chunk = 0u64;
        while chunk < reader.chunks() {
            let n = per_batch.min(reader.chunks() - chunk);
            let got = match reader.read_chunks(chunk, n, &mut buf) {
                Ok(got) => got,
                Err(FsError::ChecksumMismatch { detail, .. }) => {
                    tracing::warn!("replica {id}: {detail}");
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
            for (i, piece) in buf[..got].chunks(CHUNK).enumerate() {
                let want = reader.crcs[(chunk as usize) + i];
                if crc32c::crc32c(piece) != want {
                    tracing::warn!("replica {id}: chunk {} fails its CRC", chunk as usize + i);
                    return Ok(false);
                }
            }
            sha.update(&buf[..got]);
            chunk += n;
        }
        let digest: [u8; 32] = sha.finalize().into();
        if digest != reader.sha256 {
            tracing::warn!("replica {id}: SHA-256 differs from the recorded one");
            return Ok(false);
        }
        Ok(true)
    }
}

/// Receives one replica into `rbw/`. Dropping it unfinished removes its
/// files and releases its reservation.
pub struct ReplicaWriter {
    store: Arc<BlockStore>,
    token: u64,
    id: BlockId,
    gen: u64,
    data: Option<File>,
    data_path: PathBuf,
    meta_path: PathBuf,
    crcs: Vec<u32>,
    sha: Sha256,
    len: u64,
    reserved: u64,
    short_seen: bool,
    released: bool,
}

impl std::fmt::Debug for ReplicaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaWriter")
            .field("id", &self.id)
            .field("gen", &self.gen)
            .field("len", &self.len)
            .finish()
    }
}

impl ReplicaWriter {
    pub fn block(&self) -> BlockId {
        self.id
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one chunk: 1..=CHUNK bytes, only the last chunk may be short,
    /// and `crc` must be its CRC32C.
    pub fn write_chunk(&mut self, data: &[u8], crc: u32) -> Result<(), FsError> {
        if data.is_empty() || data.len() > CHUNK {
            return Err(FsError::InvalidArgument(format!(
                "chunk of {} bytes (1..={CHUNK} allowed)",
                data.len()
            )));
        }
        if self.short_seen {
            return Err(FsError::InvalidArgument(format!(
                "block {}: a chunk follows a short chunk",
                self.id
            )));
        }
        let actual = crc32c::crc32c(data);
        if actual != crc {
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!(
                    "chunk {} (offset {}): crc32c {actual:08x}, packet says {crc:08x}",
                    self.crcs.len(),
                    self.len
                ),
            });
        }
        let n = data.len() as u64;
        if self.len + n > self.reserved {
            let extra = (self.len + n - self.reserved).max(CHUNK as u64);
            self.store.reserve_more(self.token, self.id, extra)?;
            self.reserved += extra;
        }
        let Some(f) = self.data.as_mut() else {
            return Err(FsError::Internal("replica writer already failed".into()));
        };
        if let Err(e) = f.write_all(data) {
            return Err(self.store.write_error("cannot write", &self.data_path, e));
        }
        self.sha.update(data);
        self.crcs.push(crc);
        let before = self.len;
        self.len += n;
        // Write-behind: start writeback of every full 8 MiB as it is written,
        // so the fsync at the end finds little left to flush and the disk
        // works while the rest of the block streams in.
        if self.store.cfg.fsync && before / SYNC_BEHIND != self.len / SYNC_BEHIND {
            let start = (self.len / SYNC_BEHIND - 1) * SYNC_BEHIND;
            start_writeback(f, start, SYNC_BEHIND);
        }
        lock_poisoned(&self.store.inner).rbw_written += n;
        self.store.stats.bytes_written.inc_by(n);
        self.short_seen = data.len() < CHUNK;
        Ok(())
    }

    /// Checks `fin` against what was received and publishes the replica.
    /// On a length or digest mismatch nothing is published.
    pub fn finish(mut self, fin: Finish) -> Result<ReplicaReport, FsError> {
        let sha: [u8; 32] = std::mem::take(&mut self.sha).finalize().into();
        if fin.len != self.len {
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!("received {} bytes, the writer says {}", self.len, fin.len),
            });
        }
        if fin.sha256 != sha {
            self.store.stats.verify_failures.inc();
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: "SHA-256 of the received bytes differs from the writer's".into(),
            });
        }
        let report = ReplicaReport {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: sha,
        };
        let store = self.store.clone();
        let Some(data) = self.data.take() else {
            return Err(FsError::Internal("replica writer already failed".into()));
        };
        if store.cfg.fsync {
            data.sync_data()
                .map_err(|e| store.write_error("cannot fsync", &self.data_path, e))?;
        }
        drop(data);
        let meta = encode_meta(&report, &self.crcs);
        let write_meta = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&self.meta_path)?;
            f.write_all(&meta)?;
            if store.cfg.fsync {
                f.sync_all()?;
            }
            Ok(())
        };
        write_meta().map_err(|e| store.write_error("cannot write", &self.meta_path, e))?;
        store.publish(&mut self, &report)?;
        store.stats.blocks_finalized.inc();
        Ok(report)
    }
}

impl Drop for ReplicaWriter {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.data = None;
        remove_quietly(&self.data_path);
        remove_quietly(&self.meta_path);
        self.store.release(self.token, self.len);
        self.released = true;
    }
}

/// Reads a finalized replica chunk by chunk, with each chunk's stored CRC.
/// Reads are positional (`pread`), so one reader can be shared.
#[derive(Debug)]
pub struct ReplicaReader {
    id: BlockId,
    gen: u64,
    len: u64,
    sha256: [u8; 32],
    crcs: Vec<u32>,
    data: File,
    /// Where bytes read are counted (`None` for verification).
    stats: Option<Arc<StoreStats>>,
}

impl ReplicaReader {
    pub fn block(&self) -> BlockId {
        self.id
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// The replica's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn report(&self) -> ReplicaReport {
        ReplicaReport {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: self.sha256,
        }
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u64 {
        self.crcs.len() as u64
    }

    /// Length of chunk `i` (0 past the end).
    pub fn chunk_len(&self, i: u64) -> usize {
        let start = i.saturating_mul(CHUNK as u64);
        self.len.saturating_sub(start).min(CHUNK as u64) as usize
    }

    /// The CRC32C recorded for chunk `i` when it was written.
    pub fn chunk_crc(&self, i: u64) -> Option<u32> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.crcs.get(i).copied())
    }

    /// Reads chunk `i` into `buf` (at least `chunk_len(i)` bytes); returns
    /// its length and stored CRC. The data is not checked here.
    pub fn read_chunk(&self, i: u64, buf: &mut [u8]) -> Result<(usize, u32), FsError> {
        let crc = self.chunk_crc(i).ok_or_else(|| {
            FsError::InvalidArgument(format!("block {} has no chunk {i}", self.id))
        })?;
        let n = self.chunk_len(i);
        if buf.len() < n {
            return Err(FsError::InvalidArgument(format!(
                "buffer of {} bytes for a chunk of {n}",
                buf.len()
            )));
        }
        self.read_at(i * CHUNK as u64, &mut buf[..n])?;
        Ok((n, crc))
    }

    /// Reads `count` consecutive chunks starting at `first` into `buf`
    /// (contiguously) with one system call; returns the bytes read.
    pub fn read_chunks(&self, first: u64, count: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if count == 0 {
            return Ok(0);
        }
        if first.saturating_add(count) > self.chunks() {
            return Err(FsError::InvalidArgument(format!(
                "block {} has {} chunks, asked for {first}..{}",
                self.id,
                self.chunks(),
                first.saturating_add(count)
            )));
        }
        let start = first * CHUNK as u64;
        let end = ((first + count) * CHUNK as u64).min(self.len);
        let n = (end - start) as usize;
        if buf.len() < n {
            return Err(FsError::InvalidArgument(format!(
                "buffer of {} bytes for {n} bytes of chunks",
                buf.len()
            )));
        }
        self.read_at(start, &mut buf[..n])?;
        Ok(n)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        match self.data.read_exact_at(buf, offset) {
            Ok(()) => {
                if let Some(s) = &self.stats {
                    s.bytes_read.inc_by(buf.len() as u64);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!(
                    "data file is shorter than the {} bytes its meta file records",
                    self.len
                ),
            }),
            Err(e) => Err(FsError::Io(format!("reading block {}: {e}", self.id))),
        }
    }
}
