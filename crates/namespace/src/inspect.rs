//! Reads of what the features add: quotas and their usage, ACLs,
//! extended attributes, snapshots and their differences, and the statuses
//! `DIR/.snapshot` shows. Snapshot paths are accepted wherever HDFS
//! accepts them.

use crate::ns::Namespace;
use crate::perm::Access;
use crate::read::Listing;
use crate::slab::Slot;
use crate::snapshot::Node;
use tdfs_proto::acl::AclStatus;
use tdfs_proto::meta::FileStatus;
use tdfs_proto::perm::{EXECUTE, READ};
use tdfs_proto::quota::QuotaUsage;
use tdfs_proto::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir, DOT_SNAPSHOT};
use tdfs_proto::xattr::XAttr;
use tdfs_proto::{path, FsError};

impl Namespace {
    fn ready_access<'u>(&self, user: &'u str) -> Result<Access<'u>, FsError> {
        if !self.is_initialized() {
            return Err(FsError::Unavailable("namespace not initialized".into()));
        }
        Ok(self.access(user))
    }

    /// The inode a read names (`DIR/.snapshot` names `DIR`).
    fn read_target(&self, a: &Access, p: &str) -> Result<(Slot, Option<u32>), FsError> {
        Ok(match self.resolve_node(a, p)? {
            Node::At { slot, at } => (slot, at),
            Node::SnapshotDir { root } => (root, None),
        })
    }

    /// GETQUOTAUSAGE and `-count -q`.
    pub fn quota_usage(&self, user: &str, p: &str) -> Result<QuotaUsage, FsError> {
        let s = self.summary(user, p)?;
        let a = self.ready_access(user)?;
        let (slot, at) = self.read_target(&a, p)?;
        let u = crate::inode::Usage {
            files: s.file_count,
            dirs: s.directory_count,
            bytes: s.length,
            space: s.space_consumed,
        };
        let mut q = self.quota_usage_of(slot, &u);
        if at.is_some() {
            q.ns_quota = None;
            q.space_quota = None;
            q.type_quotas.clear();
        }
        Ok(q)
    }

    pub fn acl_status(&self, user: &str, p: &str) -> Result<AclStatus, FsError> {
        let a = self.ready_access(user)?;
        let (slot, at) = self.read_target(&a, p)?;
        Ok(self.acl_status_of(slot, at))
    }

    pub fn get_xattrs(&self, user: &str, p: &str, names: &[String]) -> Result<Vec<XAttr>, FsError> {
        let a = self.ready_access(user)?;
        let (slot, at) = self.read_target(&a, p)?;
        self.get_xattrs_of(&a, slot, at, names, p)
    }

    pub fn list_xattrs(&self, user: &str, p: &str) -> Result<Vec<String>, FsError> {
        let a = self.ready_access(user)?;
        let (slot, at) = self.read_target(&a, p)?;
        Ok(self.list_xattrs_of(&a, slot, at))
    }

    /// The snapshottable directories: all for the superuser, the caller's
    /// own for anyone else (as HDFS), by path.
    pub fn snapshottable_dirs(&self, user: &str) -> Result<Vec<SnapshottableDir>, FsError> {
        let a = self.ready_access(user)?;
        let mut v: Vec<SnapshottableDir> = self
            .snap
            .roots
            .iter()
            .filter(|(s, _)| self.attached(**s))
            .filter(|(s, _)| a.superuser || Some(self.slab.at(**s).owner) == a.id)
            .map(|(s, r)| SnapshottableDir {
                path: self.path_of(*s),
                status: self.status(*s),
                snapshots: r.snaps.len() as u32,
                quota: r.quota,
            })
            .collect();
        v.sort_by(|x, y| x.path.cmp(&y.path));
        Ok(v)
    }

    /// The snapshots of the snapshottable directory at `p`, oldest first.
    pub fn snapshots(&self, user: &str, p: &str) -> Result<Vec<SnapshotInfo>, FsError> {
        let a = self.ready_access(user)?;
        let slot = self.resolve(&a, p)?;
        if !self.snap.roots.contains_key(&slot) {
            return Err(FsError::Snapshot(format!(
                "Directory is not a snapshottable directory: {p}"
            )));
        }
        self.check(&a, slot, READ | EXECUTE, p)?;
        Ok(self.snapshots_of(slot))
    }

    pub fn snapshot_diff(
        &self,
        user: &str,
        p: &str,
        from: &str,
        to: &str,
    ) -> Result<SnapshotDiffReport, FsError> {
        let a = self.ready_access(user)?;
        self.snapshot_diff_report(&a, p, from, to)
    }

    /// Whether the parent directory of `p` has a default ACL (the leader
    /// then keeps the requested mode unmasked, as HDFS).
    pub fn parent_has_default_acl(&self, user: &str, p: &str) -> bool {
        let Ok(a) = self.ready_access(user) else {
            return false;
        };
        let parent = path::normalize(p)
            .ok()
            .and_then(|n| path::split_parent(&n).map(|(d, _)| d.to_string()));
        parent
            .and_then(|d| self.resolve(&a, &d).ok())
            .is_some_and(|s| self.has_default_acl(s))
    }

    /// The status of `DIR/.snapshot`.
    pub(crate) fn dot_snapshot_status(&self, root: Slot) -> FileStatus {
        let mut st = self.status(root);
        st.name = DOT_SNAPSHOT.to_string();
        st.children = self
            .snap
            .roots
            .get(&root)
            .map_or(0, |r| r.snaps.len() as u64);
        st.snapshot_enabled = false;
        st
    }

    /// `DIR/.snapshot` listed: one directory per snapshot, by name.
    pub(crate) fn list_snapshots(&self, root: Slot, after: Option<&str>, limit: usize) -> Listing {
        let Some(r) = self.snap.roots.get(&root) else {
            return Listing {
                entries: Vec::new(),
                remaining: 0,
            };
        };
        let mut snaps: Vec<_> = r
            .snaps
            .iter()
            .filter(|s| after.is_none_or(|a| s.name.as_str() > a))
            .collect();
        snaps.sort_by(|x, y| x.name.cmp(&y.name));
        let total = snaps.len();
        let entries: Vec<FileStatus> = snaps
            .into_iter()
            .take(limit)
            .map(|s| {
                let mut st = self.status_at(root, Some(s.id));
                st.name = s.name.to_string();
                st.mtime = s.ctime;
                st
            })
            .collect();
        Listing {
            remaining: (total - entries.len()) as u64,
            entries,
        }
    }
}
