//! The namespace: the inode tree, files and their block lists, the
//! datanode registry, id counters, leases and the retry cache. Pure and
//! deterministic: the Raft state machine applies log operations to it, and
//! reads consult it. No I/O, no clock: time comes in the stamps.

use crate::children::Pos;
use crate::inode::{flags, Body, Delta, Inode};
use crate::op::{AdminState, LogOp, NsEvent, Outcome, Stamp};
use crate::retry::RetryCache;
use crate::slab::{Slab, Slot};
use crate::strings::Strings;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use tdfs_proto::perm::{EXECUTE, STICKY, WRITE};
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
    /// The largest stamp applied: the log's clock, never going backwards.
    pub(crate) clock: u64,
    pub(crate) datanodes: BTreeMap<DatanodeId, DatanodeRecord>,
    /// Leases of files under construction, by slot.
    pub(crate) leases: FxHashMap<Slot, Lease>,
    pub(crate) retry: RetryCache,
    /// Roots of deleted subtrees whose inodes are still to be freed.
    pub(crate) reclaim: VecDeque<Slot>,
    /// Inodes in `reclaim` subtrees not yet freed.
    pub(crate) reclaim_pending: u64,
    /// Block id → the slot of the file owning it (derived; rebuilt on load).
    pub(crate) block_index: FxHashMap<BlockId, Slot>,
}

/// Who is asking, for permission checks.
pub(crate) struct Access<'a> {
    pub name: &'a str,
    /// The interned id of `name`, if it owns or ever owned anything.
    pub id: Option<u32>,
    pub superuser: bool,
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
        self.clock = self.clock.max(stamp.now);
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
                self.retry.insert(call, self.clock, r.clone());
            }
        }
        r
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
            _ => self.apply_user_op(s, op, ev),
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
            other => Err(FsError::Internal(format!(
                "{} reached the user dispatcher",
                other.name()
            ))),
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
    // Callers and permissions
    // ------------------------------------------------------------------

    pub(crate) fn access<'u>(&self, user: &'u str) -> Access<'u> {
        let id = self.strings.find(user);
        Access {
            name: user,
            superuser: id.is_some_and(|i| i == self.superuser),
            id,
        }
    }

    /// Whether `a` has every bit of `want` on `ino`. Simple identities: a
    /// user is a member of the group of its own name.
    pub(crate) fn allowed(&self, a: &Access, ino: &Inode, want: u16) -> bool {
        if a.superuser {
            return true;
        }
        let bits = if Some(ino.owner) == a.id {
            (ino.mode >> 6) & 7
        } else if Some(ino.group) == a.id {
            (ino.mode >> 3) & 7
        } else {
            ino.mode & 7
        };
        bits & want == want
    }

    pub(crate) fn check(&self, a: &Access, slot: Slot, want: u16, p: &str) -> Result<(), FsError> {
        if self.allowed(a, self.slab.at(slot), want) {
            Ok(())
        } else {
            Err(denied(a, tdfs_proto::perm::access_name(want), p))
        }
    }

    pub(crate) fn check_owner(&self, a: &Access, slot: Slot, p: &str) -> Result<(), FsError> {
        if a.superuser || Some(self.slab.at(slot).owner) == a.id {
            Ok(())
        } else {
            Err(denied(a, "OWNER", p))
        }
    }

    /// WRITE|EXECUTE on the parent, and the sticky-bit rule for the child.
    pub(crate) fn check_modify_parent(
        &self,
        a: &Access,
        parent: Slot,
        child: Option<Slot>,
        p: &str,
    ) -> Result<(), FsError> {
        let pino = self.slab.at(parent);
        if !self.allowed(a, pino, WRITE | EXECUTE) {
            return Err(denied(a, "WRITE", &self.path_of(parent)));
        }
        if let Some(c) = child {
            if pino.mode & STICKY != 0
                && !a.superuser
                && Some(pino.owner) != a.id
                && Some(self.slab.at(c).owner) != a.id
            {
                return Err(denied(a, "WRITE (sticky bit)", p));
            }
        }
        Ok(())
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
            if !self.allowed(a, ino, EXECUTE) {
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
    // Linking and usage
    // ------------------------------------------------------------------

    /// Adds `delta` to the usage of `dir` and every ancestor.
    pub(crate) fn propagate(&mut self, mut dir: Slot, delta: Delta) {
        if delta.is_zero() {
            return;
        }
        loop {
            let ino = self.slab.at_mut(dir);
            let parent = ino.parent;
            if let Some(d) = ino.dir_mut() {
                d.usage.add(delta);
            }
            if parent == dir {
                return;
            }
            dir = parent;
        }
    }

    /// Allocates `ino` and links it as child `name` of `parent` at `pos`.
    pub(crate) fn link_new(
        &mut self,
        parent: Slot,
        pos: Pos,
        mut ino: Inode,
        now: u64,
    ) -> Result<Slot, FsError> {
        if self.slab.at(parent).dir().map_or(0, |d| d.children.len()) >= MAX_DIR_ITEMS {
            return Err(FsError::InvalidArgument(format!(
                "directory {} has the maximum of {MAX_DIR_ITEMS} entries",
                self.path_of(parent)
            )));
        }
        ino.parent = parent;
        let usage = ino.usage();
        let slot = self.slab.alloc(ino);
        self.insert_child(parent, pos, slot, now);
        self.propagate(parent, Delta::of(&usage));
        Ok(slot)
    }

    /// Inserts an allocated `slot` into `parent`'s children.
    pub(crate) fn insert_child(&mut self, parent: Slot, pos: Pos, slot: Slot, now: u64) {
        let p = self.slab.at_mut(parent);
        p.mtime = now;
        p.dir_mut()
            .expect("parent is a directory")
            .children
            .insert_at(pos, slot);
    }

    /// Unlinks child `name` of `parent` (its inodes stay allocated) and
    /// takes its usage off the ancestors. Returns its slot.
    pub(crate) fn unlink(&mut self, parent: Slot, name: &str, now: u64) -> Option<Slot> {
        let pos = {
            let d = self.slab.at(parent).dir()?;
            d.children
                .find(name, |s| self.slab.at(s).name.as_str())
                .ok()?
        };
        let p = self.slab.at_mut(parent);
        p.mtime = now;
        let slot = p.dir_mut().expect("a directory").children.remove_at(pos);
        let usage = self.slab.at(slot).usage();
        self.propagate(parent, -Delta::of(&usage));
        Some(slot)
    }

    // ------------------------------------------------------------------
    // Freeing
    // ------------------------------------------------------------------

    /// Frees an unlinked subtree: at once when small, else in `Reclaim`
    /// steps (the subtree is already invisible).
    pub(crate) fn dispose(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        let size = {
            let u = self.slab.at(slot).usage();
            u.files + u.dirs
        };
        self.mark_detached(slot, ev);
        self.reclaim.push_back(slot);
        self.reclaim_pending += size.max(1);
        if size <= INLINE_FREE {
            self.reclaim_step(size.max(1), ev);
        }
    }

    fn mark_detached(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        self.slab.at_mut(slot).set(flags::DETACHED, true);
        // A deleted file's lease ends with it; leases of files deeper in a
        // deleted subtree end when their inodes are freed.
        if let Some(l) = self.leases.remove(&slot) {
            ev.push(NsEvent::LeaseClosed {
                holder: l.holder,
                file: self.slab.id_of(slot),
            });
        }
    }

    /// Whether `slot` is in the tree (no ancestor of it was deleted).
    pub(crate) fn attached(&self, mut slot: Slot) -> bool {
        loop {
            let ino = self.slab.at(slot);
            if ino.has(flags::DETACHED) {
                return false;
            }
            if ino.parent == slot {
                return true;
            }
            slot = ino.parent;
        }
    }

    /// Frees up to `budget` inodes of detached subtrees.
    pub(crate) fn reclaim_step(&mut self, budget: u64, ev: &mut Vec<NsEvent>) {
        let mut freed = 0;
        while freed < budget {
            let Some(slot) = self.reclaim.pop_front() else {
                break;
            };
            let file_id = self.slab.id_of(slot);
            let ino = self.slab.free(slot);
            freed += 1;
            match ino.body {
                Body::Dir(d) => {
                    // Children go to the front so a subtree is finished
                    // before the next one starts.
                    for c in d.children.iter().collect::<Vec<_>>().into_iter().rev() {
                        self.reclaim.push_front(c);
                    }
                }
                Body::File(f) => {
                    for b in f.blocks.iter() {
                        self.block_index.remove(&b.id);
                        ev.push(NsEvent::BlockRemoved { id: b.id });
                    }
                    if let Some(l) = self.leases.remove(&slot) {
                        ev.push(NsEvent::LeaseClosed {
                            holder: l.holder,
                            file: file_id,
                        });
                    }
                }
                Body::Free => {}
            }
        }
        self.reclaim_pending = self.reclaim_pending.saturating_sub(freed);
        if self.reclaim.is_empty() {
            self.reclaim_pending = 0;
        }
    }

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

    /// The log clock: the largest stamp applied.
    pub fn clock(&self) -> u64 {
        self.clock
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

pub(crate) fn denied(a: &Access, access: &str, p: &str) -> FsError {
    FsError::PermissionDenied {
        user: a.name.to_string(),
        access: access.to_string(),
        path: p.to_string(),
    }
}

/// Checks a user or group name given to `chown`.
pub(crate) fn validate_name(n: &str) -> Result<(), FsError> {
    if n.is_empty() || n.len() > 255 || n.contains([':', '/', '\0', ' ']) {
        return Err(FsError::InvalidArgument(format!(
            "invalid user or group name {n:?}"
        )));
    }
    Ok(())
}
