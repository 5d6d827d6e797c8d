//! Permission checks: HDFS's owner/group/other bits, and, on an inode with
//! an ACL, HDFS's POSIX ACL check (named users and groups, each filtered
//! by the mask that the group bits hold). Identities are simple, as
//! Hadoop's simple authentication: a user is a member of the group of its
//! own name; the superuser passes every check.

use crate::acl::Ent;
use crate::inode::{flags, Inode};
use crate::ns::Namespace;
use crate::slab::Slot;
use tdfs_proto::acl::{AclKind, AclScope};
use tdfs_proto::perm::{EXECUTE, STICKY, WRITE};
use tdfs_proto::FsError;

/// Who is asking, for permission checks.
pub(crate) struct Access<'a> {
    pub name: &'a str,
    /// The interned id of `name`, if it owns or ever owned anything.
    pub id: Option<u32>,
    pub superuser: bool,
}

impl Access<'_> {
    /// The namespace itself (lease recovery, the leader's own work).
    pub(crate) fn system() -> Access<'static> {
        Access {
            name: "",
            id: None,
            superuser: true,
        }
    }

    fn member_of(&self, group: u32) -> bool {
        self.id == Some(group)
    }
}

/// What a check looks at: the current inode, or its state in a snapshot.
#[derive(Clone, Copy)]
pub(crate) struct Perms<'a> {
    pub owner: u32,
    pub group: u32,
    pub mode: u16,
    pub acl: Option<&'a [Ent]>,
}

/// Whether `a` has every bit of `want` given `p`.
pub(crate) fn permits(a: &Access, p: Perms, want: u16) -> bool {
    if a.superuser {
        return true;
    }
    let owner_bits = (p.mode >> 6) & 7;
    if Some(p.owner) == a.id {
        return owner_bits & want == want;
    }
    let Some(acl) = p.acl else {
        let bits = if a.member_of(p.group) {
            (p.mode >> 3) & 7
        } else {
            p.mode & 7
        };
        return bits & want == want;
    };
    // With an ACL the group bits are the mask.
    let mask = (p.mode >> 3) & 7;
    let mut matched = false;
    for e in acl.iter().take_while(|e| e.scope == AclScope::Access) {
        let perm = e.perm as u16 & mask;
        match e.kind {
            AclKind::User if Some(e.name) == a.id => return perm & want == want,
            AclKind::Group => {
                let g = if e.name == 0 { p.group } else { e.name };
                if a.member_of(g) {
                    if perm & want == want {
                        return true;
                    }
                    matched = true;
                }
            }
            _ => {}
        }
    }
    !matched && p.mode & 7 & want == want
}

impl Namespace {
    pub(crate) fn access<'u>(&self, user: &'u str) -> Access<'u> {
        let id = self.strings.find(user);
        Access {
            name: user,
            superuser: id.is_some_and(|i| i == self.superuser),
            id,
        }
    }

    /// The permission view of the live inode in `slot`.
    pub(crate) fn perms_of<'s>(&'s self, slot: Slot, ino: &'s Inode) -> Perms<'s> {
        Perms {
            owner: ino.owner,
            group: ino.group,
            mode: ino.mode,
            acl: if ino.has(flags::ACL) {
                self.side.acls.get(&slot).map(|a| &a[..])
            } else {
                None
            },
        }
    }

    /// Whether `a` has every bit of `want` on the live inode in `slot`.
    pub(crate) fn allowed(&self, a: &Access, slot: Slot, want: u16) -> bool {
        a.superuser || permits(a, self.perms_of(slot, self.slab.at(slot)), want)
    }

    pub(crate) fn check(&self, a: &Access, slot: Slot, want: u16, p: &str) -> Result<(), FsError> {
        if self.allowed(a, slot, want) {
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

    pub(crate) fn check_superuser(&self, a: &Access, p: &str) -> Result<(), FsError> {
        if a.superuser {
            Ok(())
        } else {
            Err(denied(a, "SUPERUSER", p))
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
        if !self.allowed(a, parent, WRITE | EXECUTE) {
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
}

pub(crate) fn denied(a: &Access, access: &str, p: &str) -> FsError {
    FsError::PermissionDenied {
        user: a.name.to_string(),
        access: access.to_string(),
        path: p.to_string(),
    }
}

/// Checks a user or group name given to `chown` or named in an ACL.
pub(crate) fn validate_name(n: &str) -> Result<(), FsError> {
    if n.is_empty() || n.len() > 255 || n.contains([':', '/', '\0', ' ', ',']) {
        return Err(FsError::InvalidArgument(format!(
            "invalid user or group name {n:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(kind: AclKind, name: u32, perm: u8) -> Ent {
        Ent {
            scope: AclScope::Access,
            kind,
            name,
            perm,
        }
    }

    #[test]
    fn acl_checks_follow_hdfs() {
        // owner 1, group 2; bob = 3, eng = 4 (a user named like a group).
        let acl = [ent(AclKind::User, 3, 7), ent(AclKind::Group, 0, 5)];
        let p = Perms {
            owner: 1,
            group: 2,
            mode: 0o740, // mask r--
            acl: Some(&acl),
        };
        let who = |id| Access {
            name: "x",
            id: Some(id),
            superuser: false,
        };
        // Named user: rwx filtered by the mask r--.
        assert!(permits(&who(3), p, 4));
        assert!(!permits(&who(3), p, 2));
        // A member of the owning group: r-x & r--.
        assert!(permits(&who(2), p, 4));
        assert!(!permits(&who(2), p, 1));
        // Others: ---.
        assert!(!permits(&who(9), p, 4));
        // Owner: the user bits.
        assert!(permits(&who(1), p, 7));
        // Without the ACL, bob is "other".
        let plain = Perms { acl: None, ..p };
        assert!(!permits(&who(3), plain, 4));
    }
}
