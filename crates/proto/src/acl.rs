//! POSIX ACL entries as HDFS spells them (`[default:]user:bob:rwx`), shared
//! by the namespace, the shell and WebHDFS so that every front end parses
//! and prints them the same way (Hadoop's `AclEntry.parseAclSpec` and
//! `AclEntry.toStringStable`).

use crate::FsError;
use serde::{Deserialize, Serialize};

/// Entries an ACL (or an ACL spec) holds at most, as HDFS.
pub const MAX_ACL_ENTRIES: usize = 32;

/// Whether an entry governs access to the inode or is inherited by new children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclScope {
    Access,
    Default,
}

/// The kinds of entries, in the order an ACL sorts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AclKind {
    User,
    Group,
    Mask,
    Other,
}

impl AclKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AclKind::User => "user",
            AclKind::Group => "group",
            AclKind::Mask => "mask",
            AclKind::Other => "other",
        }
    }
}

/// One ACL entry. `name: None` is the owner (user), the owning group
/// (group), or the only mask/other entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclEntry {
    pub scope: AclScope,
    pub kind: AclKind,
    pub name: Option<String>,
    /// `rwx` bits (0..=7).
    pub perm: u8,
}

impl AclEntry {
    pub fn new(scope: AclScope, kind: AclKind, name: Option<&str>, perm: u8) -> Self {
        AclEntry {
            scope,
            kind,
            name: name.map(str::to_string),
            perm,
        }
    }

    /// The sort key HDFS orders entries by: scope, kind, then name (unnamed first).
    pub fn key(&self) -> (AclScope, AclKind, Option<&str>) {
        (self.scope, self.kind, self.name.as_deref())
    }
}

impl std::fmt::Display for AclEntry {
    /// `default:user:bob:rwx`, `group::r-x` (Hadoop's `toStringStable`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scope == AclScope::Default {
            f.write_str("default:")?;
        }
        write!(
            f,
            "{}:{}:{}",
            self.kind.as_str(),
            self.name.as_deref().unwrap_or(""),
            perm_string(self.perm)
        )
    }
}

/// `rwx`, `r-x`, `---`.
pub fn perm_string(p: u8) -> String {
    let mut s = String::with_capacity(3);
    s.push(if p & 4 != 0 { 'r' } else { '-' });
    s.push(if p & 2 != 0 { 'w' } else { '-' });
    s.push(if p & 1 != 0 { 'x' } else { '-' });
    s
}

fn parse_perm(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    if b.len() != 3 {
        return None;
    }
    let bit = |c: u8, want: u8, v: u8| match c {
        _ if c == want => Some(v),
        b'-' => Some(0),
        _ => None,
    };
    Some(bit(b[0], b'r', 4)? | bit(b[1], b'w', 2)? | bit(b[2], b'x', 1)?)
}

fn bad(spec: &str, what: &str) -> FsError {
    FsError::InvalidArgument(format!("{what} in <aclSpec> : {spec}"))
}

/// Parses one entry; without `with_perm` (removals) the permission is absent.
pub fn parse_entry(spec: &str, with_perm: bool) -> Result<AclEntry, FsError> {
    // Java's split(":") drops trailing empty fields: "user::" is ["user"].
    let mut parts: Vec<&str> = spec.split(':').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    let mut i = 0;
    let mut scope = AclScope::Access;
    if parts.first() == Some(&"default") {
        scope = AclScope::Default;
        i += 1;
    }
    let kind = match parts.get(i).map(|k| k.to_ascii_lowercase()).as_deref() {
        Some("user") => AclKind::User,
        Some("group") => AclKind::Group,
        Some("mask") => AclKind::Mask,
        Some("other") => AclKind::Other,
        Some(_) => return Err(bad(spec, "Invalid type of acl")),
        None => return Err(bad(spec, "Invalid")),
    };
    i += 1;
    let mut name = None;
    if let Some(n) = parts.get(i) {
        if !n.is_empty() {
            name = Some(n.to_string());
        }
        i += 1;
    }
    let mut perm = 0;
    if with_perm {
        let p = parts.get(i).ok_or_else(|| bad(spec, "Invalid"))?;
        perm = parse_perm(p).ok_or_else(|| bad(spec, "Invalid permission"))?;
        i += 1;
    }
    if parts.len() > i {
        return Err(bad(spec, "Invalid"));
    }
    if let Some(n) = &name {
        if n.len() > 255 || n.contains(['/', '\0', ',']) {
            return Err(bad(spec, "Invalid name"));
        }
    }
    Ok(AclEntry {
        scope,
        kind,
        name,
        perm,
    })
}

/// Parses a comma-separated ACL spec (`user:bob:rwx,group::r-x`).
pub fn parse_spec(spec: &str, with_perm: bool) -> Result<Vec<AclEntry>, FsError> {
    let entries: Vec<AclEntry> = spec
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|e| parse_entry(e, with_perm))
        .collect::<Result<_, _>>()?;
    if entries.len() > MAX_ACL_ENTRIES {
        return Err(FsError::Acl(format!(
            "Invalid ACL: ACL spec has {} entries, which exceeds maximum of {MAX_ACL_ENTRIES}.",
            entries.len()
        )));
    }
    Ok(entries)
}

/// The ACL changes HDFS offers (`setfacl -m`, `-x`, `-k`, `-b`, `--set`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AclChange {
    /// Adds or replaces the given entries (MODIFYACLENTRIES).
    Modify(Vec<AclEntry>),
    /// Removes the entries with the given scope, kind and name (REMOVEACLENTRIES).
    Remove(Vec<AclEntry>),
    /// Removes every default entry (REMOVEDEFAULTACL).
    RemoveDefault,
    /// Removes every entry but the base ones (REMOVEACL).
    RemoveAll,
    /// Replaces the ACL of each scope the spec names (SETACL).
    Set(Vec<AclEntry>),
}

/// GETACLSTATUS: the owner, group, permission and the ACL entries that the
/// permission bits do not carry (named users, the owning group, named
/// groups, every default entry), as HDFS's `AclStatus`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclStatus {
    pub owner: String,
    pub group: String,
    /// Permission bits (with an ACL, the group bits are the mask).
    pub mode: u16,
    pub entries: Vec<AclEntry>,
}

/// The full ACL of an inode from its permission bits and the entries an
/// [`AclStatus`] carries (HDFS's `AclUtil.getAclFromPermAndEntries`): the
/// owner, mask and other entries come from the bits.
pub fn full_acl(mode: u16, entries: &[AclEntry]) -> Vec<AclEntry> {
    let bits = |shift: u16| ((mode >> shift) & 7) as u8;
    let base = |kind, perm| AclEntry::new(AclScope::Access, kind, None, perm);
    let (access, defaults): (Vec<&AclEntry>, Vec<&AclEntry>) =
        entries.iter().partition(|e| e.scope == AclScope::Access);
    let mut out = Vec::with_capacity(entries.len() + 3);
    if access.is_empty() {
        out.push(base(AclKind::User, bits(6)));
        out.push(base(AclKind::Group, bits(3)));
        out.push(base(AclKind::Other, bits(0)));
    } else {
        out.push(base(AclKind::User, bits(6)));
        out.extend(access.into_iter().cloned());
        out.push(base(AclKind::Mask, bits(3)));
        out.push(base(AclKind::Other, bits(0)));
    }
    out.extend(defaults.into_iter().cloned());
    out
}

/// What an entry of `acl` (a full, sorted ACL) actually grants: named and
/// group entries are filtered by their scope's mask (HDFS's
/// `AclStatus.getEffectivePermission`).
pub fn effective(e: &AclEntry, acl: &[AclEntry]) -> u8 {
    if e.kind == AclKind::Mask || (e.name.is_none() && e.kind != AclKind::Group) {
        return e.perm;
    }
    acl.iter()
        .find(|m| m.scope == e.scope && m.kind == AclKind::Mask)
        .map_or(e.perm, |m| e.perm & m.perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_entries_as_hadoop() {
        let e = parse_entry("default:user:bob:rwx", true).unwrap();
        assert_eq!(e.scope, AclScope::Default);
        assert_eq!(e.to_string(), "default:user:bob:rwx");
        let g = parse_entry("group::r-x", true).unwrap();
        assert_eq!(
            (g.kind, g.name.as_deref(), g.perm),
            (AclKind::Group, None, 5)
        );
        assert_eq!(g.to_string(), "group::r-x");
        let x = parse_entry("user:bob", false).unwrap();
        assert_eq!(x.name.as_deref(), Some("bob"));
        assert_eq!(parse_entry("mask::", false).unwrap().kind, AclKind::Mask);
        for bad in [
            "",
            "usr:bob:rwx",
            "user:bob:rwz",
            "user:bob",
            "user:bob:rwx:x",
        ] {
            assert!(parse_entry(bad, true).is_err(), "{bad}");
        }
        let spec = parse_spec("user::rwx,user:alice:r--,group::r-x,other::---", true).unwrap();
        assert_eq!(spec.len(), 4);
        let many = vec!["user:u:rwx"; 33].join(",");
        assert!(matches!(parse_spec(&many, true), Err(FsError::Acl(_))));
    }
}
