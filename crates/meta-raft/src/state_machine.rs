//! The Raft state machine: applies committed batches to the namespace and
//! builds, stores and installs snapshots of it.
//!
//! A snapshot is built off the hot path: the namespace is cloned under a
//! short read lock and serialized and written on a blocking thread. The
//! newest snapshot is kept in one file (`snapshot.bin`, replaced atomically);
//! at start the state machine loads it and openraft replays the log after it.

use crate::command::CommandResult;
use crate::log_store::write_atomic;
use crate::namespace::{Defaults, Namespace};
use crate::types::{
    Entry, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};
use openraft::storage::RaftStateMachine;
use openraft::{AnyError, EntryPayload, RaftSnapshotBuilder, StorageIOError};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

const SNAPSHOT_FILE: &str = "snapshot.bin";

/// Everything the state machine holds; readers take the read lock.
pub struct SmState {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub ns: Namespace,
}

/// State shared between the state machine (writer) and the RPC server (readers).
pub struct SmShared {
    pub state: RwLock<SmState>,
    dir: PathBuf,
    /// Metadata of the snapshot on disk.
    snapshot_meta: Mutex<Option<SnapshotMeta>>,
    snapshot_seq: AtomicU64,
    /// Serializes snapshot builds and installs.
    snapshot_lock: tokio::sync::Mutex<()>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// The openraft state machine; clones share the same state.
#[derive(Clone)]
pub struct StateMachine {
    pub shared: Arc<SmShared>,
}

fn sm_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}
fn snap_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

impl StateMachine {
    /// Opens the state machine in `dir`, loading the newest snapshot.
    pub fn open(dir: &Path, defaults: Defaults) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(sm_err)?;
        let mut state = SmState {
            last_applied: None,
            membership: StoredMembership::default(),
            ns: Namespace::new(defaults),
        };
        let mut meta = None;
        if let Some(file) = read_snapshot_file(dir)? {
            let ns = decode_ns(&file.data)?;
            state.last_applied = file.meta.last_log_id;
            state.membership = file.meta.last_membership.clone();
            state.ns = ns;
            meta = Some(file.meta);
        }
        Ok(StateMachine {
            shared: Arc::new(SmShared {
                state: RwLock::new(state),
                dir: dir.to_path_buf(),
                snapshot_meta: Mutex::new(meta),
                snapshot_seq: AtomicU64::new(0),
                snapshot_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

fn read_snapshot_file(dir: &Path) -> Result<Option<SnapshotFile>, StorageError> {
    let raw = match std::fs::read(dir.join(SNAPSHOT_FILE)) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(snap_err(e)),
    };
    if raw.len() < 4
        || crc32c::crc32c(&raw[4..]) != u32::from_be_bytes(raw[..4].try_into().unwrap())
    {
        return Err(snap_err("snapshot.bin is corrupt (crc mismatch)"));
    }
    tdfs_proto::codec::decode_large(&raw[4..])
        .map(Some)
        .map_err(snap_err)
}

fn decode_ns(data: &[u8]) -> Result<Namespace, StorageError> {
    let mut ns: Namespace = tdfs_proto::codec::decode_large(data).map_err(snap_err)?;
    ns.rebuild_indexes();
    Ok(ns)
}

fn write_snapshot_file(dir: &Path, file: &SnapshotFile) -> Result<(), StorageError> {
    let body = tdfs_proto::codec::encode(file).map_err(sm_err)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    write_atomic(dir, SNAPSHOT_FILE, &out).map_err(sm_err)
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let _g = self.shared.snapshot_lock.lock().await;
        let (ns, last_applied, membership) = {
            let st = self.shared.state.read().unwrap();
            (st.ns.clone(), st.last_applied, st.membership.clone())
        };
        let seq = self.shared.snapshot_seq.fetch_add(1, Ordering::Relaxed);
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
            None => format!("0-0-{seq}"),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let dir = self.shared.dir.clone();
        let meta2 = meta.clone();
        let data = tokio::task::spawn_blocking(move || {
            let data = tdfs_proto::codec::encode(&ns).map_err(sm_err)?;
            let file = SnapshotFile { meta: meta2, data };
            write_snapshot_file(&dir, &file)?;
            Ok::<_, StorageError>(file.data)
        })
        .await
        .map_err(sm_err)??;
        *self.shared.snapshot_meta.lock().unwrap() = Some(meta.clone());
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
        let st = self.shared.state.read().unwrap();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut st = self.shared.state.write().unwrap();
        let mut out = Vec::new();
        for e in entries {
            st.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Vec::new()),
                EntryPayload::Normal(cmd) => {
                    let rs = cmd.ops.iter().map(|op| st.ns.apply(op)).collect();
                    out.push(rs);
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Vec::new());
                }
            }
        }
        Ok(out)
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
        let _g = self.shared.snapshot_lock.lock().await;
        let data = snapshot.into_inner();
        let ns = decode_ns(&data)?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let dir = self.shared.dir.clone();
        let file = tokio::task::spawn_blocking(move || {
            write_snapshot_file(&dir, &file)?;
            Ok::<_, StorageError>(file)
        })
        .await
        .map_err(sm_err)??;
        {
            let mut st = self.shared.state.write().unwrap();
            st.ns = ns;
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
        }
        *self.shared.snapshot_meta.lock().unwrap() = Some(file.meta);
        tracing::info!("installed snapshot {}", meta.snapshot_id);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        if self.shared.snapshot_meta.lock().unwrap().is_none() {
            return Ok(None);
        }
        let dir = self.shared.dir.clone();
        let file = tokio::task::spawn_blocking(move || read_snapshot_file(&dir))
            .await
            .map_err(snap_err)??;
        Ok(file.map(|f| Snapshot {
            meta: f.meta,
            snapshot: Box::new(Cursor::new(f.data)),
        }))
    }
}
