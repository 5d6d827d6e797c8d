//! Side tables: what only a few inodes have, keyed by slot, so that
//! `Inode` stays small for the tens of millions that have none of it. Each
//! entry has a flag bit in `Inode::flags` for a check without a lookup.

use crate::acl::Ent;
use crate::edit::Truncation;
use crate::inode::flags;
use crate::quota::Quota;
use crate::slab::Slot;
use crate::xattr::XAttrs;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The side tables.
#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    /// Directories with a name or space quota.
    pub quotas: FxHashMap<Slot, Quota>,
    /// Inodes with an extended ACL: the entries the permission bits do not
    /// hold (named users, the owning group, named groups, defaults).
    pub acls: FxHashMap<Slot, Box<[Ent]>>,
    pub xattrs: FxHashMap<Slot, XAttrs>,
    /// Files whose last block is being recovered after a truncate.
    pub truncating: FxHashMap<Slot, Truncation>,
}

/// The side tables as a snapshot stores them: sorted by slot, so every
/// replica writes the same bytes.
#[derive(Serialize, Deserialize)]
pub(crate) struct SideImage {
    pub quotas: Vec<(Slot, Quota)>,
    pub acls: Vec<(Slot, Box<[Ent]>)>,
    pub xattrs: Vec<(Slot, XAttrs)>,
    pub truncating: Vec<(Slot, Truncation)>,
}

fn sorted<V: Clone>(m: &FxHashMap<Slot, V>) -> Vec<(Slot, V)> {
    let mut v: Vec<(Slot, V)> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
    v.sort_unstable_by_key(|(k, _)| *k);
    v
}

impl Side {
    /// Drops everything a freed slot had.
    pub fn forget(&mut self, slot: Slot, inode_flags: u16) {
        if inode_flags & flags::QUOTA != 0 {
            self.quotas.remove(&slot);
        }
        if inode_flags & flags::ACL != 0 {
            self.acls.remove(&slot);
        }
        if inode_flags & flags::XATTR != 0 {
            self.xattrs.remove(&slot);
        }
        if inode_flags & flags::TRUNCATING != 0 {
            self.truncating.remove(&slot);
        }
    }

    pub fn image(&self) -> SideImage {
        SideImage {
            quotas: sorted(&self.quotas),
            acls: sorted(&self.acls),
            xattrs: sorted(&self.xattrs),
            truncating: sorted(&self.truncating),
        }
    }

    pub fn from_image(img: SideImage) -> Side {
        Side {
            quotas: img.quotas.into_iter().collect(),
            acls: img.acls.into_iter().collect(),
            xattrs: img.xattrs.into_iter().collect(),
            truncating: img.truncating.into_iter().collect(),
        }
    }

    /// Each entry with the flag its inode must carry (load-time checks).
    pub fn flagged(&self) -> impl Iterator<Item = (Slot, u16)> + '_ {
        let q = self.quotas.keys().map(|s| (*s, flags::QUOTA));
        let a = self.acls.keys().map(|s| (*s, flags::ACL));
        let x = self.xattrs.keys().map(|s| (*s, flags::XATTR));
        let t = self.truncating.keys().map(|s| (*s, flags::TRUNCATING));
        q.chain(a).chain(x).chain(t)
    }
}
