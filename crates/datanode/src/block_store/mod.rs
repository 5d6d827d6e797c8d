//! A durable store of block replicas in one local data directory, on a
//! [`Disk`] (the real one in production, an in-memory or faulty one in
//! tests).
//!
//! ```text
//! DIR/LOCK                       held (flock) for the life of the process
//! DIR/datanode.id                this node's stable id (16 hex characters)
//! DIR/rbw/blk_ID_GEN_TOKEN.data  replicas being written (removed on open)
//! DIR/rbw/blk_ID_GEN_TOKEN.meta
//! DIR/current/blk_ID_GEN.data    finalized replicas
//! DIR/current/blk_ID_GEN.meta
//! DIR/quarantine/blk_ID_GEN.*    replicas found corrupt, kept until the leader deletes them
//! ```
//!
//! **Publishing** ([`writer`]): a replica is received into `rbw/`. Its data
//! and meta files are fsync'd, the data file is renamed into `current/`, the
//! directory fsync'd, the meta file renamed (the commit point) and the
//! directory fsync'd again; only then is the write acknowledged.
//!
//! **Recovery** ([`recovery`]): on open, everything under `rbw/` and a data
//! file in `current/` without its meta file were never acknowledged and are
//! removed. A replica in `current/` that cannot be read (EIO, EACCES,
//! EMFILE, ...), whose meta file is damaged, or whose meta does not match
//! its data is *quarantined*, not deleted. When several valid generations of
//! a block are present the highest wins and the older ones are removed
//! (publishing a new generation removes the old one the same way).
//!
//! **Quarantine** ([`quarantine`]): a replica found corrupt — at open, by
//! the integrity scanner, by a `Verify` command, or by a copy whose own
//! stored chunk CRC fails — is moved into `quarantine/` (atomically and
//! durably), never served or copied, not counted as held, and reported to
//! the metadata nodes. It survives restarts. Only the leader removes it,
//! with a `Delete` naming a generation at least its own, once the block has
//! good replicas elsewhere: a datanode never deletes a replica on its own
//! authority (HDFS's rule), so a block whose every replica is corrupt keeps
//! them all.
//!
//! **Truncate** ([`truncate`]): block recovery after a truncate writes a
//! replica's first bytes as a new generation (or a new block) and
//! publishes it the same way.
//!
//! Reading is [`reader`]; re-verifying, for the scanner and `Verify`, is
//! [`verify`]; the meta file format is in [`meta`].
//!
//! Every method does blocking file I/O: from async code call them through
//! `spawn_blocking` (or a dedicated thread).

pub mod meta;
pub mod quarantine;
pub mod reader;
pub mod recovery;
pub mod truncate;
pub mod verify;
pub mod writer;

pub use meta::decode_meta_for_fuzzing;
pub use reader::ReplicaReader;
pub use truncate::Truncated;
pub use verify::Check;
pub use writer::ReplicaWriter;

use prometheus_client::metrics::counter::Counter;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use tdfs_disk::{Disk, DiskFile};
use tdfs_proto::meta::{DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId, FsError};

const LOCK_FILE: &str = "LOCK";
const ID_FILE: &str = "datanode.id";
const CURRENT: &str = "current";
const RBW: &str = "rbw";
const QUARANTINE: &str = "quarantine";

/// Where and how a [`BlockStore`] keeps its replicas.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// Bytes this store may hold. `None`: what it holds plus the disk's
    /// free space.
    pub capacity: Option<u64>,
    /// fsync data, meta and directories when publishing (default true).
    pub fsync: bool,
    /// The file system under `dir`: [`tdfs_disk::RealDisk`] by default; a
    /// test puts an in-memory or faulty disk here.
    pub disk: Arc<dyn Disk>,
}

impl StoreConfig {
    /// A store in `dir` on the real disk, sized by the disk, with fsync on.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            capacity: None,
            fsync: true,
            disk: tdfs_disk::real(),
        }
    }

    /// The same store on another disk.
    pub fn on(mut self, disk: Arc<dyn Disk>) -> Self {
        self.disk = disk;
        self
    }
}

/// The life cycle of a replica on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Being written into `rbw/`; invisible to readers and the checker.
    Receiving,
    /// Published and readable.
    Finalized,
    /// Being removed or moved aside; no longer readable.
    Deleting,
    /// Finalized and being re-read by the integrity checker.
    Checking,
    /// Found corrupt and moved aside: never served, kept until the leader
    /// deletes it.
    Quarantined,
}

/// A finalized replica, as the store tracks it.
#[derive(Clone, Debug)]
struct Replica {
    /// Its generation stamp.
    gen: u64,
    /// Its length in bytes.
    len: u64,
    /// Its SHA-256, from its meta file.
    sha256: [u8; 32],
    /// Being deleted or quarantined: hidden from readers and reports.
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

/// A quarantined replica.
#[derive(Clone, Copy, Debug)]
struct Quarantined {
    /// Bytes its files take.
    bytes: u64,
    /// Moving it aside failed: its files are still in `current/` (hidden
    /// all the same; the next open finds it again).
    in_current: bool,
}

/// A writer in progress.
struct Receiving {
    /// The block it receives.
    id: BlockId,
    /// Bytes reserved for it.
    reserved: u64,
}

#[derive(Default)]
struct Inner {
    /// The finalized replica of each block (one generation per block).
    replicas: HashMap<BlockId, Replica>,
    /// Quarantined replicas, by block and generation.
    quarantined: BTreeMap<(BlockId, u64), Quarantined>,
    /// Writers in progress, by token.
    receiving: HashMap<u64, Receiving>,
    /// Bytes of finalized replicas.
    used: u64,
    /// Bytes of quarantined replicas: they still take space.
    quarantined_bytes: u64,
    /// Bytes reserved by writers in progress.
    pending: u64,
    /// Bytes already written by writers in progress (they are on disk, so
    /// the disk's free space no longer counts them).
    rbw_written: u64,
}

/// A durable local block store; share it as `Arc<BlockStore>`.
pub struct BlockStore {
    /// How it was opened.
    cfg: StoreConfig,
    /// This node's stable id.
    node: DatanodeId,
    /// `DIR/current`.
    current: PathBuf,
    /// `DIR/rbw`.
    rbw: PathBuf,
    /// `DIR/quarantine`.
    quarantine: PathBuf,
    /// The replica tables; held briefly, never across I/O.
    inner: Mutex<Inner>,
    /// Serializes publishing, deleting and quarantining (renames and
    /// unlinks in `current/` and `quarantine/`).
    publish: Mutex<()>,
    /// Names writers' files in `rbw/` uniquely.
    next_token: AtomicU64,
    /// Held for the life of the store: the flock on `LOCK`.
    _lock: Box<dyn DiskFile>,
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
    /// Replicas moved into quarantine (at open or while running).
    pub quarantined: Counter,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("dir", &self.cfg.dir)
            .field("node", &self.node)
            .finish()
    }
}

/// What a [`BlockStore::delete`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// The generation of the finalized replica removed, if one was.
    pub finalized: Option<u64>,
    /// The generations of the quarantined replicas removed.
    pub quarantined: Vec<u64>,
}

impl Deleted {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.finalized.is_some() || !self.quarantined.is_empty()
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

fn sync_dir(disk: &dyn Disk, dir: &Path) -> Result<(), FsError> {
    disk.sync_dir(dir)
        .map_err(|e| io_at("cannot fsync directory", dir, e))
}

fn remove_quietly(disk: &dyn Disk, path: &Path) {
    if let Err(e) = disk.remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(fault = "local", "cannot remove {}: {e}", path.display());
        }
    }
}

/// Crash points for tests (the `failpoints` feature): each publishing and
/// quarantining step can be made to stop the world right after it.
pub mod failpoints {
    /// The received data file is fsync'd (still in `rbw/`).
    pub const PUBLISH_AFTER_DATA_FSYNC: &str = "datanode::publish::after_data_fsync";
    /// The meta file is written and fsync'd (still in `rbw/`).
    pub const PUBLISH_AFTER_META_FSYNC: &str = "datanode::publish::after_meta_fsync";
    /// The data file is renamed into `current/`, before the directory fsync.
    pub const PUBLISH_AFTER_DATA_RENAME: &str = "datanode::publish::after_data_rename";
    /// `current/` is fsync'd with the data file in it.
    pub const PUBLISH_AFTER_DATA_DIR_FSYNC: &str = "datanode::publish::after_data_dir_fsync";
    /// The meta file is renamed (the commit point), before the directory fsync.
    pub const PUBLISH_AFTER_META_RENAME: &str = "datanode::publish::after_meta_rename";
    /// `current/` is fsync'd with both files: the replica is durable.
    pub const PUBLISH_AFTER_META_DIR_FSYNC: &str = "datanode::publish::after_meta_dir_fsync";
    /// A quarantined replica's data file is in `quarantine/`, its meta not yet.
    pub const QUARANTINE_AFTER_DATA_MOVE: &str = "datanode::quarantine::after_data_move";
    /// Both files are in `quarantine/`, before any directory fsync.
    pub const QUARANTINE_AFTER_META_MOVE: &str = "datanode::quarantine::after_meta_move";
    /// `quarantine/` is fsync'd, `current/` not yet.
    pub const QUARANTINE_AFTER_DEST_FSYNC: &str = "datanode::quarantine::after_dest_fsync";

    /// Every crash point of publishing, in order.
    pub const PUBLISH: &[&str] = &[
        PUBLISH_AFTER_DATA_FSYNC,
        PUBLISH_AFTER_META_FSYNC,
        PUBLISH_AFTER_DATA_RENAME,
        PUBLISH_AFTER_DATA_DIR_FSYNC,
        PUBLISH_AFTER_META_RENAME,
        PUBLISH_AFTER_META_DIR_FSYNC,
    ];
    /// Every crash point of quarantining, in order.
    pub const QUARANTINE: &[&str] = &[
        QUARANTINE_AFTER_DATA_MOVE,
        QUARANTINE_AFTER_META_MOVE,
        QUARANTINE_AFTER_DEST_FSYNC,
    ];
}

impl BlockStore {
    /// This node's stable id (kept in `DIR/datanode.id`).
    pub fn datanode_id(&self) -> &DatanodeId {
        &self.node
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    fn disk(&self) -> &dyn Disk {
        &*self.cfg.disk
    }

    fn capacity_locked(&self, inner: &Inner) -> u64 {
        match self.cfg.capacity {
            Some(c) => c,
            None => {
                let free = self.disk().available_space(&self.cfg.dir).unwrap_or(0);
                inner
                    .used
                    .saturating_add(inner.quarantined_bytes)
                    .saturating_add(inner.rbw_written)
                    .saturating_add(free)
            }
        }
    }

    fn usage_locked(&self, inner: &Inner) -> DatanodeUsage {
        DatanodeUsage {
            capacity: self.capacity_locked(inner),
            used: inner.used.saturating_add(inner.quarantined_bytes),
            pending: inner.pending,
            blocks: inner.replicas.values().filter(|r| !r.deleting).count() as u64,
        }
    }

    /// Capacity, bytes held (quarantined replicas included: they take
    /// space), bytes reserved by writes in progress, replicas held
    /// (quarantined ones excluded).
    pub fn usage(&self) -> DatanodeUsage {
        self.usage_locked(&lock_poisoned(&self.inner))
    }

    /// Every finalized replica (those being deleted or quarantined excluded).
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
    /// else `Receiving` when a write is in progress, else `Quarantined`
    /// when only a quarantined replica is left.
    pub fn state(&self, id: BlockId) -> Option<BlockState> {
        let inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.replicas.get(&id) {
            return Some(r.state());
        }
        if inner.receiving.values().any(|r| r.id == id) {
            return Some(BlockState::Receiving);
        }
        inner
            .quarantined
            .range((id, 0)..=(id, u64::MAX))
            .next()
            .map(|_| BlockState::Quarantined)
    }

    /// Deletes, as the leader's `Delete { (id, gen) }` asks, the finalized
    /// replica of block `id` if its generation is at most `gen`, and every
    /// quarantined replica of it at a generation at most `gen`. Nothing
    /// newer is touched.
    pub fn delete(&self, id: BlockId, gen: u64) -> Result<Deleted, FsError> {
        let _p = lock_poisoned(&self.publish);
        let finalized = self.delete_finalized(id, gen)?;
        let quarantined = self.delete_quarantined(id, gen)?;
        Ok(Deleted {
            finalized,
            quarantined,
        })
    }

    /// Removes the finalized replica of `id` at a generation at most `gen`;
    /// caller holds `publish`.
    fn delete_finalized(&self, id: BlockId, max_gen: u64) -> Result<Option<u64>, FsError> {
        let gen = {
            let mut inner = lock_poisoned(&self.inner);
            match inner.replicas.get_mut(&id) {
                Some(r) if !r.deleting && r.gen <= max_gen => {
                    r.deleting = true;
                    r.gen
                }
                _ => return Ok(None),
            }
        };
        let (d, m) = meta::replica_paths(&self.current, id, gen);
        // The meta file first: a data file without it is garbage on load.
        let result = [&m, &d]
            .into_iter()
            .try_for_each(|p| match self.disk().remove_file(p) {
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
            sync_dir(self.disk(), &self.current)?;
        }
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.replicas.remove(&id) {
            inner.used -= r.len;
        }
        Ok(Some(gen))
    }
}
