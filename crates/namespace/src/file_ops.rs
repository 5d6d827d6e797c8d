//! Operations on files: create, append, the block life cycle under a lease
//! (add, pipeline update, abandon, complete) and lease recovery.

use crate::inode::{flags, Block, Delta, File, Inode};
use crate::ns::{Lease, Namespace, MAX_BLOCK_SIZE, MAX_REPLICATION, MIN_BLOCK_SIZE};
use crate::op::{NsEvent, Outcome};
use crate::perm::Access;
use crate::slab::Slot;
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::perm::WRITE;
use tdfs_proto::{path, BlockId, DatanodeId, FsError};

/// Mode of parent directories that `create` makes.
const PARENT_MODE: u16 = 0o755;

/// The settings of a new file.
pub(crate) struct CreateArgs {
    pub overwrite: bool,
    pub replication: u16,
    pub block_size: u64,
    pub mode: u16,
    pub create_parents: bool,
}

/// Checks a replication factor and block size for a new file.
pub fn check_file_params(replication: u16, block_size: u64) -> Result<(), FsError> {
    if replication == 0 || replication > MAX_REPLICATION {
        return Err(FsError::InvalidArgument(format!(
            "replication {replication} is outside 1..={MAX_REPLICATION}"
        )));
    }
    if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(FsError::InvalidArgument(format!(
            "block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}"
        )));
    }
    Ok(())
}

impl Namespace {
    pub(crate) fn create(
        &mut self,
        a: &Access,
        p: &str,
        o: &CreateArgs,
        holder: u64,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        check_file_params(o.replication, o.block_size)?;
        let comps = path::components(p)?;
        if comps.is_empty() {
            return Err(FsError::AlreadyExists("/".into()));
        }
        if o.create_parents && comps.len() > 1 {
            let parent = path::join(&comps[..comps.len() - 1]);
            self.mkdirs(a, &parent, PARENT_MODE, true, now)?;
        }
        let (pid, name) = self.resolve_parent(a, p)?;
        let existing = self.child_of(pid, name);
        self.check_modify_parent(a, pid, existing, p)?;
        if let Some(old) = existing {
            let ino = self.slab.at(old);
            if ino.is_dir() {
                return Err(FsError::AlreadyExists(p.to_string()));
            }
            if let Some(l) = self.leases.get(&old) {
                if l.holder != holder {
                    return Err(FsError::LeaseConflict {
                        path: p.to_string(),
                        holder: self.strings.get(l.user).to_string(),
                    });
                }
            }
            if !o.overwrite {
                return Err(FsError::AlreadyExists(p.to_string()));
            }
            self.check_not_truncating(old, p)?;
            self.remove_child(pid, name, now, ev).expect("exists");
        } else {
            let one = Delta {
                files: 1,
                ..Delta::default()
            };
            self.check_quota(pid, one, None)?;
        }
        let owner = self.owner_id(a)?;
        let group = self.slab.at(pid).group;
        let mut ino = Inode::new_file(
            name,
            pid,
            owner,
            group,
            o.mode & 0o1777,
            now,
            o.replication,
            o.block_size,
        );
        ino.set(flags::UNDER_CONSTRUCTION, true);
        let pos = self.find_child(pid, name).expect_err("absent");
        let slot = self.link_new(pid, pos, ino, now)?;
        self.open_lease(slot, holder, owner, ev);
        Ok(Outcome::Status(self.status(slot)))
    }

    fn open_lease(&mut self, slot: Slot, holder: u64, user: u32, ev: &mut Vec<NsEvent>) {
        self.leases.insert(
            slot,
            Lease {
                holder,
                user,
                targets: Vec::new(),
            },
        );
        self.slab.at_mut(slot).set(flags::UNDER_CONSTRUCTION, true);
        ev.push(NsEvent::LeaseOpened {
            holder,
            file: self.slab.id_of(slot),
        });
    }

    fn close_lease(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        if let Some(l) = self.leases.remove(&slot) {
            ev.push(NsEvent::LeaseClosed {
                holder: l.holder,
                file: self.slab.id_of(slot),
            });
        }
        self.slab.at_mut(slot).set(flags::UNDER_CONSTRUCTION, false);
    }

    pub(crate) fn append(
        &mut self,
        a: &Access,
        p: &str,
        holder: u64,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let id = self.resolve(a, p)?;
        self.check(a, id, WRITE, p)?;
        if self.slab.at(id).is_dir() {
            return Err(FsError::IsADirectory(p.to_string()));
        }
        self.check_not_truncating(id, p)?;
        // The next block will need a whole block's space (HDFS checks the
        // block an append opens).
        let f = self.slab.at(id).file().expect("a file");
        let block = Delta {
            space: (f.block_size() * f.replication() as u64) as i64,
            ..Delta::default()
        };
        self.check_quota(self.slab.at(id).parent, block, None)?;
        if let Some(l) = self.leases.get(&id) {
            if l.holder != holder {
                return Err(FsError::LeaseConflict {
                    path: p.to_string(),
                    holder: self.strings.get(l.user).to_string(),
                });
            }
        } else {
            let user = self.owner_id(a)?;
            self.open_lease(id, holder, user, ev);
        }
        self.save_attrs(id);
        self.slab.at_mut(id).mtime = now;
        // Appended data goes into new blocks (HDFS's NEW_BLOCK append): a
        // finalized replica is never reopened, so its digest stays valid.
        Ok(Outcome::Status(self.status(id)))
    }

    /// The file at `p` under construction by `holder`.
    /// Its attributes are recorded for a snapshot first: every caller
    /// changes it.
    fn uc_file(&mut self, p: &str, holder: Option<u64>) -> Result<Slot, FsError> {
        let id = self.resolve(&Access::system(), p)?;
        if self.slab.at(id).is_dir() {
            return Err(FsError::IsADirectory(p.to_string()));
        }
        match (self.leases.get(&id), holder) {
            (Some(l), Some(h)) if l.holder == h => {
                self.save_attrs(id);
                Ok(id)
            }
            _ => Err(FsError::LeaseExpired(p.to_string())),
        }
    }

    /// Applies `f` to the file in `slot` and carries the change of its
    /// usage up the tree. A detached file (deleted, kept by a snapshot) is
    /// in no directory's usage, and its old parent may be freed.
    pub(crate) fn update_file<R>(&mut self, slot: Slot, f: impl FnOnce(&mut Inode) -> R) -> R {
        let ino = self.slab.at_mut(slot);
        let before = ino.usage();
        let r = f(ino);
        let after = ino.usage();
        let parent = ino.parent;
        if !ino.has(flags::DETACHED) {
            self.propagate(parent, Delta::of(&after) - Delta::of(&before));
        }
        r
    }

    pub(crate) fn add_block(
        &mut self,
        p: &str,
        previous: Option<&BlockInfo>,
        holder: Option<u64>,
        targets: &[DatanodeId],
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.uc_file(p, holder)?;
        self.check_block_quota(slot, previous)?;
        self.commit_last(slot, previous, p, ev)?;
        let (id, gen) = (self.next_block, self.next_gen);
        self.next_block += 1;
        self.next_gen += 1;
        let (offset, replication, block_size) = self.update_file(slot, |ino| {
            ino.mtime = now;
            ino.set(flags::LAST_OPEN, true);
            let f = ino.file_mut().expect("a file");
            let offset = f.len();
            f.push_block(Block {
                id,
                gen,
                len: 0,
                sha256: [0; 32],
            });
            (offset, f.replication(), f.block_size())
        });
        self.block_index.insert(id, slot);
        if let Some(l) = self.leases.get_mut(&slot) {
            l.targets = targets.to_vec();
        }
        ev.push(NsEvent::BlockOpen {
            id,
            gen,
            replication,
            block_size,
        });
        Ok(Outcome::Block {
            block: BlockInfo {
                id,
                gen,
                len: 0,
                sha256: None,
            },
            offset,
            targets: targets.to_vec(),
        })
    }

    pub(crate) fn update_pipeline(
        &mut self,
        p: &str,
        block: BlockId,
        holder: Option<u64>,
        targets: &[DatanodeId],
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.uc_file(p, holder)?;
        let gen = self.next_gen;
        let found = self.update_file(slot, |ino| {
            let f = ino.file_mut().expect("a file");
            let len = f.len();
            let (repl, bs) = (f.replication(), f.block_size());
            let b = f.blocks.last_mut().filter(|b| b.id == block)?;
            b.gen = gen;
            let info = b.info();
            ino.set(flags::LAST_OPEN, true);
            let offset = len - info.len;
            Some((info, offset, repl, bs))
        });
        let Some((info, offset, replication, block_size)) = found else {
            return Err(FsError::BlockNotFound(block));
        };
        self.next_gen += 1;
        if let Some(l) = self.leases.get_mut(&slot) {
            l.targets = targets.to_vec();
        }
        ev.push(NsEvent::BlockOpen {
            id: block,
            gen,
            replication,
            block_size,
        });
        Ok(Outcome::Block {
            block: info,
            offset,
            targets: targets.to_vec(),
        })
    }

    pub(crate) fn abandon_block(
        &mut self,
        p: &str,
        block: BlockId,
        holder: Option<u64>,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.uc_file(p, holder)?;
        let ino = self.slab.at(slot);
        let open = ino.has(flags::LAST_OPEN);
        let last = ino.file().and_then(|f| f.blocks.last()).map(|b| b.id);
        if !open || last != Some(block) {
            return Err(FsError::BlockNotFound(block));
        }
        self.update_file(slot, |ino| {
            ino.set(flags::LAST_OPEN, false);
            ino.file_mut().expect("a file").pop_block();
        });
        self.block_index.remove(&block);
        ev.push(NsEvent::BlockRemoved { id: block });
        Ok(Outcome::Done)
    }

    pub(crate) fn complete(
        &mut self,
        p: &str,
        last: Option<&BlockInfo>,
        holder: Option<u64>,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.uc_file(p, holder)?;
        self.commit_last(slot, last, p, ev)?;
        if self.slab.at(slot).has(flags::LAST_OPEN) {
            return Err(FsError::InvalidArgument(format!(
                "{p}: the last block was not committed"
            )));
        }
        self.close_lease(slot, ev);
        self.slab.at_mut(slot).mtime = now;
        Ok(Outcome::Bool(true))
    }

    /// Commits the last block of a file with the length and digest the
    /// writer reports.
    fn commit_last(
        &mut self,
        slot: Slot,
        last: Option<&BlockInfo>,
        p: &str,
        ev: &mut Vec<NsEvent>,
    ) -> Result<(), FsError> {
        let ino = self.slab.at(slot);
        let open = ino.has(flags::LAST_OPEN);
        let f = ino.file().expect("a file");
        let cur = f.blocks.last().copied();
        match (cur, last) {
            (None, None) => Ok(()),
            (Some(b), Some(info)) if b.id == info.id => {
                if info.len > f.block_size() {
                    return Err(FsError::InvalidArgument(format!(
                        "block {} length {} exceeds the block size {}",
                        info.id,
                        info.len,
                        f.block_size()
                    )));
                }
                let replication = f.replication();
                let gen = info.gen.max(b.gen);
                self.update_file(slot, |ino| {
                    ino.set(flags::LAST_OPEN, false);
                    let f = ino.file_mut().expect("a file");
                    let b = f.blocks.last_mut().expect("has a block");
                    b.len = info.len;
                    b.gen = gen;
                    b.sha256 = info.sha256.unwrap_or([0; 32]);
                });
                ev.push(NsEvent::BlockCommitted {
                    id: b.id,
                    gen,
                    len: info.len,
                    replication,
                });
                Ok(())
            }
            (Some(_), None) if !open => Ok(()),
            (Some(b), _) => Err(FsError::InvalidArgument(format!(
                "{p}: the last block is {}, but the client reported another",
                b.id
            ))),
            (None, Some(info)) => Err(FsError::BlockNotFound(info.id)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recover_lease(
        &mut self,
        p: &str,
        holder: u64,
        expect: Option<(BlockId, u64)>,
        last: Option<&BlockInfo>,
        drop_last: bool,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.resolve(&Access::system(), p)?;
        if self.slab.at(slot).is_dir() {
            return Err(FsError::IsADirectory(p.to_string()));
        }
        // Compare and set: the file must still be what the decision saw.
        let ino = self.slab.at(slot);
        let open_block = ino
            .has(flags::LAST_OPEN)
            .then(|| {
                ino.file()
                    .and_then(|f| f.blocks.last())
                    .map(|b| (b.id, b.gen))
            })
            .flatten();
        let same_holder = self.leases.get(&slot).is_some_and(|l| l.holder == holder);
        if !same_holder || open_block != expect {
            return Ok(Outcome::Bool(false));
        }
        self.save_attrs(slot);
        if let (Some((id, _)), false, Some(info)) = (open_block, drop_last, last) {
            if info.id == id {
                self.commit_last(slot, Some(info), p, ev)?;
            }
        }
        if self.slab.at(slot).has(flags::LAST_OPEN) {
            let dropped = self.update_file(slot, |ino| {
                ino.set(flags::LAST_OPEN, false);
                ino.file_mut().expect("a file").pop_block()
            });
            if let Some(b) = dropped {
                self.block_index.remove(&b.id);
                ev.push(NsEvent::BlockRemoved { id: b.id });
            }
        }
        self.close_lease(slot, ev);
        self.slab.at_mut(slot).mtime = now;
        Ok(Outcome::Bool(true))
    }
}

impl Namespace {
    /// A new block is charged a whole block times replication until it is
    /// committed (the previous one, committed now, gives back its unused
    /// part): refused if that exceeds a space quota.
    fn check_block_quota(&self, slot: Slot, previous: Option<&BlockInfo>) -> Result<(), FsError> {
        let ino = self.slab.at(slot);
        let f = ino.file().expect("a file");
        let (bs, r) = (f.block_size() as i64, f.replication() as i64);
        let given_back = match (previous, ino.has(flags::LAST_OPEN)) {
            (Some(p), true) => (bs - p.len.min(bs as u64) as i64) * r,
            _ => 0,
        };
        let delta = Delta {
            space: bs * r - given_back,
            ..Delta::default()
        };
        self.check_quota(ino.parent, delta, None)
    }
}

/// A file's blocks, for callers that only read.
pub fn blocks_of(f: &File) -> &[Block] {
    &f.blocks
}
