//! The wire requests of quotas, snapshots, ACLs, xattrs, truncate, concat
//! and trash: reads answered from the local namespace (after the read
//! barrier, as every read), mutations turned into their log operations.

use crate::node::MetaNode;
use tdfs_namespace::LogOp;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::perm::{new_inode_mode, AS_GIVEN};
use tdfs_proto::quota::ServerDefaults;
use tdfs_proto::FsError;

impl MetaNode {
    /// The reads the features add.
    pub(crate) fn read_feature(
        &self,
        user: &str,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        let core = self.core();
        match op {
            MetaRequest::GetQuotaUsage { path } => core
                .ns(|r| r.ns.quota_usage(user, &path))
                .map(MetaResponse::Quota),
            MetaRequest::ListSnapshottableDirs => core
                .ns(|r| r.ns.snapshottable_dirs(user))
                .map(MetaResponse::SnapshottableDirs),
            MetaRequest::ListSnapshots { path } => core
                .ns(|r| r.ns.snapshots(user, &path))
                .map(MetaResponse::Snapshots),
            MetaRequest::SnapshotDiff { path, from, to } => core
                .ns(|r| r.ns.snapshot_diff(user, &path, &from, &to))
                .map(MetaResponse::SnapshotDiff),
            MetaRequest::GetAclStatus { path } => core
                .ns(|r| r.ns.acl_status(user, &path))
                .map(MetaResponse::Acl),
            MetaRequest::GetXAttrs { path, names } => core
                .ns(|r| r.ns.get_xattrs(user, &path, &names))
                .map(MetaResponse::XAttrs),
            MetaRequest::ListXAttrs { path } => core
                .ns(|r| r.ns.list_xattrs(user, &path))
                .map(MetaResponse::XAttrNames),
            MetaRequest::GetServerDefaults => {
                let c = self.config();
                Ok(MetaResponse::ServerDefaults(ServerDefaults {
                    block_size: c.defaults.block_size,
                    replication: c.defaults.replication,
                    trash_interval_ms: c.trash_interval_ms,
                }))
            }
            other => Err(FsError::InvalidArgument(format!(
                "{} is not a read",
                other.name()
            ))),
        }
    }

    /// The mode a new inode at `path` gets: the umask applies, unless the
    /// mode is final (`AS_GIVEN`) or the parent has a default ACL (HDFS
    /// then filters the inherited ACL by the unmasked mode).
    pub(crate) fn mode_for(&self, user: &str, path: &str, mode: Option<u16>, default: u16) -> u16 {
        let given = mode.is_some_and(|m| m & AS_GIVEN != 0);
        if !given && self.core().ns(|r| r.ns.parent_has_default_acl(user, path)) {
            return mode.unwrap_or(default) & 0o1777;
        }
        new_inode_mode(mode, default)
    }
}

/// The log operation of a feature mutation.
pub(crate) fn feature_log_op(op: MetaRequest) -> Result<LogOp, FsError> {
    Ok(match op {
        MetaRequest::SetQuota {
            path,
            namespace,
            space,
        } => LogOp::SetQuota {
            path,
            namespace,
            space,
        },
        MetaRequest::SetTypeQuota {
            path,
            storage_type,
            quota,
        } => LogOp::SetTypeQuota {
            path,
            storage_type,
            quota,
        },
        MetaRequest::AllowSnapshot { path } => LogOp::AllowSnapshot { path },
        MetaRequest::DisallowSnapshot { path } => LogOp::DisallowSnapshot { path },
        MetaRequest::CreateSnapshot { path, name } => LogOp::CreateSnapshot { path, name },
        MetaRequest::DeleteSnapshot { path, name } => LogOp::DeleteSnapshot { path, name },
        MetaRequest::RenameSnapshot { path, old, new } => LogOp::RenameSnapshot { path, old, new },
        MetaRequest::ChangeAcl { path, change } => LogOp::ChangeAcl { path, change },
        MetaRequest::SetXAttr {
            path,
            name,
            value,
            flags,
        } => LogOp::SetXAttr {
            path,
            name,
            value,
            flags,
        },
        MetaRequest::RemoveXAttr { path, name } => LogOp::RemoveXAttr { path, name },
        MetaRequest::Truncate { path, length } => LogOp::Truncate { path, length },
        MetaRequest::Concat { target, sources } => LogOp::Concat { target, sources },
        other => {
            return Err(FsError::InvalidArgument(format!(
                "{} is not a mutation",
                other.name()
            )))
        }
    })
}
