//! The namespace: inode tree, files and their block lists, the datanode
//! registry, id counters and the retry cache. Pure and deterministic: the
//! Raft state machine applies log entries to it, and reads consult it.

use crate::command::{AdminState, Op, OpKind};
use crate::retry::RetryCache;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use tdfs_proto::meta::{
    BlockInfo, ContentSummary, DatanodeAddr, FileKind, FileStatus, FsckReport, LocatedBlock,
    LocatedBlocks, MetaRequest, MetaResponse,
};
use tdfs_proto::perm::{new_inode_mode, EXECUTE, READ, STICKY, WRITE};
use tdfs_proto::{path, BlockId, DatanodeId, FsError};

/// Inode id of the root directory.
pub const ROOT: u64 = 1;
/// Replication factors accepted.
pub const MAX_REPLICATION: u16 = 512;
/// Smallest block size accepted.
pub const MIN_BLOCK_SIZE: u64 = 1024;

/// Cluster-wide defaults for new files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Defaults {
    pub replication: u16,
    pub block_size: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            replication: 3,
            block_size: 64 << 20,
        }
    }
}

/// A file or directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inode {
    pub id: u64,
    pub parent: u64,
    pub name: String,
    pub owner: String,
    pub group: String,
    pub mode: u16,
    pub mtime: u64,
    pub atime: u64,
    pub body: Body,
}

/// What distinguishes files from directories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    Dir { children: BTreeMap<String, u64> },
    File(FileMeta),
}

/// A file's replicated metadata.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileMeta {
    pub replication: u16,
    pub block_size: u64,
    pub blocks: Vec<BlockMeta>,
    /// Set while the file is open for writing.
    pub lease: Option<Lease>,
}

/// The writer of a file under construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The client id of the writer.
    pub holder: u64,
    pub user: String,
}

/// A block of a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub id: BlockId,
    pub gen: u64,
    pub len: u64,
    pub sha256: Option<[u8; 32]>,
    /// The length and digest are final (the writer moved past the block).
    pub committed: bool,
    /// The pipeline the block was written to (a hint for lease recovery).
    pub targets: Vec<DatanodeId>,
}

impl BlockMeta {
    pub fn info(&self) -> BlockInfo {
        BlockInfo {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: self.sha256,
        }
    }
}

/// A datanode in the replicated registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatanodeRecord {
    pub addr: String,
    pub http: Option<String>,
    pub admin: AdminState,
}

/// The whole replicated namespace.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Namespace {
    pub inodes: HashMap<u64, Inode>,
    pub next_inode: u64,
    pub next_block: u64,
    pub next_gen: u64,
    pub superuser: String,
    pub supergroup: String,
    pub defaults: Defaults,
    pub datanodes: BTreeMap<DatanodeId, DatanodeRecord>,
    pub retry: RetryCache,
    /// Block id to the inode of the file that owns it (derived, rebuilt on load).
    #[serde(skip)]
    pub block_owner: HashMap<BlockId, u64>,
}

/// What a caller wants to do, for permission checks.
struct Access<'a> {
    user: &'a str,
    superuser: bool,
}

impl Namespace {
    /// An uninitialized namespace; `Init` creates the root.
    pub fn new(defaults: Defaults) -> Self {
        Namespace {
            next_inode: ROOT + 1,
            next_block: 1,
            next_gen: 1,
            defaults,
            ..Default::default()
        }
    }

    pub fn is_initialized(&self) -> bool {
        self.inodes.contains_key(&ROOT)
    }

    /// Rebuilds derived indexes after a snapshot is loaded.
    pub fn rebuild_indexes(&mut self) {
        self.block_owner.clear();
        for ino in self.inodes.values() {
            if let Body::File(f) = &ino.body {
                for b in &f.blocks {
                    self.block_owner.insert(b.id, ino.id);
                }
            }
        }
    }

    /// Applies one operation, consulting and filling the retry cache.
    pub fn apply(&mut self, op: &Op) -> Result<MetaResponse, FsError> {
        if let Some(call) = op.call {
            if let Some(prev) = self.retry.get(call) {
                return prev;
            }
        }
        let r = self.apply_uncached(op);
        if let Some(call) = op.call {
            // A retriable failure (namespace not yet initialized) changed
            // nothing and tells the client to retry with the same call id;
            // remembering it would answer every such retry with the failure.
            if !matches!(&r, Err(e) if e.is_retriable()) {
                self.retry.insert(call, op.now, r.clone());
            }
        }
        r
    }

    fn apply_uncached(&mut self, op: &Op) -> Result<MetaResponse, FsError> {
        match &op.kind {
            OpKind::Init {
                superuser,
                supergroup,
            } => {
                if !self.is_initialized() {
                    self.superuser = superuser.clone();
                    self.supergroup = supergroup.clone();
                    self.inodes.insert(
                        ROOT,
                        Inode {
                            id: ROOT,
                            parent: ROOT,
                            name: String::new(),
                            owner: superuser.clone(),
                            group: supergroup.clone(),
                            mode: 0o755,
                            mtime: op.now,
                            atime: op.now,
                            body: Body::Dir {
                                children: BTreeMap::new(),
                            },
                        },
                    );
                }
                Ok(MetaResponse::Done)
            }
            OpKind::Noop => Ok(MetaResponse::Done),
            OpKind::RegisterDatanode { id, addr, http } => {
                let rec = self
                    .datanodes
                    .entry(id.clone())
                    .or_insert_with(|| DatanodeRecord {
                        addr: addr.clone(),
                        http: http.clone(),
                        admin: AdminState::Normal,
                    });
                rec.addr = addr.clone();
                rec.http = http.clone();
                Ok(MetaResponse::Done)
            }
            OpKind::SetAdminState { id, state } => match self.datanodes.get_mut(id) {
                Some(rec) => {
                    rec.admin = *state;
                    Ok(MetaResponse::Done)
                }
                None => Err(FsError::InvalidArgument(format!("unknown datanode {id}"))),
            },
            OpKind::RecoverLease {
                path,
                last,
                drop_last,
            } => self.recover_lease(path, last.as_ref(), *drop_last, op.now),
            OpKind::Meta { req, targets } => {
                if !self.is_initialized() {
                    return Err(FsError::Unavailable("namespace not initialized".into()));
                }
                self.apply_meta(op, req, targets)
            }
        }
    }

    fn apply_meta(
        &mut self,
        op: &Op,
        req: &MetaRequest,
        targets: &[DatanodeAddr],
    ) -> Result<MetaResponse, FsError> {
        let a = Access {
            user: &op.user,
            superuser: op.user == self.superuser,
        };
        let now = op.now;
        let holder = op.call.map(|c| c.client);
        match req {
            MetaRequest::Mkdirs {
                path,
                mode,
                parents,
            } => self.mkdirs(&a, path, *mode, *parents, now),
            MetaRequest::Create {
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
                self.create(
                    &a,
                    path,
                    *overwrite,
                    *replication,
                    *block_size,
                    *mode,
                    *create_parents,
                    holder,
                    now,
                )
            }
            MetaRequest::Append { path } => {
                let holder = holder.ok_or_else(|| {
                    FsError::InvalidArgument("append needs a client call id".into())
                })?;
                self.append(&a, path, holder, now)
            }
            MetaRequest::AddBlock { path, previous, .. } => {
                self.add_block(&a, path, previous.as_ref(), holder, targets, now)
            }
            MetaRequest::UpdatePipeline { path, block, .. } => {
                self.update_pipeline(path, *block, holder, targets)
            }
            MetaRequest::AbandonBlock { path, block } => self.abandon_block(path, *block, holder),
            MetaRequest::Complete { path, last } => self.complete(path, last.as_ref(), holder, now),
            MetaRequest::RenewLease => Ok(MetaResponse::Done),
            MetaRequest::Delete { path, recursive } => self.delete(&a, path, *recursive, now),
            MetaRequest::Rename { src, dst, into_dir } => self.rename(&a, src, dst, *into_dir, now),
            MetaRequest::SetReplication { path, replication } => {
                self.set_replication(&a, path, *replication)
            }
            MetaRequest::SetPermission { path, mode } => {
                let id = self.resolve(&a, path)?;
                self.check_owner(&a, id, path)?;
                if *mode > 0o1777 {
                    return Err(FsError::InvalidArgument(format!(
                        "mode {mode:o} out of range"
                    )));
                }
                let ino = self.inode_mut(id);
                ino.mode = *mode;
                Ok(MetaResponse::Done)
            }
            MetaRequest::SetOwner { path, owner, group } => {
                let id = self.resolve(&a, path)?;
                self.check_owner(&a, id, path)?;
                if let Some(o) = owner {
                    if !a.superuser && *o != self.inodes[&id].owner {
                        return Err(denied(&a, "SUPERUSER", path));
                    }
                    validate_name(o)?;
                }
                if let Some(g) = group {
                    // Simple identities: a user belongs to the group of its own name.
                    if !a.superuser && g != a.user {
                        return Err(denied(&a, "SUPERUSER", path));
                    }
                    validate_name(g)?;
                }
                let ino = self.inode_mut(id);
                if let Some(o) = owner {
                    ino.owner = o.clone();
                }
                if let Some(g) = group {
                    ino.group = g.clone();
                }
                Ok(MetaResponse::Done)
            }
            MetaRequest::SetTimes { path, mtime, atime } => {
                let id = self.resolve(&a, path)?;
                if self.check(&a, id, WRITE).is_err() {
                    self.check_owner(&a, id, path)?;
                }
                let ino = self.inode_mut(id);
                if let Some(m) = mtime {
                    ino.mtime = *m;
                }
                if let Some(t) = atime {
                    ino.atime = *t;
                }
                Ok(MetaResponse::Done)
            }
            other => Err(FsError::InvalidArgument(format!(
                "{} is not a mutation",
                other.name()
            ))),
        }
    }

    // ------------------------------------------------------------------
    // Reads
    // ------------------------------------------------------------------

    /// Answers a read-only request.
    pub fn read(&self, user: &str, req: &MetaRequest) -> Result<MetaResponse, FsError> {
        if !self.is_initialized() {
            return Err(FsError::Unavailable("namespace not initialized".into()));
        }
        let a = Access {
            user,
            superuser: user == self.superuser,
        };
        match req {
            MetaRequest::GetFileInfo { path } => {
                let id = self.resolve(&a, path)?;
                Ok(MetaResponse::Status(self.status(id)))
            }
            MetaRequest::ListStatus {
                path,
                start_after,
                limit,
            } => {
                let id = self.resolve(&a, path)?;
                match &self.inodes[&id].body {
                    Body::File(_) => Ok(MetaResponse::Listing {
                        entries: vec![self.status(id)],
                        remaining: 0,
                    }),
                    Body::Dir { children } => {
                        self.check(&a, id, READ | EXECUTE)
                            .map_err(|_| denied(&a, "READ_EXECUTE", path))?;
                        let limit = (*limit).clamp(1, 10_000) as usize;
                        let iter: Box<dyn Iterator<Item = (&String, &u64)>> = match start_after {
                            Some(s) => Box::new(children.range::<String, _>((
                                std::ops::Bound::Excluded(s.clone()),
                                std::ops::Bound::Unbounded,
                            ))),
                            None => Box::new(children.iter()),
                        };
                        let mut entries = Vec::new();
                        let mut remaining = 0u64;
                        for (_, cid) in iter {
                            if entries.len() < limit {
                                entries.push(self.status(*cid));
                            } else {
                                remaining += 1;
                            }
                        }
                        Ok(MetaResponse::Listing { entries, remaining })
                    }
                }
            }
            MetaRequest::ContentSummary { path } => {
                let id = self.resolve(&a, path)?;
                let mut sum = ContentSummary::default();
                self.summarize(&a, id, path, &mut sum)?;
                Ok(MetaResponse::Summary(sum))
            }
            MetaRequest::GetBlockLocations { path, offset, len } => {
                let id = self.resolve(&a, path)?;
                let f = self.file(id, path)?;
                self.check(&a, id, READ)
                    .map_err(|_| denied(&a, "READ", path))?;
                Ok(MetaResponse::Blocks(self.locate(f, *offset, *len)))
            }
            MetaRequest::Fsck { path } => {
                let id = self.resolve(&a, path)?;
                let mut r = FsckReport::default();
                self.walk(id, &mut |ino| match &ino.body {
                    Body::Dir { .. } => r.directories += 1,
                    Body::File(f) => {
                        r.files += 1;
                        r.blocks += f.blocks.len() as u64;
                        r.total_size += f.blocks.iter().map(|b| b.len).sum::<u64>();
                    }
                });
                Ok(MetaResponse::Fsck(r))
            }
            other => Err(FsError::InvalidArgument(format!(
                "{} is not a read",
                other.name()
            ))),
        }
    }

    /// Block list of a file for `[offset, offset+len)`, without locations
    /// (the caller fills them from its replica map).
    fn locate(&self, f: &FileMeta, offset: u64, len: u64) -> LocatedBlocks {
        let file_length = file_len(f);
        let end = offset.saturating_add(len);
        let mut blocks = Vec::new();
        let mut pos = 0u64;
        for b in &f.blocks {
            let bstart = pos;
            let bend = pos + b.len;
            pos = bend;
            let overlaps = bstart < end && (bend > offset || (b.len == 0 && bstart >= offset));
            if overlaps {
                blocks.push(LocatedBlock {
                    block: b.info(),
                    offset: bstart,
                    locations: Vec::new(),
                    token: None,
                });
            }
        }
        LocatedBlocks {
            file_length,
            blocks,
            under_construction: f.lease.is_some(),
        }
    }

    /// Calls `f` on `id` and every inode below it.
    pub fn walk(&self, id: u64, f: &mut dyn FnMut(&Inode)) {
        let mut stack = vec![id];
        while let Some(i) = stack.pop() {
            let ino = &self.inodes[&i];
            f(ino);
            if let Body::Dir { children } = &ino.body {
                stack.extend(children.values().copied());
            }
        }
    }

    fn summarize(
        &self,
        a: &Access,
        id: u64,
        path: &str,
        sum: &mut ContentSummary,
    ) -> Result<(), FsError> {
        let mut denied_at = None;
        self.walk(id, &mut |ino| match &ino.body {
            Body::Dir { .. } => {
                sum.directory_count += 1;
                if denied_at.is_none() && self.check_inode(a, ino, READ | EXECUTE).is_err() {
                    denied_at = Some(ino.id);
                }
            }
            Body::File(f) => {
                sum.file_count += 1;
                let l = file_len(f);
                sum.length += l;
                sum.space_consumed += l * f.replication as u64;
            }
        });
        match denied_at {
            Some(_) => Err(denied(a, "READ_EXECUTE", path)),
            None => Ok(()),
        }
    }

    /// The status of an inode.
    pub fn status(&self, id: u64) -> FileStatus {
        let ino = &self.inodes[&id];
        let (kind, length, replication, block_size, children, uc) = match &ino.body {
            Body::Dir { children } => (FileKind::Dir, 0, 0, 0, children.len() as u64, false),
            Body::File(f) => (
                FileKind::File,
                file_len(f),
                f.replication,
                f.block_size,
                0,
                f.lease.is_some(),
            ),
        };
        FileStatus {
            name: ino.name.clone(),
            inode: id,
            kind,
            length,
            replication,
            block_size,
            mtime: ino.mtime,
            atime: ino.atime,
            owner: ino.owner.clone(),
            group: ino.group.clone(),
            mode: ino.mode,
            children,
            under_construction: uc,
        }
    }

    /// The canonical path of an inode.
    pub fn path_of(&self, mut id: u64) -> String {
        let mut parts = Vec::new();
        while id != ROOT {
            let ino = &self.inodes[&id];
            parts.push(ino.name.as_str());
            id = ino.parent;
        }
        parts.reverse();
        path::join(&parts)
    }

    /// The file owning a block, with the block's index in it.
    pub fn block_file(&self, block: BlockId) -> Option<(u64, usize)> {
        let ino = *self.block_owner.get(&block)?;
        match &self.inodes.get(&ino)?.body {
            Body::File(f) => f
                .blocks
                .iter()
                .position(|b| b.id == block)
                .map(|i| (ino, i)),
            Body::Dir { .. } => None,
        }
    }

    // ------------------------------------------------------------------
    // Resolution and permissions
    // ------------------------------------------------------------------

    /// Resolves a path for `user` (traverse checks included).
    pub fn lookup(&self, user: &str, p: &str) -> Result<u64, FsError> {
        let a = Access {
            user,
            superuser: user == self.superuser,
        };
        self.resolve(&a, p)
    }

    /// Resolves a path to an inode, checking EXECUTE on every ancestor.
    fn resolve(&self, a: &Access, p: &str) -> Result<u64, FsError> {
        let comps = path::components(p)?;
        self.resolve_comps(a, p, &comps)
    }

    fn resolve_comps(&self, a: &Access, p: &str, comps: &[&str]) -> Result<u64, FsError> {
        let mut cur = ROOT;
        for (i, c) in comps.iter().enumerate() {
            let ino = &self.inodes[&cur];
            match &ino.body {
                Body::Dir { children } => {
                    if self.check_inode(a, ino, EXECUTE).is_err() {
                        return Err(denied(a, "EXECUTE", &path::join(&comps[..i])));
                    }
                    cur = *children
                        .get(*c)
                        .ok_or_else(|| FsError::FileNotFound(p.to_string()))?;
                }
                Body::File(_) => {
                    return Err(FsError::NotADirectory(path::join(&comps[..i])));
                }
            }
        }
        Ok(cur)
    }

    /// Resolves the parent directory of `p` and returns it with the last name.
    fn resolve_parent<'p>(&self, a: &Access, p: &'p str) -> Result<(u64, &'p str), FsError> {
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
        if !matches!(self.inodes[&pid].body, Body::Dir { .. }) {
            return Err(FsError::NotADirectory(path::join(parent)));
        }
        Ok((pid, last))
    }

    fn check(&self, a: &Access, id: u64, want: u16) -> Result<(), ()> {
        self.check_inode(a, &self.inodes[&id], want)
    }

    fn check_inode(&self, a: &Access, ino: &Inode, want: u16) -> Result<(), ()> {
        if a.superuser {
            return Ok(());
        }
        let bits = if ino.owner == a.user {
            (ino.mode >> 6) & 7
        } else if ino.group == a.user {
            (ino.mode >> 3) & 7
        } else {
            ino.mode & 7
        };
        if bits & want == want {
            Ok(())
        } else {
            Err(())
        }
    }

    fn check_owner(&self, a: &Access, id: u64, p: &str) -> Result<(), FsError> {
        if a.superuser || self.inodes[&id].owner == a.user {
            Ok(())
        } else {
            Err(denied(a, "OWNER", p))
        }
    }

    /// WRITE|EXECUTE on the parent, and the sticky-bit rule for the child.
    fn check_modify_parent(
        &self,
        a: &Access,
        parent: u64,
        child: Option<u64>,
        p: &str,
    ) -> Result<(), FsError> {
        let pino = &self.inodes[&parent];
        if self.check_inode(a, pino, WRITE | EXECUTE).is_err() {
            return Err(denied(a, "WRITE", &self.path_of(parent)));
        }
        if let Some(c) = child {
            if pino.mode & STICKY != 0
                && !a.superuser
                && pino.owner != a.user
                && self.inodes[&c].owner != a.user
            {
                return Err(denied(a, "WRITE (sticky bit)", p));
            }
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Mutations
    // ------------------------------------------------------------------

    fn alloc_inode(&mut self) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        id
    }

    fn inode_mut(&mut self, id: u64) -> &mut Inode {
        self.inodes.get_mut(&id).expect("resolved inode exists")
    }

    fn children_mut(&mut self, id: u64) -> &mut BTreeMap<String, u64> {
        match &mut self.inode_mut(id).body {
            Body::Dir { children } => children,
            Body::File(_) => unreachable!("checked to be a directory"),
        }
    }

    fn add_child(&mut self, parent: u64, name: &str, mut ino: Inode, now: u64) -> u64 {
        let id = ino.id;
        ino.parent = parent;
        ino.name = name.to_string();
        self.inodes.insert(id, ino);
        self.children_mut(parent).insert(name.to_string(), id);
        let p = self.inode_mut(parent);
        p.mtime = now;
        id
    }

    fn new_dir(&mut self, a: &Access, parent: u64, mode: u16, now: u64) -> Inode {
        Inode {
            id: self.alloc_inode(),
            parent,
            name: String::new(),
            owner: a.user.to_string(),
            group: self.inodes[&parent].group.clone(),
            mode,
            mtime: now,
            atime: now,
            body: Body::Dir {
                children: BTreeMap::new(),
            },
        }
    }

    fn mkdirs(
        &mut self,
        a: &Access,
        p: &str,
        mode: Option<u16>,
        parents: bool,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let comps = path::components(p)?;
        let mode = new_inode_mode(mode, 0o777);
        // Walk down the existing prefix.
        let mut cur = ROOT;
        let mut i = 0;
        while i < comps.len() {
            let ino = &self.inodes[&cur];
            let Body::Dir { children } = &ino.body else {
                return Err(FsError::NotADirectory(path::join(&comps[..i])));
            };
            if self.check_inode(a, ino, EXECUTE).is_err() {
                return Err(denied(a, "EXECUTE", &path::join(&comps[..i])));
            }
            match children.get(comps[i]) {
                Some(&c) => {
                    cur = c;
                    i += 1;
                }
                None => break,
            }
        }
        if i == comps.len() {
            return match (&self.inodes[&cur].body, parents) {
                (Body::Dir { .. }, true) => Ok(MetaResponse::Bool(true)),
                (Body::Dir { .. }, false) => Err(FsError::AlreadyExists(p.to_string())),
                (Body::File(_), _) => Err(FsError::AlreadyExists(p.to_string())),
            };
        }
        if !matches!(self.inodes[&cur].body, Body::Dir { .. }) {
            return Err(FsError::NotADirectory(path::join(&comps[..i])));
        }
        if !parents && i + 1 < comps.len() {
            return Err(FsError::FileNotFound(path::join(&comps[..comps.len() - 1])));
        }
        self.check_modify_parent(a, cur, None, p)?;
        for (j, c) in comps.iter().enumerate().skip(i) {
            // Intermediate directories get u+wx so that the caller can go on.
            let m = if j + 1 == comps.len() {
                mode
            } else {
                mode | 0o300
            };
            let dir = self.new_dir(a, cur, m, now);
            cur = self.add_child(cur, c, dir, now);
        }
        Ok(MetaResponse::Bool(true))
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        a: &Access,
        p: &str,
        overwrite: bool,
        replication: Option<u16>,
        block_size: Option<u64>,
        mode: Option<u16>,
        create_parents: bool,
        holder: u64,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let replication = replication.unwrap_or(self.defaults.replication);
        if replication == 0 || replication > MAX_REPLICATION {
            return Err(FsError::InvalidArgument(format!(
                "replication {replication} is outside 1..={MAX_REPLICATION}"
            )));
        }
        let block_size = block_size.unwrap_or(self.defaults.block_size);
        if block_size < MIN_BLOCK_SIZE {
            return Err(FsError::InvalidArgument(format!(
                "block size {block_size} is below the minimum of {MIN_BLOCK_SIZE}"
            )));
        }
        let comps = path::components(p)?;
        if comps.is_empty() {
            return Err(FsError::AlreadyExists("/".into()));
        }
        if create_parents {
            let parent = path::join(&comps[..comps.len() - 1]);
            if parent != "/" {
                self.mkdirs(a, &parent, None, true, now)?;
            }
        }
        let (pid, name) = self.resolve_parent(a, p)?;
        let existing = match &self.inodes[&pid].body {
            Body::Dir { children } => children.get(name).copied(),
            Body::File(_) => unreachable!(),
        };
        self.check_modify_parent(a, pid, existing, p)?;
        if let Some(old) = existing {
            match &self.inodes[&old].body {
                Body::Dir { .. } => return Err(FsError::AlreadyExists(p.to_string())),
                Body::File(f) => {
                    if let Some(l) = &f.lease {
                        if l.holder != holder {
                            return Err(FsError::LeaseConflict {
                                path: p.to_string(),
                                holder: l.user.clone(),
                            });
                        }
                    }
                    if !overwrite {
                        return Err(FsError::AlreadyExists(p.to_string()));
                    }
                }
            }
            self.remove_subtree(pid, name, old);
        }
        let id = self.alloc_inode();
        let ino = Inode {
            id,
            parent: pid,
            name: String::new(),
            owner: a.user.to_string(),
            group: self.inodes[&pid].group.clone(),
            mode: new_inode_mode(mode, 0o666),
            mtime: now,
            atime: now,
            body: Body::File(FileMeta {
                replication,
                block_size,
                blocks: Vec::new(),
                lease: Some(Lease {
                    holder,
                    user: a.user.to_string(),
                }),
            }),
        };
        self.add_child(pid, name, ino, now);
        Ok(MetaResponse::Status(self.status(id)))
    }

    fn append(
        &mut self,
        a: &Access,
        p: &str,
        holder: u64,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let id = self.resolve(a, p)?;
        self.check(a, id, WRITE)
            .map_err(|_| denied(a, "WRITE", p))?;
        let ino = self.inode_mut(id);
        let Body::File(f) = &mut ino.body else {
            return Err(FsError::IsADirectory(p.to_string()));
        };
        if let Some(l) = &f.lease {
            if l.holder != holder {
                return Err(FsError::LeaseConflict {
                    path: p.to_string(),
                    holder: l.user.clone(),
                });
            }
        }
        f.lease = Some(Lease {
            holder,
            user: a.user.to_string(),
        });
        ino.mtime = now;
        // Appended data goes into new blocks (HDFS's NEW_BLOCK append): a
        // finalized replica is never reopened, so its digest stays valid.
        Ok(MetaResponse::Appended {
            status: self.status(id),
            last: None,
        })
    }

    /// Finds a file under construction by `holder`.
    fn uc_file(&mut self, p: &str, holder: Option<u64>) -> Result<(u64, &mut FileMeta), FsError> {
        let comps = path::components(p)?;
        let a = Access {
            user: "",
            superuser: true,
        };
        let id = self.resolve_comps(&a, p, &comps)?;
        let ino = self.inode_mut(id);
        let Body::File(f) = &mut ino.body else {
            return Err(FsError::IsADirectory(p.to_string()));
        };
        match (&f.lease, holder) {
            (Some(l), Some(h)) if l.holder == h => Ok((id, f)),
            _ => Err(FsError::LeaseExpired(p.to_string())),
        }
    }

    fn add_block(
        &mut self,
        _a: &Access,
        p: &str,
        previous: Option<&BlockInfo>,
        holder: Option<u64>,
        targets: &[DatanodeAddr],
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let id = self.next_block;
        let gen = self.next_gen;
        let (ino, f) = self.uc_file(p, holder)?;
        commit_last(f, previous, p)?;
        let offset = file_len(f);
        f.blocks.push(BlockMeta {
            id,
            gen,
            len: 0,
            sha256: None,
            committed: false,
            targets: targets.iter().map(|t| t.id.clone()).collect(),
        });
        self.next_block += 1;
        self.next_gen += 1;
        self.block_owner.insert(id, ino);
        self.inode_mut(ino).mtime = now;
        Ok(MetaResponse::Block(LocatedBlock {
            block: BlockInfo {
                id,
                gen,
                len: 0,
                sha256: None,
            },
            offset,
            locations: targets.to_vec(),
            token: None,
        }))
    }

    fn update_pipeline(
        &mut self,
        p: &str,
        block: BlockId,
        holder: Option<u64>,
        targets: &[DatanodeAddr],
    ) -> Result<MetaResponse, FsError> {
        let gen = self.next_gen;
        let (_, f) = self.uc_file(p, holder)?;
        let offset = file_len(f) - f.blocks.last().map(|b| b.len).unwrap_or(0);
        let Some(b) = f.blocks.last_mut().filter(|b| b.id == block) else {
            return Err(FsError::BlockNotFound(block));
        };
        b.gen = gen;
        b.committed = false;
        b.targets = targets.iter().map(|t| t.id.clone()).collect();
        let info = b.info();
        self.next_gen += 1;
        Ok(MetaResponse::Block(LocatedBlock {
            block: info,
            offset,
            locations: targets.to_vec(),
            token: None,
        }))
    }

    fn abandon_block(
        &mut self,
        p: &str,
        block: BlockId,
        holder: Option<u64>,
    ) -> Result<MetaResponse, FsError> {
        let (_, f) = self.uc_file(p, holder)?;
        match f.blocks.last() {
            Some(b) if b.id == block && !b.committed => {
                f.blocks.pop();
                self.block_owner.remove(&block);
                Ok(MetaResponse::Done)
            }
            _ => Err(FsError::BlockNotFound(block)),
        }
    }

    fn complete(
        &mut self,
        p: &str,
        last: Option<&BlockInfo>,
        holder: Option<u64>,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let (ino, f) = self.uc_file(p, holder)?;
        commit_last(f, last, p)?;
        if f.blocks.iter().any(|b| !b.committed) {
            return Err(FsError::InvalidArgument(format!(
                "{p}: the last block was not committed"
            )));
        }
        f.lease = None;
        self.inode_mut(ino).mtime = now;
        Ok(MetaResponse::Bool(true))
    }

    fn recover_lease(
        &mut self,
        p: &str,
        last: Option<&BlockInfo>,
        drop_last: bool,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let a = Access {
            user: "",
            superuser: true,
        };
        let id = self.resolve(&a, p)?;
        let ino = self.inode_mut(id);
        let Body::File(f) = &mut ino.body else {
            return Err(FsError::IsADirectory(p.to_string()));
        };
        if f.lease.is_none() {
            return Ok(MetaResponse::Bool(false));
        }
        let mut dropped = None;
        if drop_last {
            if let Some(b) = f.blocks.last() {
                if !b.committed {
                    dropped = Some(b.id);
                    f.blocks.pop();
                }
            }
        } else if let Some(info) = last {
            if let Some(b) = f.blocks.last_mut().filter(|b| b.id == info.id) {
                b.len = info.len;
                b.gen = info.gen;
                b.sha256 = info.sha256;
                b.committed = true;
            }
        }
        f.blocks.retain(|b| b.committed);
        f.lease = None;
        ino.mtime = now;
        if let Some(d) = dropped {
            self.block_owner.remove(&d);
        }
        Ok(MetaResponse::Bool(true))
    }

    fn delete(
        &mut self,
        a: &Access,
        p: &str,
        recursive: bool,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let (pid, name) = self.resolve_parent(a, p)?;
        let Some(id) = self.child_of(pid, name) else {
            return Err(FsError::FileNotFound(p.to_string()));
        };
        self.check_modify_parent(a, pid, Some(id), p)?;
        if let Body::Dir { children } = &self.inodes[&id].body {
            if !children.is_empty() {
                if !recursive {
                    return Err(FsError::DirectoryNotEmpty(p.to_string()));
                }
                // As HDFS: deleting a subtree needs full access to every directory in it.
                let mut bad = None;
                self.walk(id, &mut |ino| {
                    if bad.is_none()
                        && matches!(ino.body, Body::Dir { .. })
                        && self.check_inode(a, ino, READ | WRITE | EXECUTE).is_err()
                    {
                        bad = Some(ino.id);
                    }
                });
                if let Some(b) = bad {
                    return Err(denied(a, "ALL", &self.path_of(b)));
                }
            }
        }
        self.remove_subtree(pid, name, id);
        self.inode_mut(pid).mtime = now;
        Ok(MetaResponse::Bool(true))
    }

    fn child_of(&self, dir: u64, name: &str) -> Option<u64> {
        match &self.inodes[&dir].body {
            Body::Dir { children } => children.get(name).copied(),
            Body::File(_) => None,
        }
    }

    /// Unlinks a subtree and forgets its inodes and blocks. Replicas of the
    /// forgotten blocks become orphans, which the leader deletes lazily.
    fn remove_subtree(&mut self, parent: u64, name: &str, id: u64) {
        self.children_mut(parent).remove(name);
        let mut stack = vec![id];
        while let Some(i) = stack.pop() {
            if let Some(ino) = self.inodes.remove(&i) {
                match ino.body {
                    Body::Dir { children } => stack.extend(children.into_values()),
                    Body::File(f) => {
                        for b in f.blocks {
                            self.block_owner.remove(&b.id);
                        }
                    }
                }
            }
        }
    }

    fn rename(
        &mut self,
        a: &Access,
        src: &str,
        dst: &str,
        into_dir: bool,
        now: u64,
    ) -> Result<MetaResponse, FsError> {
        let src = path::normalize(src)?;
        let mut dst = path::normalize(dst)?;
        if src == "/" {
            return Err(FsError::InvalidArgument("cannot rename the root".into()));
        }
        let (spid, sname) = self.resolve_parent(a, &src)?;
        let Some(sid) = self.child_of(spid, sname) else {
            return Err(FsError::FileNotFound(src.clone()));
        };
        if into_dir {
            if let Ok(did) = self.resolve(a, &dst) {
                if matches!(self.inodes[&did].body, Body::Dir { .. }) {
                    dst = path::child(&dst, sname);
                }
            }
        }
        if dst == src {
            return Ok(MetaResponse::Bool(true));
        }
        if path::is_within(&dst, &src) {
            return Err(FsError::InvalidArgument(format!(
                "cannot move {src} into its own subtree {dst}"
            )));
        }
        let (dpid, dname) = self.resolve_parent(a, &dst)?;
        if self.child_of(dpid, dname).is_some() {
            return Err(FsError::AlreadyExists(dst.clone()));
        }
        self.check_modify_parent(a, spid, Some(sid), &src)?;
        self.check_modify_parent(a, dpid, None, &dst)?;
        self.children_mut(spid).remove(sname);
        self.inode_mut(spid).mtime = now;
        self.children_mut(dpid).insert(dname.to_string(), sid);
        self.inode_mut(dpid).mtime = now;
        let ino = self.inode_mut(sid);
        ino.parent = dpid;
        ino.name = dname.to_string();
        Ok(MetaResponse::Bool(true))
    }

    fn set_replication(
        &mut self,
        a: &Access,
        p: &str,
        replication: u16,
    ) -> Result<MetaResponse, FsError> {
        if replication == 0 || replication > MAX_REPLICATION {
            return Err(FsError::InvalidArgument(format!(
                "replication {replication} is outside 1..={MAX_REPLICATION}"
            )));
        }
        let id = self.resolve(a, p)?;
        self.check(a, id, WRITE)
            .map_err(|_| denied(a, "WRITE", p))?;
        match &mut self.inode_mut(id).body {
            Body::File(f) => {
                f.replication = replication;
                Ok(MetaResponse::Bool(true))
            }
            Body::Dir { .. } => Ok(MetaResponse::Bool(false)),
        }
    }

    fn file<'s>(&'s self, id: u64, p: &str) -> Result<&'s FileMeta, FsError> {
        match &self.inodes[&id].body {
            Body::File(f) => Ok(f),
            Body::Dir { .. } => Err(FsError::IsADirectory(p.to_string())),
        }
    }

    /// Every file with its inode, for the leader's block policies.
    pub fn files(&self) -> impl Iterator<Item = (&Inode, &FileMeta)> {
        self.inodes.values().filter_map(|i| match &i.body {
            Body::File(f) => Some((i, f)),
            Body::Dir { .. } => None,
        })
    }
}

/// Commits the last block of a file with the length and digest the writer reports.
fn commit_last(f: &mut FileMeta, last: Option<&BlockInfo>, p: &str) -> Result<(), FsError> {
    match (f.blocks.last_mut(), last) {
        (None, None) => Ok(()),
        (Some(b), Some(info)) if b.id == info.id => {
            if info.len > f.block_size {
                return Err(FsError::InvalidArgument(format!(
                    "block {} length {} exceeds the block size {}",
                    info.id, info.len, f.block_size
                )));
            }
            b.len = info.len;
            b.gen = info.gen.max(b.gen);
            b.sha256 = info.sha256;
            b.committed = true;
            Ok(())
        }
        (Some(b), None) if b.committed => Ok(()),
        (Some(b), _) => Err(FsError::InvalidArgument(format!(
            "{p}: the last block is {}, but the client reported another",
            b.id
        ))),
        (None, Some(info)) => Err(FsError::BlockNotFound(info.id)),
    }
}

/// A file's length: the sum of its blocks.
pub fn file_len(f: &FileMeta) -> u64 {
    f.blocks.iter().map(|b| b.len).sum()
}

fn denied(a: &Access, access: &str, p: &str) -> FsError {
    FsError::PermissionDenied {
        user: a.user.to_string(),
        access: access.to_string(),
        path: p.to_string(),
    }
}

fn validate_name(n: &str) -> Result<(), FsError> {
    if n.is_empty() || n.len() > 255 || n.contains([':', '/', '\0', ' ']) {
        return Err(FsError::InvalidArgument(format!(
            "invalid user or group name {n:?}"
        )));
    }
    Ok(())
}
