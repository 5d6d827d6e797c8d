//! Extended attributes with HDFS's rules (`FSDirXAttrOp`,
//! `XAttrPermissionFilter`): `user.` follows the inode's permissions (and
//! the sticky bit of a directory), `trusted.` is the superuser's, `system.`
//! and `raw.` are the file system's own, and of `security.` only
//! `security.hdfs.unreadable.by.superuser` may be set (on a file, without a
//! value). At most 32 user-visible attributes per inode, at most 16384
//! bytes of name and value each.

use crate::inode::flags;
use crate::ns::Namespace;
use crate::op::Outcome;
use crate::perm::{denied, Access};
use crate::slab::Slot;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use tdfs_proto::perm::{READ, STICKY, WRITE};
use tdfs_proto::xattr::{
    split_name, XAttr, XAttrFlags, XAttrNs, MAX_XATTRS_PER_INODE, MAX_XATTR_SIZE,
    UNREADABLE_BY_SUPERUSER,
};
use tdfs_proto::FsError;

/// One stored attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XEnt {
    pub ns: XAttrNs,
    /// The name after the namespace prefix.
    pub name: CompactString,
    pub value: Box<[u8]>,
}

impl XEnt {
    fn full_name(&self) -> String {
        format!("{}{}", self.ns.prefix(), self.name)
    }
}

/// An inode's attributes, sorted by namespace and name.
pub type XAttrs = Box<[XEnt]>;

/// Whether `a` may name this attribute at all (HDFS's
/// `checkPermissionForApi`); `value` is the value being set, if any.
fn may_use(
    a: &Access,
    ns: XAttrNs,
    name: &str,
    value: Option<&[u8]>,
    full: &str,
) -> Result<(), FsError> {
    match ns {
        XAttrNs::User => Ok(()),
        XAttrNs::Trusted if a.superuser => Ok(()),
        XAttrNs::Security if name == UNREADABLE_BY_SUPERUSER => match value {
            Some(v) if !v.is_empty() => Err(denied(
                a,
                &format!(
                    "Attempt to set a value for '{full}'. Values are not allowed for this xattr."
                ),
                full,
            )),
            _ => Ok(()),
        },
        _ => Err(FsError::PermissionDenied {
            user: a.name.to_string(),
            access: format!("User doesn't have permission for xattr: {full}"),
            path: full.to_string(),
        }),
    }
}

/// Which stored attributes a caller sees (HDFS's `filterXAttrsForApi`).
fn visible(a: &Access, e: &XEnt) -> bool {
    match e.ns {
        XAttrNs::User => true,
        XAttrNs::Trusted => a.superuser,
        XAttrNs::Security => e.name == UNREADABLE_BY_SUPERUSER,
        _ => false,
    }
}

impl Namespace {
    /// WRITE on the inode, or for a `user.` attribute of a sticky
    /// directory, ownership (HDFS's `checkXAttrChangeAccess`).
    fn check_xattr_change(
        &self,
        a: &Access,
        slot: Slot,
        ns: XAttrNs,
        p: &str,
    ) -> Result<(), FsError> {
        let ino = self.slab.at(slot);
        if ns == XAttrNs::User && ino.is_dir() && ino.mode & STICKY != 0 {
            self.check_owner(a, slot, p)
        } else {
            self.check(a, slot, WRITE, p)
        }
    }

    fn xattrs_of(&self, slot: Slot) -> Vec<XEnt> {
        if !self.slab.at(slot).has(flags::XATTR) {
            return Vec::new();
        }
        self.side
            .xattrs
            .get(&slot)
            .map(|x| x.to_vec())
            .unwrap_or_default()
    }

    fn store_xattrs(&mut self, slot: Slot, v: Vec<XEnt>) {
        let empty = v.is_empty();
        if empty {
            self.side.xattrs.remove(&slot);
        } else {
            self.side.xattrs.insert(slot, v.into_boxed_slice());
        }
        self.slab.at_mut(slot).set(flags::XATTR, !empty);
    }

    pub(crate) fn set_xattr(
        &mut self,
        a: &Access,
        p: &str,
        full: &str,
        value: &[u8],
        f: XAttrFlags,
    ) -> Result<Outcome, FsError> {
        let (ns, name) = split_name(full)?;
        may_use(a, ns, name, Some(value), full)?;
        let size = name.len() + value.len();
        if size > MAX_XATTR_SIZE {
            return Err(FsError::InvalidArgument(format!(
                "The XAttr is too big. The maximum combined size of the name and value is {MAX_XATTR_SIZE}, but the total size is {size}"
            )));
        }
        let slot = self.resolve(a, p)?;
        self.check_xattr_change(a, slot, ns, p)?;
        if ns == XAttrNs::Security && self.slab.at(slot).is_dir() {
            return Err(FsError::InvalidArgument(format!(
                "Can only set '{full}' on a file."
            )));
        }
        let mut v = self.xattrs_of(slot);
        let pos = v.binary_search_by(|e| (e.ns, e.name.as_str()).cmp(&(ns, name)));
        let full_name = format!("{}{name}", ns.prefix());
        match pos {
            Ok(_) if !f.replace => {
                return Err(FsError::XAttr(format!(
                    "XAttr: {full_name} already exists. The REPLACE flag must be specified."
                )))
            }
            Err(_) if !f.create => {
                return Err(FsError::XAttr(format!(
                    "XAttr: {full_name} does not exist. The CREATE flag must be specified."
                )))
            }
            _ => {}
        }
        let ent = XEnt {
            ns,
            name: name.into(),
            value: value.into(),
        };
        match pos {
            Ok(i) => v[i] = ent,
            Err(i) => v.insert(i, ent),
        }
        let user_visible = v
            .iter()
            .filter(|e| matches!(e.ns, XAttrNs::User | XAttrNs::Trusted))
            .count();
        if user_visible > MAX_XATTRS_PER_INODE {
            return Err(FsError::XAttr(format!(
                "Cannot add additional XAttr to inode, would exceed limit of {MAX_XATTRS_PER_INODE}"
            )));
        }
        self.save_attrs(slot);
        self.store_xattrs(slot, v);
        Ok(Outcome::Done)
    }

    pub(crate) fn remove_xattr(
        &mut self,
        a: &Access,
        p: &str,
        full: &str,
    ) -> Result<Outcome, FsError> {
        let (ns, name) = split_name(full)?;
        may_use(a, ns, name, None, full)?;
        let slot = self.resolve(a, p)?;
        self.check_xattr_change(a, slot, ns, p)?;
        let mut v = self.xattrs_of(slot);
        let Ok(i) = v.binary_search_by(|e| (e.ns, e.name.as_str()).cmp(&(ns, name))) else {
            return Err(FsError::XAttr(
                "No matching attributes found for remove operation".into(),
            ));
        };
        v.remove(i);
        self.save_attrs(slot);
        self.store_xattrs(slot, v);
        Ok(Outcome::Done)
    }

    /// GETXATTRS of the inode in `slot` (as snapshot `at` saw it): the
    /// named ones, or every visible one when `names` is empty.
    pub(crate) fn get_xattrs_of(
        &self,
        a: &Access,
        slot: Slot,
        at: Option<u32>,
        names: &[String],
        p: &str,
    ) -> Result<Vec<XAttr>, FsError> {
        let mut wanted = Vec::with_capacity(names.len());
        for n in names {
            let (ns, name) = split_name(n)?;
            may_use(a, ns, name, None, n)?;
            wanted.push((ns, name));
        }
        let v = self.attrs_at(slot, at);
        if !crate::perm::permits(a, v.perms(), READ) {
            return Err(denied(a, "READ", p));
        }
        let all: Vec<&XEnt> = v
            .xattrs
            .unwrap_or(&[])
            .iter()
            .filter(|e| visible(a, e))
            .collect();
        if wanted.is_empty() {
            return Ok(all.iter().map(|e| to_wire(e)).collect());
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (ns, name) in wanted {
            match all.iter().find(|e| e.ns == ns && e.name == name) {
                Some(e) => out.push(to_wire(e)),
                None => {
                    return Err(FsError::XAttr(
                        "At least one of the attributes provided was not found.".into(),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// LISTXATTRS: the names the caller may see.
    pub(crate) fn list_xattrs_of(&self, a: &Access, slot: Slot, at: Option<u32>) -> Vec<String> {
        let v = self.attrs_at(slot, at);
        v.xattrs
            .unwrap_or(&[])
            .iter()
            .filter(|e| visible(a, e))
            .map(XEnt::full_name)
            .collect()
    }
}

fn to_wire(e: &XEnt) -> XAttr {
    XAttr {
        name: e.full_name(),
        value: e.value.to_vec(),
    }
}
