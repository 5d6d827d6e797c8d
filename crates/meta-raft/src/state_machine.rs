//! The Raft state machine: applies committed batches to the namespace (and
//! feeds what changed to the soft cluster state), and builds, stores and
//! installs snapshots.
//!
//! A snapshot is built off the hot path: the namespace is frozen (its
//! pages shared copy-on-write) under a short read lock and streamed to a
//! file on a blocking thread while applies go on. The newest snapshot is
//! one file (`snapshot.bin`, replaced atomically); at start the state
//! machine loads it and openraft replays the log after it.

use crate::core::{Core, Replicated};
use crate::snapshot::{read_snapshot_file, write_snapshot_file, SnapshotFileError};
use crate::types::{
    BatchResult, Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tdfs_namespace::Namespace;
use tdfs_policy::ClusterState;

/// What the state machine keeps beside the shared core.
struct SmFiles {
    dir: PathBuf,
    /// Metadata of the snapshot on disk.
    meta: Mutex<Option<SnapshotMeta>>,
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

/// Loads the replicated state from `dir`'s snapshot, if any. A snapshot
/// that fails its checksum or does not decode is an error naming the file:
/// the node must not start from a damaged state.
pub fn load(dir: &Path) -> Result<(Replicated, Option<SnapshotMeta>), SnapshotFileError> {
    std::fs::create_dir_all(dir).map_err(|e| SnapshotFileError::io(dir, e))?;
    match read_snapshot_file(dir)? {
        Some((meta, ns)) => Ok((
            Replicated {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                ns,
            },
            Some(meta),
        )),
        None => Ok((
            Replicated {
                last_applied: None,
                membership: StoredMembership::default(),
                ns: Namespace::new(),
            },
            None,
        )),
    }
}

impl StateMachine {
    /// The state machine over `core`, whose replicated state was loaded
    /// from `dir` with [`load`] (`meta` is that snapshot's metadata).
    pub fn new(core: Arc<Core>, dir: &Path, meta: Option<SnapshotMeta>) -> Self {
        StateMachine {
            core,
            files: Arc::new(SmFiles {
                dir: dir.to_path_buf(),
                meta: Mutex::new(meta),
                seq: AtomicU64::new(0),
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// A state machine with its own core (the storage conformance suite).
    pub fn open_standalone(dir: &Path) -> Result<Self, StorageError> {
        let (rep, meta) = load(dir).map_err(snap_err)?;
        let core = Arc::new(Core::new(
            rep,
            ClusterState::new(crate::config::policy_config_default()),
            tdfs_rpc::EventBus::new("meta-0", tdfs_rpc::Clock::real()),
            tdfs_rpc::Clock::real(),
            crate::config::defaults::HASH_EVERY,
        ));
        Ok(Self::new(core, dir, meta))
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
        let m = meta.clone();
        let data = tokio::task::spawn_blocking(move || write_snapshot_file(&dir, &m, &frozen))
            .await
            .map_err(sm_err)?
            .map_err(sm_err)?;
        *self.files.meta.lock().unwrap_or_else(|e| e.into_inner()) = Some(meta.clone());
        tracing::info!("snapshot {} built ({} bytes)", meta.snapshot_id, data.len());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let _g = self.files.lock.lock().await;
        let data = snapshot.into_inner();
        let dir = self.files.dir.clone();
        // Check and decode before anything replaces the current state.
        let (file_meta, ns) = tokio::task::spawn_blocking(move || {
            let parsed = crate::snapshot::parse(&data).map_err(snap_err)?;
            crate::snapshot::store_raw(&dir, &data).map_err(sm_err)?;
            Ok::<_, StorageError>(parsed)
        })
        .await
        .map_err(sm_err)??;
        if file_meta.last_log_id != meta.last_log_id {
            tracing::warn!(
                "installed snapshot names {:?}, openraft gave {:?}",
                file_meta.last_log_id,
                meta.last_log_id
            );
        }
        let now = self.core.now();
        self.core.apply(|rep, view| {
            rep.ns = ns;
            rep.last_applied = meta.last_log_id;
            rep.membership = meta.last_membership.clone();
            reload_view(rep, view, now);
        });
        *self.files.meta.lock().unwrap_or_else(|e| e.into_inner()) = Some(meta.clone());
        tracing::info!("installed snapshot {}", meta.snapshot_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(meta) = self
            .files
            .meta
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Ok(None);
        };
        let dir = self.files.dir.clone();
        let data = tokio::task::spawn_blocking(move || crate::snapshot::read_raw(&dir))
            .await
            .map_err(snap_err)?
            .map_err(snap_err)?;
        Ok(data.map(|d| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(d)),
        }))
    }
}
