//! Name and space quotas, as HDFS's `DirectoryWithQuotaFeature`: a quota
//! sits in the side table of its directory, the usage it is checked
//! against is the `Usage` every directory keeps incrementally, and a check
//! walks the ancestors of the changed directory only (O(depth)) before
//! anything changes, so a refused operation changes nothing.

use crate::inode::{flags, Delta, Usage};
use crate::ns::Namespace;
use crate::op::Outcome;
use crate::perm::Access;
use crate::slab::Slot;
use serde::{Deserialize, Serialize};
use tdfs_proto::quota::{storage_type, QuotaChange, QuotaUsage, STORAGE_TYPES};
use tdfs_proto::{FsError, QuotaKind};

/// The storage type every tdfs replica is on.
const DISK: &str = "DISK";

/// A directory's quotas.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    /// Files plus directories, the directory itself included.
    pub ns: Option<u64>,
    /// Bytes times replication.
    pub space: Option<u64>,
    /// Per storage type (an index into `STORAGE_TYPES`), sorted.
    pub types: Vec<(u8, u64)>,
}

impl Quota {
    fn is_empty(&self) -> bool {
        self.ns.is_none() && self.space.is_none() && self.types.is_empty()
    }

    fn disk(&self) -> Option<u64> {
        let disk = STORAGE_TYPES.iter().position(|t| *t == DISK)? as u8;
        self.types.iter().find(|(t, _)| *t == disk).map(|(_, q)| *q)
    }
}

fn apply(cur: Option<u64>, c: QuotaChange) -> Option<u64> {
    match c {
        QuotaChange::Keep => cur,
        QuotaChange::Clear => None,
        QuotaChange::Set(v) => Some(v),
    }
}

impl Namespace {
    /// Resolves the directory a quota is set on (superuser only).
    fn quota_dir(&self, a: &Access, p: &str) -> Result<Slot, FsError> {
        self.check_superuser(a, p)?;
        let slot = self.resolve(a, p)?;
        if !self.slab.at(slot).is_dir() {
            return Err(FsError::FileNotFound(format!(
                "Cannot set quota on a file: {p}"
            )));
        }
        Ok(slot)
    }

    pub(crate) fn set_quota(
        &mut self,
        a: &Access,
        p: &str,
        ns: QuotaChange,
        space: QuotaChange,
    ) -> Result<Outcome, FsError> {
        let slot = self.quota_dir(a, p)?;
        if slot == self.root_slot() && ns == QuotaChange::Clear {
            return Err(FsError::InvalidArgument(
                "Cannot clear namespace quota on root.".into(),
            ));
        }
        if ns == QuotaChange::Set(0) {
            return Err(FsError::InvalidArgument(
                "the namespace quota must be a positive integer".into(),
            ));
        }
        let mut q = self.side.quotas.get(&slot).cloned().unwrap_or_default();
        q.ns = apply(q.ns, ns);
        q.space = apply(q.space, space);
        self.store_quota(slot, q);
        Ok(Outcome::Done)
    }

    pub(crate) fn set_type_quota(
        &mut self,
        a: &Access,
        p: &str,
        ty: &str,
        quota: QuotaChange,
    ) -> Result<Outcome, FsError> {
        let ty = storage_type(ty)?;
        let idx = STORAGE_TYPES.iter().position(|t| *t == ty).expect("known") as u8;
        let slot = self.quota_dir(a, p)?;
        let mut q = self.side.quotas.get(&slot).cloned().unwrap_or_default();
        let cur = q.types.iter().find(|(t, _)| *t == idx).map(|(_, v)| *v);
        q.types.retain(|(t, _)| *t != idx);
        if let Some(v) = apply(cur, quota) {
            q.types.push((idx, v));
            q.types.sort_unstable();
        }
        self.store_quota(slot, q);
        Ok(Outcome::Done)
    }

    fn store_quota(&mut self, slot: Slot, q: Quota) {
        let empty = q.is_empty();
        if empty {
            self.side.quotas.remove(&slot);
        } else {
            self.side.quotas.insert(slot, q);
        }
        self.slab.at_mut(slot).set(flags::QUOTA, !empty);
    }

    /// Refuses `delta` under `dir` if it would exceed a quota of `dir` or
    /// of an ancestor below `stop` (exclusive; `None`: up to the root).
    /// Only increases are checked, as HDFS does: a directory already over
    /// its quota may still shrink.
    pub(crate) fn check_quota(
        &self,
        dir: Slot,
        delta: Delta,
        stop: Option<Slot>,
    ) -> Result<(), FsError> {
        let names = delta.files + delta.dirs;
        if (names <= 0 && delta.space <= 0) || self.side.quotas.is_empty() {
            return Ok(());
        }
        let mut cur = dir;
        loop {
            if Some(cur) == stop {
                return Ok(());
            }
            let ino = self.slab.at(cur);
            if ino.has(flags::QUOTA) {
                if let (Some(q), Some(d)) = (self.side.quotas.get(&cur), ino.dir()) {
                    self.check_one(cur, q, &d.usage, names, delta.space)?;
                }
            }
            if ino.parent == cur {
                return Ok(());
            }
            cur = ino.parent;
        }
    }

    fn check_one(
        &self,
        slot: Slot,
        q: &Quota,
        u: &Usage,
        names: i64,
        space: i64,
    ) -> Result<(), FsError> {
        let over = |quota: Option<u64>, used: u64, add: i64| -> Option<(u64, u64)> {
            let quota = quota?;
            let after = used.saturating_add_signed(add);
            (add > 0 && after > quota).then_some((quota, after))
        };
        let err = |kind, (quota, usage)| FsError::QuotaExceeded {
            kind,
            path: self.path_of(slot),
            quota,
            usage,
        };
        if let Some(v) = over(q.ns, u.files + u.dirs, names) {
            return Err(err(QuotaKind::Namespace, v));
        }
        if let Some(v) = over(q.space, u.space, space) {
            return Err(err(QuotaKind::Space, v));
        }
        if let Some(v) = over(q.disk(), u.space, space) {
            return Err(err(QuotaKind::StorageType(DISK.into()), v));
        }
        Ok(())
    }

    /// Checks a subtree of usage `moved` arriving under `dst` from under
    /// `src`: only the directories above `dst` that are not also above
    /// `src` see it change.
    pub(crate) fn check_quota_move(
        &self,
        src: Slot,
        dst: Slot,
        moved: &Usage,
    ) -> Result<(), FsError> {
        if self.side.quotas.is_empty() {
            return Ok(());
        }
        let mut above_src = Vec::new();
        let mut cur = src;
        loop {
            above_src.push(cur);
            let p = self.slab.at(cur).parent;
            if p == cur {
                break;
            }
            cur = p;
        }
        let mut stop = dst;
        while !above_src.contains(&stop) {
            stop = self.slab.at(stop).parent;
        }
        self.check_quota(dst, Delta::of(moved), Some(stop))
    }

    /// GETQUOTAUSAGE: usage and quotas of the directory at `slot`.
    pub(crate) fn quota_usage_of(&self, slot: Slot, u: &Usage) -> QuotaUsage {
        let q = self
            .slab
            .get(slot)
            .filter(|i| i.has(flags::QUOTA))
            .and_then(|_| self.side.quotas.get(&slot));
        QuotaUsage {
            file_and_dir_count: u.files + u.dirs,
            ns_quota: q.and_then(|q| q.ns),
            space_consumed: u.space,
            space_quota: q.and_then(|q| q.space),
            type_quotas: q
                .map(|q| {
                    q.types
                        .iter()
                        .map(|(t, v)| {
                            let name = STORAGE_TYPES[*t as usize];
                            let used = if name == DISK { u.space } else { 0 };
                            (name.to_string(), *v, used)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
