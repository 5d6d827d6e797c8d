//! POSIX ACLs as HDFS implements them (`AclStorage`, `AclTransformation`):
//! an inode with an extended ACL keeps the entries its permission bits
//! cannot hold in the ACL side table — named users, the owning group,
//! named groups and every default entry — while the permission bits keep
//! the owner, the mask (as the group bits) and other. Changes merge an ACL
//! spec into the logical ACL, recompute masks, fill in default base
//! entries and validate, exactly as HDFS; a new child inherits its
//! parent's default ACL, filtered by the mode it was created with.

use crate::inode::flags;
use crate::ns::Namespace;
use crate::op::Outcome;
use crate::perm::{validate_name, Access};
use crate::slab::Slot;
use serde::{Deserialize, Serialize};
use tdfs_proto::acl::{AclChange, AclEntry, AclKind, AclScope, AclStatus, MAX_ACL_ENTRIES};
use tdfs_proto::perm::STICKY;
use tdfs_proto::FsError;

/// One stored entry: 8 bytes, the name interned (0: unnamed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ent {
    pub scope: AclScope,
    pub kind: AclKind,
    pub perm: u8,
    pub name: u32,
}

fn acl_err(msg: impl Into<String>) -> FsError {
    FsError::Acl(msg.into())
}

fn sort(v: &mut [AclEntry]) {
    v.sort_by(|a, b| a.key().cmp(&b.key()));
}

fn find<'a>(sorted: &'a [AclEntry], key: &AclEntry) -> Option<&'a AclEntry> {
    sorted
        .binary_search_by(|e| e.key().cmp(&key.key()))
        .ok()
        .map(|i| &sorted[i])
}

fn base(scope: AclScope, kind: AclKind, perm: u8) -> AclEntry {
    AclEntry::new(scope, kind, None, perm)
}

/// The mask bookkeeping of one transformation, per scope.
#[derive(Default)]
struct Masks {
    provided: [Option<AclEntry>; 2],
    mask_dirty: [bool; 2],
    scope_dirty: [bool; 2],
}

fn ix(s: AclScope) -> usize {
    match s {
        AclScope::Access => 0,
        AclScope::Default => 1,
    }
}

fn validated_spec(mut spec: Vec<AclEntry>) -> Result<Vec<AclEntry>, FsError> {
    if spec.len() > MAX_ACL_ENTRIES {
        return Err(acl_err(format!(
            "Invalid ACL: ACL spec has {} entries, which exceeds maximum of {MAX_ACL_ENTRIES}.",
            spec.len()
        )));
    }
    for e in &spec {
        if let Some(n) = &e.name {
            validate_name(n)?;
        }
    }
    sort(&mut spec);
    Ok(spec)
}

/// Applies `change` to the logical ACL `existing` (sorted): HDFS's
/// `AclTransformation`.
pub(crate) fn transform(
    existing: &[AclEntry],
    change: &AclChange,
) -> Result<Vec<AclEntry>, FsError> {
    let mut b = Vec::with_capacity(MAX_ACL_ENTRIES);
    let mut m = Masks::default();
    let keep = |e: &AclEntry, m: &mut Masks, b: &mut Vec<AclEntry>| {
        if e.kind == AclKind::Mask {
            m.provided[ix(e.scope)] = Some(e.clone());
        } else {
            b.push(e.clone());
        }
    };
    let take = |e: &AclEntry, m: &mut Masks, b: &mut Vec<AclEntry>| {
        m.scope_dirty[ix(e.scope)] = true;
        if e.kind == AclKind::Mask {
            m.provided[ix(e.scope)] = Some(e.clone());
            m.mask_dirty[ix(e.scope)] = true;
        } else {
            b.push(e.clone());
        }
    };
    match change {
        AclChange::RemoveDefault => {
            b.extend(
                existing
                    .iter()
                    .filter(|e| e.scope == AclScope::Access)
                    .cloned(),
            );
            return build(b);
        }
        AclChange::RemoveAll => unreachable!("handled by the caller"),
        AclChange::Modify(spec) => {
            let spec = validated_spec(spec.clone())?;
            let mut found = Vec::new();
            for e in existing {
                match find(&spec, e) {
                    Some(s) => {
                        found.push(s.clone());
                        take(s, &mut m, &mut b);
                    }
                    None => keep(e, &mut m, &mut b),
                }
            }
            for s in &spec {
                if find(&found, s).is_none() {
                    take(s, &mut m, &mut b);
                }
            }
        }
        AclChange::Remove(spec) => {
            let spec = validated_spec(spec.clone())?;
            for e in existing {
                if find(&spec, e).is_some() {
                    m.scope_dirty[ix(e.scope)] = true;
                    if e.kind == AclKind::Mask {
                        m.mask_dirty[ix(e.scope)] = true;
                    }
                } else {
                    keep(e, &mut m, &mut b);
                }
            }
        }
        AclChange::Set(spec) => {
            let spec = validated_spec(spec.clone())?;
            for s in &spec {
                take(s, &mut m, &mut b);
            }
            for e in existing {
                if !m.scope_dirty[ix(e.scope)] {
                    keep(e, &mut m, &mut b);
                }
            }
        }
    }
    copy_defaults(&mut b);
    calc_masks(&mut b, &m)?;
    build(b)
}

/// A default ACL without user, group or other entries gets them copied
/// from the access ACL.
fn copy_defaults(b: &mut Vec<AclEntry>) {
    sort(b);
    if !b.iter().any(|e| e.scope == AclScope::Default) {
        return;
    }
    let mut add = Vec::new();
    for kind in [AclKind::User, AclKind::Group, AclKind::Other] {
        if find(b, &base(AclScope::Default, kind, 0)).is_none() {
            if let Some(a) = find(b, &base(AclScope::Access, kind, 0)) {
                add.push(base(AclScope::Default, kind, a.perm));
            }
        }
    }
    b.extend(add);
}

fn calc_masks(b: &mut Vec<AclEntry>, m: &Masks) -> Result<(), FsError> {
    let mut found = [false; 2];
    let mut union = [0u8; 2];
    let mut needed = [false; 2];
    for e in b.iter() {
        let s = ix(e.scope);
        found[s] = true;
        if e.kind == AclKind::Group || e.name.is_some() {
            union[s] |= e.perm;
        }
        if e.name.is_some() {
            needed[s] = true;
        }
    }
    for (s, scope) in [AclScope::Access, AclScope::Default]
        .into_iter()
        .enumerate()
    {
        if !found[s] {
            continue;
        }
        match &m.provided[s] {
            None if needed[s] && m.mask_dirty[s] => {
                return Err(acl_err(
                    "Invalid ACL: mask is required, but it was deleted.",
                ))
            }
            Some(p) if !m.scope_dirty[s] || m.mask_dirty[s] => b.push(p.clone()),
            _ if needed[s] => b.push(base(scope, AclKind::Mask, union[s])),
            _ => {}
        }
    }
    Ok(())
}

/// Sorts and validates a built ACL.
fn build(mut b: Vec<AclEntry>) -> Result<Vec<AclEntry>, FsError> {
    if b.len() > MAX_ACL_ENTRIES {
        return Err(acl_err(format!(
            "Invalid ACL: ACL has {} entries, which exceeds maximum of {MAX_ACL_ENTRIES}.",
            b.len()
        )));
    }
    sort(&mut b);
    for w in b.windows(2) {
        if w[0].key() == w[1].key() {
            return Err(acl_err(
                "Invalid ACL: multiple entries with same scope, type and name.",
            ));
        }
    }
    if let Some(e) = b
        .iter()
        .find(|e| e.name.is_some() && matches!(e.kind, AclKind::Mask | AclKind::Other))
    {
        return Err(acl_err(format!(
            "Invalid ACL: this entry type must not have a name: {e}."
        )));
    }
    let has_default = b.iter().any(|e| e.scope == AclScope::Default);
    for kind in [AclKind::User, AclKind::Group, AclKind::Other] {
        if find(&b, &base(AclScope::Access, kind, 0)).is_none() {
            return Err(acl_err(
                "Invalid ACL: the user, group and other entries are required.",
            ));
        }
        if has_default && find(&b, &base(AclScope::Default, kind, 0)).is_none() {
            return Err(acl_err(
                "Invalid default ACL: the user, group and other entries are required.",
            ));
        }
    }
    Ok(b)
}

/// The minimal ACL a mode stands for.
fn minimal(mode: u16) -> Vec<AclEntry> {
    let bits = |shift: u16| ((mode >> shift) & 7) as u8;
    vec![
        base(AclScope::Access, AclKind::User, bits(6)),
        base(AclScope::Access, AclKind::Group, bits(3)),
        base(AclScope::Access, AclKind::Other, bits(0)),
    ]
}

/// An inode's new permission bits and stored entries for a full ACL.
pub(crate) struct Stored {
    pub mode: u16,
    pub entries: Vec<AclEntry>,
}

/// Splits a full ACL into permission bits and the entries to store, as
/// HDFS's `AclStorage.updateINodeAcl`.
pub(crate) fn split(acl: &[AclEntry], mode: u16, is_dir: bool) -> Result<Stored, FsError> {
    let sticky = mode & STICKY;
    let (access, defaults): (Vec<&AclEntry>, Vec<&AclEntry>) =
        acl.iter().partition(|e| e.scope == AclScope::Access);
    if !defaults.is_empty() && !is_dir {
        return Err(acl_err(
            "Invalid ACL: only directories may have a default ACL.",
        ));
    }
    let n = access.len();
    if n < 3 {
        return Err(acl_err(
            "Invalid ACL: the user, group and other entries are required.",
        ));
    }
    let bits =
        (access[0].perm as u16) << 6 | (access[n - 2].perm as u16) << 3 | access[n - 1].perm as u16;
    let mut entries = Vec::new();
    if n > 3 {
        entries.extend(access[1..n - 2].iter().map(|e| (*e).clone()));
    }
    entries.extend(defaults.into_iter().cloned());
    Ok(Stored {
        mode: bits | sticky,
        entries,
    })
}

impl Namespace {
    fn to_entries(&self, stored: &[Ent]) -> Vec<AclEntry> {
        stored
            .iter()
            .map(|e| AclEntry {
                scope: e.scope,
                kind: e.kind,
                name: (e.name != 0).then(|| self.strings.get(e.name).to_string()),
                perm: e.perm,
            })
            .collect()
    }

    /// The stored ACL entries of the live inode in `slot`.
    pub(crate) fn stored_acl(&self, slot: Slot) -> Vec<AclEntry> {
        if !self.slab.at(slot).has(flags::ACL) {
            return Vec::new();
        }
        self.side
            .acls
            .get(&slot)
            .map(|a| self.to_entries(a))
            .unwrap_or_default()
    }

    /// The full ACL (HDFS's `readINodeLogicalAcl`) from a mode and the
    /// stored entries.
    pub(crate) fn logical_acl(&self, mode: u16, stored: &[Ent]) -> Vec<AclEntry> {
        if stored.is_empty() {
            return minimal(mode);
        }
        let entries = self.to_entries(stored);
        let (access, defaults): (Vec<AclEntry>, Vec<AclEntry>) = entries
            .into_iter()
            .partition(|e| e.scope == AclScope::Access);
        let bits = |shift: u16| ((mode >> shift) & 7) as u8;
        let mut out = Vec::with_capacity(access.len() + defaults.len() + 3);
        if access.is_empty() {
            out.extend(minimal(mode));
        } else {
            out.push(base(AclScope::Access, AclKind::User, bits(6)));
            out.extend(access);
            out.push(base(AclScope::Access, AclKind::Mask, bits(3)));
            out.push(base(AclScope::Access, AclKind::Other, bits(0)));
        }
        out.extend(defaults);
        out
    }

    /// Stores entries (already validated) and the mode for the inode in `slot`.
    pub(crate) fn store_acl(&mut self, slot: Slot, s: Stored) -> Result<(), FsError> {
        let mut ents = Vec::with_capacity(s.entries.len());
        for e in &s.entries {
            let name = match &e.name {
                Some(n) => self.strings.intern(n)?,
                None => 0,
            };
            ents.push(Ent {
                scope: e.scope,
                kind: e.kind,
                perm: e.perm & 7,
                name,
            });
        }
        let ino = self.slab.at_mut(slot);
        ino.mode = s.mode;
        ino.set(flags::ACL, !ents.is_empty());
        if ents.is_empty() {
            self.side.acls.remove(&slot);
        } else {
            self.side.acls.insert(slot, ents.into_boxed_slice());
        }
        Ok(())
    }

    pub(crate) fn change_acl(
        &mut self,
        a: &Access,
        p: &str,
        change: &AclChange,
    ) -> Result<Outcome, FsError> {
        let slot = self.resolve(a, p)?;
        self.check_owner(a, slot, p)?;
        let ino = self.slab.at(slot);
        let (mode, is_dir) = (ino.mode, ino.is_dir());
        let stored = if ino.has(flags::ACL) {
            self.side.acls.get(&slot).cloned().unwrap_or_default()
        } else {
            Box::default()
        };
        let next = match change {
            AclChange::RemoveAll => {
                // The owning group's entry goes back into the group bits.
                let entries = self.to_entries(&stored);
                let group = entries.iter().find(|e| {
                    e.scope == AclScope::Access && e.kind == AclKind::Group && e.name.is_none()
                });
                let mode = match group {
                    Some(g) => (mode & !0o070) | (g.perm as u16) << 3,
                    None => mode,
                };
                Stored {
                    mode,
                    entries: Vec::new(),
                }
            }
            other => {
                let full = transform(&self.logical_acl(mode, &stored), other)?;
                split(&full, mode, is_dir).map_err(|e| match e {
                    FsError::Acl(m) if m.contains("only directories") => {
                        FsError::Acl(format!("{m} Path: {p}"))
                    }
                    e => e,
                })?
            }
        };
        self.save_attrs(slot);
        self.store_acl(slot, next)?;
        Ok(Outcome::Done)
    }

    /// GETACLSTATUS of the inode in `slot` as a snapshot `at` saw it.
    pub(crate) fn acl_status_of(&self, slot: Slot, at: Option<u32>) -> AclStatus {
        let v = self.attrs_at(slot, at);
        AclStatus {
            owner: self.strings.get(v.owner).to_string(),
            group: self.strings.get(v.group).to_string(),
            mode: v.mode,
            entries: v.acl.map(|a| self.to_entries(a)).unwrap_or_default(),
        }
    }

    /// Whether the directory at `slot` has a default ACL (new children
    /// inherit it, and HDFS then ignores the umask).
    pub fn has_default_acl(&self, slot: Slot) -> bool {
        self.slab.get(slot).is_some_and(|i| i.has(flags::ACL))
            && self
                .side
                .acls
                .get(&slot)
                .is_some_and(|a| a.iter().any(|e| e.scope == AclScope::Default))
    }

    /// Gives the new inode in `child` its parent's default ACL, filtered by
    /// its mode, as HDFS's `AclStorage.copyINodeDefaultAcl`.
    pub(crate) fn inherit_acl(&mut self, parent: Slot, child: Slot) -> Result<(), FsError> {
        if !self.has_default_acl(parent) {
            return Ok(());
        }
        let defaults: Vec<AclEntry> = self
            .stored_acl(parent)
            .into_iter()
            .filter(|e| e.scope == AclScope::Default)
            .collect();
        let ino = self.slab.at(child);
        let (mode, is_dir) = (ino.mode, ino.is_dir());
        let bits = |shift: u16| ((mode >> shift) & 7) as u8;
        let minimal_parent = defaults.len() == 3;
        let access: Vec<AclEntry> = defaults
            .iter()
            .map(|e| {
                let perm = match (e.kind, &e.name) {
                    (AclKind::User, None) => e.perm & bits(6),
                    (AclKind::Group, None) if minimal_parent => e.perm & bits(3),
                    (AclKind::Mask, _) => e.perm & bits(3),
                    (AclKind::Other, _) => e.perm & bits(0),
                    _ => e.perm,
                };
                AclEntry {
                    scope: AclScope::Access,
                    perm,
                    ..e.clone()
                }
            })
            .collect();
        let mut full = access;
        if is_dir {
            full.extend(defaults);
        }
        let stored = split(&full, mode, is_dir)?;
        self.store_acl(child, stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::acl::parse_spec;

    fn spec(s: &str) -> Vec<AclEntry> {
        parse_spec(s, true).unwrap()
    }

    fn show(v: &[AclEntry]) -> String {
        v.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    #[test]
    fn transformations_follow_hdfs() {
        let min = minimal(0o750);
        let m = transform(&min, &AclChange::Modify(spec("user:bob:rwx"))).unwrap();
        assert_eq!(
            show(&m),
            "user::rwx,user:bob:rwx,group::r-x,mask::rwx,other::---"
        );
        let s = split(&m, 0o750, false).unwrap();
        assert_eq!(s.mode, 0o770);
        assert_eq!(show(&s.entries), "user:bob:rwx,group::r-x");
        // Removing the last named entry leaves a minimal ACL (no mask).
        let r = transform(
            &m,
            &AclChange::Remove(parse_spec("user:bob", false).unwrap()),
        )
        .unwrap();
        assert_eq!(show(&r), "user::rwx,group::r-x,other::---");
        // A default entry alone gets the base default entries copied.
        let d = transform(&min, &AclChange::Modify(spec("default:user:bob:r-x"))).unwrap();
        assert_eq!(
            show(&d),
            "user::rwx,group::r-x,other::---,default:user::rwx,default:user:bob:r-x,default:group::r-x,default:mask::r-x,default:other::---"
        );
        assert!(
            split(&d, 0o750, false).is_err(),
            "files have no default ACL"
        );
        let nd = transform(&d, &AclChange::RemoveDefault).unwrap();
        assert_eq!(show(&nd), show(&min));
        // Deleting a required mask is refused.
        let bad = transform(&m, &AclChange::Remove(parse_spec("mask::", false).unwrap()));
        assert!(matches!(bad, Err(FsError::Acl(_))));
        // --set replaces the access scope and keeps nothing of it.
        let set = transform(&m, &AclChange::Set(spec("user::rw-,group::r--,other::r--"))).unwrap();
        assert_eq!(show(&set), "user::rw-,group::r--,other::r--");
        let dup = transform(
            &min,
            &AclChange::Set(spec("user::rw-,user::r--,group::r--,other::r--")),
        );
        assert!(dup.is_err());
    }
}
