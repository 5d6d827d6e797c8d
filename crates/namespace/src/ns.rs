//! The namespace: the inode tree, files and their block lists, the
//! datanode registry, id counters, leases and the retry cache. Pure and
//! deterministic: the Raft state machine applies log operations to it, and
//! reads consult it. No I/O, no clock: time comes in the stamps.

use crate::children::Pos;
use crate::inode::Inode;
use crate::op::{AdminState, LogOp, NsEvent, Outcome, Stamp};
use crate::perm::{denied, Access};
use crate::retry::RetryCache;
use crate::side::Side;
use crate::slab::{Slab, Slot};
use crate::snapshot::Snapshots;
use crate::strings::Strings;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use tdfs_proto::perm::EXECUTE;
use tdfs_proto::{path, BlockId, DatanodeId, FsError};

/// Replication factors accepted.
pub const MAX_REPLICATION: u16 = 512;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u64 = 1024;
/// Largest block size accepted: a gateway buffers at most one block, so
/// this bounds what any request can make it hold.
pub const MAX_BLOCK_SIZE: u64 = 1 << 30;
/// Entries a directory may hold (HDFS's `max-directory-items` default).
pub const MAX_DIR_ITEMS: usize = 1 << 20;
/// A deleted subtree with at most this many inodes is freed at once;
/// larger ones are freed by `Reclaim` steps.
pub const INLINE_FREE: u64 = 1024;

/// A datanode in the replicated registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeRecord {
    pub addr: String,
    pub http: Option<String>,
    /// Address of its HDFS DataTransferProtocol server, if it runs one.
    pub hdfs: Option<String>,
    pub admin: AdminState,
}

/// The writer of a file under construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The client id of the writer.
    pub holder: u64,
    /// Interned user name of the writer.
    pub user: u32,
    /// The pipeline of the open last block (a hint for lease recovery).
    pub targets: Vec<DatanodeId>,
}

/// The whole replicated namespace.
#[derive(Clone, Default)]
pub struct Namespace {
    pub(crate) slab: Slab,
    pub(crate) strings: Strings,
    /// The root's slot, once `Init` has run.
    pub(crate) root: Option<Slot>,
    pub(crate) superuser: u32,
    pub(crate) supergroup: u32,
    pub(crate) next_block: u64,
    pub(crate) next_gen: u64,
    /// The largest wall stamp (`Stamp::now`) applied. Wall time: kept for
    /// reports and snapshots; no expiry runs on it (a leader's wall clock
    /// can step), see `tick`.
    pub(crate) clock: u64,
    /// The log tick: the largest `Stamp::tick` applied, never going
    /// backwards. The retry cache expires by it.
    pub(crate) tick: u64,
    pub(crate) datanodes: BTreeMap<DatanodeId, DatanodeRecord>,
    /// Leases of files under construction, by slot.
    pub(crate) leases: FxHashMap<Slot, Lease>,
    pub(crate) retry: RetryCache,
    /// Roots of deleted subtrees whose inodes are still to be freed.
    pub(crate) reclaim: VecDeque<Slot>,
    /// Inodes in `reclaim` subtrees not yet freed.
    pub(crate) reclaim_pending: u64,
    /// Block id → the slot of the file owning it (derived; rebuilt on load).
    /// A block only a snapshot still holds stays here, under its file.
    pub(crate) block_index: FxHashMap<BlockId, Slot>,
    /// What few inodes have: quotas, ACLs, xattrs, truncations.
    pub(crate) side: Side,
    /// Snapshot roots, diffs and the inodes they keep.
    pub(crate) snap: Snapshots,
}

impl Namespace {
    /// An uninitialized namespace; `Init` creates the root.
    pub fn new() -> Self {
        Namespace {
            next_block: 1,
            next_gen: 1,
            ..Default::default()
        }
    }

    pub fn is_initialized(&self) -> bool {
        self.root.is_some()
    }

    /// Applies one operation, consulting and filling the retry cache.
    /// Changes the policies track are appended to `events`.
    pub fn apply(
        &mut self,
        stamp: &Stamp,
        op: &LogOp,
        events: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        self.advance(stamp);
        if let Some(call) = stamp.call {
            if let Some(prev) = self.retry.get(call) {
                return prev;
            }
        }
        let r = self.apply_uncached(stamp, op, events);
        if let Some(call) = stamp.call {
            // A retriable failure changed nothing and tells the client to
            // retry with the same call id; remembering it would answer
            // every such retry with the failure.
            if !matches!(&r, Err(e) if e.is_retriable()) {
                self.retry.insert(call, self.tick, r.clone());
            }
        }
        r
    }

    /// Applies one operation without consulting the retry cache: a retried
    /// call is applied again. Only for the chaos suite's bug switch, which
    /// proves the suite notices.
    pub fn apply_ignoring_retry_cache(
        &mut self,
        stamp: &Stamp,
        op: &LogOp,
        events: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        self.advance(stamp);
        self.apply_uncached(stamp, op, events)
    }

    /// Takes a stamp's times: both clocks only move forward.
    fn advance(&mut self, stamp: &Stamp) {
        self.clock = self.clock.max(stamp.now);
        self.tick = self.tick.max(stamp.tick);
    }

    fn apply_uncached(
        &mut self,
        s: &Stamp,
        op: &LogOp,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        match op {
            LogOp::Init {
                superuser,
                supergroup,
            } => self.init(superuser, supergroup, s.now),
            LogOp::Noop => Ok(Outcome::Done),
            LogOp::RegisterDatanode {
                id,
                addr,
                http,
                hdfs,
            } => {
                let rec = self
                    .datanodes
                    .entry(id.clone())
                    .or_insert_with(|| DatanodeRecord {
                        addr: addr.clone(),
                        http: None,
                        hdfs: None,
                        admin: AdminState::Normal,
                    });
                rec.addr = addr.clone();
                rec.http = http.clone();
                rec.hdfs = hdfs.clone();
                ev.push(NsEvent::AdminState {
                    id: id.clone(),
                    state: rec.admin,
                });
                Ok(Outcome::Done)
            }
            LogOp::SetAdminState { id, state } => match self.datanodes.get_mut(id) {
                Some(rec) => {
                    rec.admin = *state;
                    ev.push(NsEvent::AdminState {
                        id: id.clone(),
                        state: *state,
                    });
                    Ok(Outcome::Done)
                }
                None => Err(FsError::InvalidArgument(format!("unknown datanode {id}"))),
            },
            LogOp::Reclaim { budget } => {
                self.reclaim_step(*budget as u64, ev);
                Ok(Outcome::Done)
            }
            _ if !self.is_initialized() => {
                Err(FsError::Unavailable("namespace not initialized".into()))
            }
            LogOp::RecoverLease {
                path,
                holder,
                expect,
                last,
                drop_last,
            } => self.recover_lease(path, *holder, *expect, last.as_ref(), *drop_last, s.now, ev),
            LogOp::CommitTruncate { file, block } => self.commit_truncate(*file, block, s.now, ev),
            _ => {
                for p in op.written_paths() {
                    reject_snapshot_path(p)?;
                }
                self.apply_user_op(s, op, ev)
            }
        }
    }

    fn apply_user_op(
        &mut self,
        s: &Stamp,
        op: &LogOp,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let a = self.access(&s.user);
        let holder = s.call.map(|c| c.client);
        let now = s.now;
        match op {
            LogOp::Mkdirs {
                path,
                mode,
                parents,
            } => self.mkdirs(&a, path, *mode, *parents, now),
            LogOp::Create {
                path,
                overwrite,
                replication,
                block_size,
                mode,
                create_parents,
            } => {
                let holder = holder.ok_or_else(|| {
                    FsError::InvalidArgument("create needs a client call id".into())
                })?;
                let o = crate::file_ops::CreateArgs {
                    overwrite: *overwrite,
                    replication: *replication,
                    block_size: *block_size,
                    mode: *mode,
                    create_parents: *create_parents,
                };
                self.create(&a, path, &o, holder, now, ev)
            }
            LogOp::Append { path } => {
                let holder = holder.ok_or_else(|| {
                    FsError::InvalidArgument("append needs a client call id".into())
                })?;
                self.append(&a, path, holder, now, ev)
            }
            LogOp::AddBlock {
                path,
                previous,
                targets,
            } => self.add_block(path, previous.as_ref(), holder, targets, now, ev),
            LogOp::UpdatePipeline {
                path,
                block,
                targets,
            } => self.update_pipeline(path, *block, holder, targets, ev),
            LogOp::AbandonBlock { path, block } => self.abandon_block(path, *block, holder, ev),
            LogOp::Complete { path, last } => self.complete(path, last.as_ref(), holder, now, ev),
            LogOp::Delete { path, recursive } => self.delete(&a, path, *recursive, now, ev),
            LogOp::Rename { src, dst, into_dir } => self.rename(&a, src, dst, *into_dir, now),
            LogOp::SetReplication { path, replication } => {
                self.set_replication(&a, path, *replication, ev)
            }
            LogOp::SetPermission { path, mode } => self.set_permission(&a, path, *mode),
            LogOp::SetOwner { path, owner, group } => {
                self.set_owner(&a, path, owner.as_deref(), group.as_deref())
            }
            LogOp::SetTimes { path, mtime, atime } => self.set_times(&a, path, *mtime, *atime),
            other => self.apply_feature_op(&a, s, other, ev),
        }
    }

    fn init(&mut self, superuser: &str, supergroup: &str, now: u64) -> Result<Outcome, FsError> {
        if self.root.is_none() {
            self.superuser = self.strings.intern(superuser)?;
            self.supergroup = self.strings.intern(supergroup)?;
            let root = Inode::new_dir("", 0, self.superuser, self.supergroup, 0o755, now);
            let slot = self.slab.alloc(root);
            self.slab.at_mut(slot).parent = slot;
            self.root = Some(slot);
        }
        Ok(Outcome::Done)
    }

    // ------------------------------------------------------------------
    // Resolution
    // ------------------------------------------------------------------

    pub(crate) fn root_slot(&self) -> Slot {
        self.root.expect("checked initialized")
    }

    /// Resolves a path to a slot, checking EXECUTE on every ancestor.
    pub(crate) fn resolve(&self, a: &Access, p: &str) -> Result<Slot, FsError> {
        let comps = path::components(p)?;
        self.resolve_comps(a, p, &comps)
    }

    pub(crate) fn resolve_comps(
        &self,
        a: &Access,
        p: &str,
        comps: &[&str],
    ) -> Result<Slot, FsError> {
        let mut cur = self.root_slot();
        for (i, c) in comps.iter().enumerate() {
            let ino = self.slab.at(cur);
            let Some(d) = ino.dir() else {
                return Err(FsError::NotADirectory(path::join(&comps[..i])));
            };
            if !self.allowed(a, cur, EXECUTE) {
                return Err(denied(a, "EXECUTE", &path::join(&comps[..i])));
            }
            cur = d
                .children
                .get(c, |s| self.slab.at(s).name.as_str())
                .ok_or_else(|| FsError::FileNotFound(p.to_string()))?;
        }
        Ok(cur)
    }

    /// Resolves the parent directory of `p`; returns it with the last name.
    pub(crate) fn resolve_parent<'p>(
        &self,
        a: &Access,
        p: &'p str,
    ) -> Result<(Slot, &'p str), FsError> {
        let comps = path::components(p)?;
        let Some((last, parent)) = comps.split_last() else {
            return Err(FsError::InvalidArgument(
                "the root directory cannot be the target of this operation".into(),
            ));
        };
        let pid = self.resolve_comps(a, p, parent).map_err(|e| match e {
            FsError::FileNotFound(_) => FsError::FileNotFound(path::join(parent)),
            other => other,
        })?;
        if !self.slab.at(pid).is_dir() {
            return Err(FsError::NotADirectory(path::join(parent)));
        }
        Ok((pid, last))
    }

    /// The child `name` of directory `dir`: `Ok(slot)` or where it would go.
    pub(crate) fn find_child(&self, dir: Slot, name: &str) -> Result<Slot, Pos> {
        let d = self.slab.at(dir).dir().expect("resolved to a directory");
        match d.children.find(name, |s| self.slab.at(s).name.as_str()) {
            Ok(pos) => Ok(d.children.iter_from(pos).next().expect("found")),
            Err(pos) => Err(pos),
        }
    }

    pub(crate) fn child_of(&self, dir: Slot, name: &str) -> Option<Slot> {
        self.find_child(dir, name).ok()
    }

    /// The canonical path of a live, attached inode.
    pub fn path_of(&self, mut slot: Slot) -> String {
        let root = self.root_slot();
        let mut parts = Vec::new();
        while slot != root {
            let ino = self.slab.at(slot);
            parts.push(ino.name.as_str());
            slot = ino.parent;
        }
        parts.reverse();
        path::join(&parts)
    }

    // ------------------------------------------------------------------
    // Small accessors for the server
    // ------------------------------------------------------------------

    /// Inodes of deleted subtrees still to be freed; the leader proposes
    /// `Reclaim` steps while this is not zero.
    pub fn pending_reclaim(&self) -> u64 {
        self.reclaim_pending
    }

    // ------------------------------------------------------------------
    // Small accessors for the server
    // ------------------------------------------------------------------

    pub fn datanodes(&self) -> &BTreeMap<DatanodeId, DatanodeRecord> {
        &self.datanodes
    }

    /// The superuser's name.
    pub fn superuser(&self) -> &str {
        self.strings.get(self.superuser)
    }

    /// The next block id to be allocated: every block below it was
    /// allocated by this namespace (or one it descends from).
    pub fn next_block_id(&self) -> BlockId {
        self.next_block
    }

    /// The largest wall stamp applied (wall time: may have stepped).
    pub fn clock(&self) -> u64 {
        self.clock
    }

    /// The log tick: the largest `Stamp::tick` applied, the time the retry
    /// cache expires by; a new leader's ticks start from it.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Live inodes (files and directories).
    pub fn inode_count(&self) -> u64 {
        self.slab.live()
    }

    /// The retry cache's answer for `call`, if it holds one.
    pub fn retry_result(&self, call: tdfs_proto::ids::CallId) -> Option<Result<Outcome, FsError>> {
        self.retry.get(call)
    }

    /// Retry cache entries held.
    pub fn retry_entries(&self) -> usize {
        self.retry.len()
    }
}

/// Refuses a write under `DIR/.snapshot/...` (snapshots are read-only) and
/// `.snapshot` as a name (it is reserved), as HDFS does.
fn reject_snapshot_path(p: &str) -> Result<(), FsError> {
    let comps = path::components(p)?;
    match comps
        .iter()
        .position(|c| *c == tdfs_proto::snapshot::DOT_SNAPSHOT)
    {
        None => Ok(()),
        Some(i) if i + 1 < comps.len() => Err(FsError::SnapshotReadOnly(p.to_string())),
        Some(_) => Err(FsError::InvalidPath {
            path: p.to_string(),
            reason: "\".snapshot\" is a reserved name".into(),
        }),
    }
}
