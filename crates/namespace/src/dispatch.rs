//! The mutations of quotas, snapshots, ACLs, xattrs, truncate and concat,
//! dispatched from [`Namespace::apply`].

use crate::ns::Namespace;
use crate::op::{LogOp, NsEvent, Outcome, Stamp};
use crate::perm::Access;
use tdfs_proto::FsError;

impl Namespace {
    pub(crate) fn apply_feature_op(
        &mut self,
        a: &Access,
        s: &Stamp,
        op: &LogOp,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let now = s.now;
        match op {
            LogOp::SetQuota {
                path,
                namespace,
                space,
            } => self.set_quota(a, path, *namespace, *space),
            LogOp::SetTypeQuota {
                path,
                storage_type,
                quota,
            } => self.set_type_quota(a, path, storage_type, *quota),
            LogOp::AllowSnapshot { path } => self.allow_snapshot(a, path),
            LogOp::DisallowSnapshot { path } => self.disallow_snapshot(a, path),
            LogOp::CreateSnapshot { path, name } => {
                self.create_snapshot(a, path, name.as_deref(), now)
            }
            LogOp::DeleteSnapshot { path, name } => self.delete_snapshot(a, path, name, now, ev),
            LogOp::RenameSnapshot { path, old, new } => {
                self.rename_snapshot(a, path, old, new, now)
            }
            LogOp::ChangeAcl { path, change } => self.change_acl(a, path, change),
            LogOp::SetXAttr {
                path,
                name,
                value,
                flags,
            } => self.set_xattr(a, path, name, value, *flags),
            LogOp::RemoveXAttr { path, name } => self.remove_xattr(a, path, name),
            LogOp::Truncate { path, length } => self.truncate(a, path, *length, now, ev),
            LogOp::Concat { target, sources } => self.concat(a, target, sources, now, ev),
            other => Err(FsError::Internal(format!(
                "{} reached the user dispatcher",
                other.name()
            ))),
        }
    }
}
