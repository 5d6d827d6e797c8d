//! The Raft state machine: applies committed batches to the namespace (and
//! feeds what changed to the soft cluster state), and builds, stores and
//! installs snapshots.
//!
//! A snapshot is built off the hot path: the namespace is frozen (its
//! pages shared copy-on-write) under a short read lock and streamed to a
//! file on a blocking thread while applies go on. The newest snapshot is
//! one file (`snapshot.bin`, replaced atomically); openraft sends it and
//! receives one as a [`SnapFile`]; at start the state machine loads it and
//! openraft replays the log after it. Every file goes through the `Disk`
//! seam.

use crate::core::{Core, Replicated};
use crate::snap_file::{Received, SnapFile};
use crate::snapshot::{
    open_snapshot_file, read_meta, read_snapshot_file, receive_path, remove_leftovers,
    snapshot_path, write_snapshot_file, SnapshotFileError,
};
use crate::types::{
    BatchResult, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tdfs_disk::Disk;
use tdfs_namespace::Namespace;
use tdfs_policy::ClusterState;

/// What the state machine keeps beside the shared core.
struct SmFiles {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// Numbers the files snapshots are received into.
    seq: AtomicU64,
    /// Serializes snapshot builds and installs.
    lock: tokio::sync::Mutex<()>,
}

/// The openraft state machine; clones share the same state.
#[derive(Clone)]
pub struct StateMachine {
    core: Arc<Core>,
    files: Arc<SmFiles>,
}

pub(crate) fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

/// Loads the replicated state from `dir`'s snapshot, if any (streamed from
/// the file, never read whole). A snapshot that fails its checksum or does
/// not decode is an error naming the file: the node must not start from a
/// damaged state. Removes what an interrupted build or receive left.
pub fn load(disk: &dyn Disk, dir: &Path) -> Result<Replicated, SnapshotFileError> {
    disk.create_dir_all_durable(dir)
        .map_err(|e| SnapshotFileError::io(dir, e))?;
    remove_leftovers(disk, dir).map_err(|e| SnapshotFileError::io(dir, e))?;
    Ok(match read_snapshot_file(disk, dir)? {
        Some((meta, ns)) => Replicated {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            ns,
        },
        None => Replicated {
            last_applied: None,
            membership: StoredMembership::default(),
            ns: Namespace::new(),
        },
    })
}

impl StateMachine {
    /// The state machine over `core`, whose replicated state was loaded
    /// from `dir` on `disk` with [`load`].
    pub fn new(core: Arc<Core>, disk: Arc<dyn Disk>, dir: &Path) -> Self {
        StateMachine {
            core,
            files: Arc::new(SmFiles {
                disk,
                dir: dir.to_path_buf(),
                seq: AtomicU64::new(0),
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A state machine with its own core (the storage conformance suite
    /// and tests), on `disk`.
    pub fn open_standalone(disk: Arc<dyn Disk>, dir: &Path) -> Result<Self, StorageError> {
        let rep = load(disk.as_ref(), dir).map_err(snap_err)?;
        let core = Arc::new(Core::new(
            rep,
            ClusterState::new(crate::config::policy_config_default()),
            tdfs_rpc::EventBus::new("meta-0", tdfs_rpc::Clock::real()),
            tdfs_rpc::Clock::real(),
            crate::config::defaults::HASH_EVERY,
        ));
        Ok(Self::new(core, disk, dir))
    }

    /// The applied index and the namespace's live inodes (tests).
    pub fn summary(&self) -> (Option<LogId>, u64) {
        self.core
            .ns(|r| (r.last_applied, r.ns.freeze().inode_count()))
    }

    /// The snapshot file on disk, opened for sending, with its metadata.
    fn current(&self) -> Result<Option<Snapshot>, StorageError> {
        let disk = self.files.disk.as_ref();
        let Some(f) = open_snapshot_file(disk, &self.files.dir).map_err(snap_err)? else {
            return Ok(None);
        };
        let meta = read_meta(f.as_ref(), &snapshot_path(&self.files.dir)).map_err(snap_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(SnapFile::reading(f)),
        }))
    }
}

/// Rebuilds the soft state's block map from the namespace (after a load or
/// a snapshot install).
pub(crate) fn reload_view(rep: &Replicated, view: &mut ClusterState, now: std::time::Instant) {
    let ns = &rep.ns;
    let mut blocks = Vec::new();
    ns.for_each_block(|b| blocks.push(b));
    let admin: Vec<_> = ns
        .datanodes()
        .iter()
        .map(|(id, r)| (id.clone(), r.admin))
        .collect();
    view.load_namespace(
        blocks.into_iter(),
        ns.next_block_id(),
        admin.into_iter(),
        ns.open_files(),
        now,
    );
    for (id, r) in ns.datanodes() {
        view.set_registered(id, r.admin, now);
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let _g = self.files.lock.lock().await;
        let (frozen, last_applied, membership) = self
            .core
            .ns(|r| (r.ns.freeze(), r.last_applied, r.membership.clone()));
        let seq = self.files.seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let dir = self.files.dir.clone();
        let disk = self.files.disk.clone();
        let m = meta.clone();
        let started = std::time::Instant::now();
        let size = tokio::task::spawn_blocking(move || {
            write_snapshot_file(disk.as_ref(), &dir, &m, &frozen)
        })
        .await
        .map_err(sm_err)?
        .map_err(sm_err)?;
        tracing::info!(
            "snapshot {} built ({size} bytes in {:?})",
            meta.snapshot_id,
            started.elapsed()
        );
        let disk = self.files.disk.as_ref();
        let f = open_snapshot_file(disk, &self.files.dir)
            .map_err(snap_err)?
            .ok_or_else(|| snap_err("the snapshot just written is gone"))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapFile::reading(f)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok(self.core.ns(|r| (r.last_applied, r.membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let now = self.core.now();
        let every = self.core.hash_every;
        let hashes = self.core.hashes.clone();
        Ok(self.core.apply(|rep, view| {
            let mut out = Vec::new();
            let mut events = Vec::new();
            for e in entries {
                let index = e.log_id.index;
                rep.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => out.push(Vec::new()),
                    EntryPayload::Normal(batch) => {
                        let forget = crate::bugs::on(crate::bugs::Bug::ForgetRetryCache);
                        let rs = batch
                            .ops
                            .iter()
                            .map(|s| match forget {
                                false => rep.ns.apply(&s.stamp, &s.op, &mut events),
                                true => {
                                    rep.ns
                                        .apply_ignoring_retry_cache(&s.stamp, &s.op, &mut events)
                                }
                            })
                            .collect();
                        out.push(rs);
                        for ev in events.drain(..) {
                            view.ns_event(&ev, now);
                        }
                    }
                    EntryPayload::Membership(m) => {
                        rep.membership = StoredMembership::new(Some(e.log_id), m);
                        out.push(Vec::new());
                    }
                }
                if index % every == 0 {
                    crate::consistency::hash_later(hashes.clone(), index, rep.ns.freeze());
                }
            }
            out
        }))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapFile>, StorageError> {
        let seq = self.files.seq.fetch_add(1, Ordering::Relaxed);
        let path = receive_path(&self.files.dir, seq);
        let f = SnapFile::receiving(self.files.disk.clone(), path.clone())
            .map_err(|e| sm_err(format!("{}: {e}", path.display())))?;
        Ok(Box::new(f))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<SnapFile>,
    ) -> Result<(), StorageError> {
        let _g = self.files.lock.lock().await;
        if snapshot.received_path().is_none() {
            let seq = self.files.seq.fetch_add(1, Ordering::Relaxed);
            let path = receive_path(&self.files.dir, seq);
            let disk = self.files.disk.clone();
            let from = snapshot;
            let copy = tokio::task::spawn_blocking(move || from.copy_to_receiving(disk, path));
            snapshot = Box::new(copy.await.map_err(sm_err)?.map_err(sm_err)?);
        }
        // Checked and decoded when the last chunk arrived (`shutdown`),
        // before anything replaces the current state.
        let Received {
            meta: file_meta,
            ns,
        } = snapshot.take_received().await.map_err(snap_err)?;
        if file_meta.last_log_id != meta.last_log_id {
            tracing::warn!(
                fault = "peer",
                "installed snapshot names {:?}, openraft gave {:?}",
                file_meta.last_log_id,
                meta.last_log_id
            );
        }
        let from = snapshot
            .received_path()
            .map(Path::to_path_buf)
            .ok_or_else(|| snap_err("not a received snapshot"))?;
        let (disk, dir) = (self.files.disk.clone(), self.files.dir.clone());
        tokio::task::spawn_blocking(move || {
            disk.rename(&from, &snapshot_path(&dir))?;
            disk.sync_dir(&dir)
        })
        .await
        .map_err(sm_err)?
        .map_err(sm_err)?;
        snapshot.keep();
        let now = self.core.now();
        self.core.apply(|rep, view| {
            rep.ns = ns;
            rep.last_applied = meta.last_log_id;
            rep.membership = meta.last_membership.clone();
            reload_view(rep, view, now);
        });
        tracing::info!("installed snapshot {}", meta.snapshot_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.current())
            .await
            .map_err(snap_err)?
    }
}
