//! Truncate and concat, with HDFS's rules (`FSDirTruncateOp`,
//! `FSDirConcatOp`).
//!
//! A truncate at a block boundary drops the blocks past it at once. Inside
//! a block, the file goes under recovery, as in HDFS: the kept part of the
//! last block gets a new generation (and, when a snapshot still holds the
//! old block, a new block id: copy-on-truncate, so the snapshot keeps
//! reading the old bytes), the datanodes holding the old replica write a
//! cut copy at the new generation, and the leader commits the file
//! (`CommitTruncate`) once one is stored. Meanwhile the file is under
//! construction without a lease: writers are refused with
//! `RecoveryInProgress`.

use crate::inode::{flags, Block, Delta};
use crate::ns::Namespace;
use crate::op::{NsEvent, Outcome};
use crate::perm::Access;
use crate::slab::{InodeId, Slot};
use serde::{Deserialize, Serialize};
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::perm::{READ, WRITE};
use tdfs_proto::{BlockId, FsError};

/// A truncate waiting for its last block to be cut on the datanodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// The replica to cut: the old block at its old generation.
    pub source: BlockInfo,
    /// The block the cut copy becomes (the same id, or a new one).
    pub target: BlockId,
    pub gen: u64,
    /// Bytes of the source the copy keeps.
    pub len: u64,
}

/// A truncation, for the leader's recovery duty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingTruncate {
    pub file: InodeId,
    pub replication: u16,
    pub truncation: Truncation,
}

fn refused(p: &str) -> FsError {
    FsError::RecoveryInProgress(format!(
        "Failed to change {p}: the recovery of its last block (a truncate) is in progress. Try again later."
    ))
}

impl Namespace {
    /// Refuses writers on a file whose truncate is being recovered.
    pub(crate) fn check_not_truncating(&self, slot: Slot, p: &str) -> Result<(), FsError> {
        if self.slab.at(slot).has(flags::TRUNCATING) {
            return Err(refused(p));
        }
        Ok(())
    }

    /// Whether a diff of `slot` holds block `id`.
    fn in_snapshot(&self, slot: Slot, id: BlockId) -> bool {
        self.slab.at(slot).has(flags::DIFFS)
            && self.snap.diffs.get(&slot).is_some_and(|ds| {
                ds.iter()
                    .filter_map(|d| d.attrs.as_ref()?.file.as_ref())
                    .any(|f| f.blocks.iter().any(|b| b.id == id))
            })
    }

    /// A block a file no longer has leaves, unless a snapshot holds it.
    fn drop_block(&mut self, slot: Slot, id: BlockId, ev: &mut Vec<NsEvent>) {
        if !self.in_snapshot(slot, id) {
            self.block_index.remove(&id);
            ev.push(NsEvent::BlockRemoved { id });
        }
    }

    /// Drops a file's open last block (a deleted file that a snapshot keeps).
    pub(crate) fn drop_open_block(&mut self, slot: Slot, ev: &mut Vec<NsEvent>) {
        if !self.slab.at(slot).has(flags::LAST_OPEN) {
            return;
        }
        let dropped = self.update_file(slot, |ino| {
            ino.set(flags::LAST_OPEN, false);
            ino.file_mut().expect("a file").pop_block()
        });
        if let Some(b) = dropped {
            self.drop_block(slot, b.id, ev);
        }
    }

    pub(crate) fn truncate(
        &mut self,
        a: &Access,
        p: &str,
        len: u64,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.resolve(a, p)?;
        let ino = self.slab.at(slot);
        let Some(f) = ino.file() else {
            return Err(FsError::IsADirectory(p.to_string()));
        };
        self.check(a, slot, WRITE, p)?;
        self.check_not_truncating(slot, p)?;
        if let Some(l) = self.leases.get(&slot) {
            return Err(FsError::LeaseConflict {
                path: p.to_string(),
                holder: self.strings.get(l.user).to_string(),
            });
        }
        let old = f.len();
        if len > old {
            return Err(FsError::InvalidArgument(format!(
                "Cannot truncate to a larger file size. Current size: {old}, truncate size: {len}."
            )));
        }
        if len == old {
            return Ok(Outcome::Bool(true));
        }
        let (keep, cut) = split_at(&f.blocks, len);
        let dropped: Vec<BlockId> = f
            .blocks
            .iter()
            .filter(|b| !keep.iter().any(|k| k.id == b.id))
            .map(|b| b.id)
            .collect();
        let (repl, bs) = (f.replication(), f.block_size());
        // Quota: a block under recovery is charged whole, as while written.
        if cut.is_some() {
            let before = ino.usage().space;
            let kept: u64 = keep.iter().map(|b| b.len).sum();
            let after = (kept + bs) * repl as u64;
            let delta = Delta {
                space: after as i64 - before as i64,
                ..Delta::default()
            };
            self.check_quota(ino.parent, delta, None)?;
        }
        self.save_attrs(slot);
        for id in dropped {
            if cut.is_none_or(|(b, _)| b.id != id) {
                self.drop_block(slot, id, ev);
            }
        }
        let Some(cut) = cut else {
            self.update_file(slot, |ino| {
                ino.mtime = now;
                ino.file_mut().expect("a file").blocks = keep.into_boxed_slice();
            });
            return Ok(Outcome::Bool(true));
        };
        self.open_cut_block(slot, keep, cut, (repl, bs), now, ev);
        Ok(Outcome::Bool(false))
    }

    /// A truncation inside `old_block`: the file keeps `keep` and, open
    /// under construction, a new generation of the cut block (a new block
    /// when a snapshot holds the old one) that recovery shortens to
    /// `kept_len`.
    fn open_cut_block(
        &mut self,
        slot: Slot,
        mut keep: Vec<Block>,
        (old_block, kept_len): (Block, u64),
        (repl, bs): (u16, u64),
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) {
        let copy = self.in_snapshot(slot, old_block.id);
        let target = if copy {
            self.next_block += 1;
            self.next_block - 1
        } else {
            old_block.id
        };
        let gen = self.next_gen;
        self.next_gen += 1;
        keep.push(Block {
            id: target,
            gen,
            len: kept_len,
            sha256: [0; 32],
        });
        self.update_file(slot, |ino| {
            ino.mtime = now;
            ino.set(flags::LAST_OPEN, true);
            ino.set(flags::UNDER_CONSTRUCTION, true);
            ino.set(flags::TRUNCATING, true);
            ino.file_mut().expect("a file").blocks = keep.into_boxed_slice();
        });
        self.block_index.insert(target, slot);
        self.side.truncating.insert(
            slot,
            Truncation {
                source: old_block.info(),
                target,
                gen,
                len: kept_len,
            },
        );
        ev.push(NsEvent::BlockOpen {
            id: target,
            gen,
            replication: repl,
            block_size: bs,
        });
    }

    /// Closes a file whose cut block `block` is stored (a compare-and-set:
    /// the truncation must still be the one the leader saw).
    pub(crate) fn commit_truncate(
        &mut self,
        file: InodeId,
        block: &BlockInfo,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let Some(slot) = self.slab.resolve_id(file) else {
            return Ok(Outcome::Bool(false));
        };
        let same = self
            .side
            .truncating
            .get(&slot)
            .is_some_and(|t| t.target == block.id && t.gen == block.gen && t.len == block.len);
        if !same {
            return Ok(Outcome::Bool(false));
        }
        self.save_attrs(slot);
        self.side.truncating.remove(&slot);
        let repl = self.update_file(slot, |ino| {
            ino.set(flags::LAST_OPEN, false);
            ino.set(flags::UNDER_CONSTRUCTION, false);
            ino.set(flags::TRUNCATING, false);
            ino.mtime = now;
            let f = ino.file_mut().expect("a file");
            if let Some(b) = f.blocks.last_mut() {
                b.sha256 = block.sha256.unwrap_or([0; 32]);
            }
            f.replication()
        });
        ev.push(NsEvent::BlockCommitted {
            id: block.id,
            gen: block.gen,
            len: block.len,
            replication: repl,
        });
        Ok(Outcome::Bool(true))
    }

    /// Files being truncated, for the leader's recovery duty.
    pub fn pending_truncates(&self) -> Vec<PendingTruncate> {
        let mut v: Vec<PendingTruncate> = self
            .side
            .truncating
            .iter()
            .filter_map(|(s, t)| {
                let f = self.slab.get(*s)?.file()?;
                Some(PendingTruncate {
                    file: self.slab.id_of(*s),
                    replication: f.replication(),
                    truncation: t.clone(),
                })
            })
            .collect();
        v.sort_unstable_by_key(|t| t.file);
        v
    }

    /// Checks the sources of a concat; returns their slots in order.
    fn concat_sources(
        &self,
        a: &Access,
        target: Slot,
        target_path: &str,
        sources: &[String],
    ) -> Result<Vec<Slot>, FsError> {
        let bad = |m: String| Err(FsError::InvalidArgument(m));
        if sources.is_empty() {
            return bad("No sources given".into());
        }
        let t = self.slab.at(target);
        let mut out = Vec::with_capacity(sources.len());
        for src in sources {
            let s = self.resolve(a, src)?;
            self.check(a, s, READ, src)?;
            let sino = self.slab.at(s);
            let Some(sf) = sino.file() else {
                return Err(FsError::IsADirectory(src.clone()));
            };
            self.check_modify_parent(a, sino.parent, Some(s), src)?;
            if sino.parent != t.parent {
                return bad(format!(
                    "Source file {src} is not in the same directory with the target {target_path}"
                ));
            }
            if self.in_latest_snapshot(s) || sino.has(flags::SNAP_REF) || sino.has(flags::PINNED) {
                return Err(FsError::Snapshot(format!(
                    "Concat: the source file {src} is in snapshot"
                )));
            }
            if s == target {
                return bad(format!(
                    "concat: the src file {src} is the same with the target file {target_path}"
                ));
            }
            if sino.has(flags::UNDER_CONSTRUCTION) || sf.blocks.is_empty() {
                return bad(format!(
                    "concat: source file {src} is invalid or empty or underConstruction"
                ));
            }
            let tbs = t.file().expect("checked").block_size();
            if sf.block_size() > tbs {
                return bad(format!(
                    "concat: source file {src} has preferred block size {} which is greater than the target file's preferred block size {tbs}",
                    sf.block_size()
                ));
            }
            if out.contains(&s) {
                return bad("concat: at least two of the source files are the same".into());
            }
            out.push(s);
        }
        Ok(out)
    }

    pub(crate) fn concat(
        &mut self,
        a: &Access,
        target: &str,
        sources: &[String],
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let t = self.resolve(a, target)?;
        self.check(a, t, WRITE, target)?;
        let tino = self.slab.at(t);
        let Some(tf) = tino.file() else {
            return Err(FsError::IsADirectory(target.to_string()));
        };
        if tino.has(flags::UNDER_CONSTRUCTION) {
            return Err(FsError::InvalidArgument(format!(
                "concat: target file {target} is under construction"
            )));
        }
        let (trepl, parent) = (tf.replication(), tino.parent);
        let srcs = self.concat_sources(a, t, target, sources)?;
        let extra: i64 = srcs
            .iter()
            .map(|s| {
                let f = self.slab.at(*s).file().expect("checked");
                f.len() as i64 * (trepl as i64 - f.replication() as i64)
            })
            .sum();
        let delta = Delta {
            files: -(srcs.len() as i64),
            space: extra,
            ..Delta::default()
        };
        self.check_quota(parent, delta, None)?;
        self.save_attrs(t);
        let mut moved = Vec::new();
        for s in &srcs {
            let blocks = self.update_file(*s, |ino| {
                std::mem::take(&mut ino.file_mut().expect("a file").blocks)
            });
            moved.extend(blocks.iter().copied());
            let name = self.slab.at(*s).name.clone();
            self.remove_child(parent, &name, now, ev);
        }
        for b in &moved {
            self.block_index.insert(b.id, t);
            ev.push(NsEvent::Replication {
                id: b.id,
                replication: trepl,
            });
        }
        self.update_file(t, |ino| {
            ino.mtime = now;
            let f = ino.file_mut().expect("a file");
            let mut v = std::mem::take(&mut f.blocks).into_vec();
            v.extend(moved);
            f.blocks = v.into_boxed_slice();
        });
        Ok(Outcome::Done)
    }
}

/// Splits a file's blocks at `len`: the blocks wholly before it, and the
/// one across it with the bytes of it that stay.
fn split_at(blocks: &[Block], len: u64) -> (Vec<Block>, Option<(Block, u64)>) {
    let (mut keep, mut start, mut cut) = (Vec::new(), 0u64, None);
    for b in blocks {
        if start + b.len <= len {
            keep.push(*b);
        } else if start < len {
            cut = Some((*b, len - start));
        }
        start += b.len;
    }
    (keep, cut)
}
