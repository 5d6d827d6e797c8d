//! Client helpers for quotas, snapshots, ACLs, extended attributes,
//! truncate, concat and the server defaults (trash interval).

use crate::meta::{unexpected_meta, MetaClient};
use tdfs_proto::acl::{AclChange, AclStatus};
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::quota::{QuotaChange, QuotaUsage, ServerDefaults};
use tdfs_proto::snapshot::{SnapshotDiffReport, SnapshotInfo, SnapshottableDir};
use tdfs_proto::xattr::{XAttr, XAttrFlags};
use tdfs_proto::FsError;

impl MetaClient {
    async fn done(&self, op: MetaRequest) -> Result<(), FsError> {
        self.meta(op).await.map(|_| ())
    }

    pub async fn set_quota(
        &self,
        path: &str,
        namespace: QuotaChange,
        space: QuotaChange,
    ) -> Result<(), FsError> {
        self.done(MetaRequest::SetQuota {
            path: path.to_string(),
            namespace,
            space,
        })
        .await
    }

    pub async fn set_type_quota(
        &self,
        path: &str,
        storage_type: &str,
        quota: QuotaChange,
    ) -> Result<(), FsError> {
        self.done(MetaRequest::SetTypeQuota {
            path: path.to_string(),
            storage_type: storage_type.to_string(),
            quota,
        })
        .await
    }

    pub async fn quota_usage(&self, path: &str) -> Result<QuotaUsage, FsError> {
        match self
            .meta(MetaRequest::GetQuotaUsage {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Quota(q) => Ok(q),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn allow_snapshot(&self, path: &str) -> Result<(), FsError> {
        self.done(MetaRequest::AllowSnapshot {
            path: path.to_string(),
        })
        .await
    }

    pub async fn disallow_snapshot(&self, path: &str) -> Result<(), FsError> {
        self.done(MetaRequest::DisallowSnapshot {
            path: path.to_string(),
        })
        .await
    }

    /// Takes a snapshot; returns its path (`DIR/.snapshot/NAME`).
    pub async fn create_snapshot(&self, path: &str, name: Option<&str>) -> Result<String, FsError> {
        let op = MetaRequest::CreateSnapshot {
            path: path.to_string(),
            name: name.map(str::to_string),
        };
        match self.meta(op).await? {
            MetaResponse::Path(p) => Ok(p),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn delete_snapshot(&self, path: &str, name: &str) -> Result<(), FsError> {
        self.done(MetaRequest::DeleteSnapshot {
            path: path.to_string(),
            name: name.to_string(),
        })
        .await
    }

    pub async fn rename_snapshot(&self, path: &str, old: &str, new: &str) -> Result<(), FsError> {
        self.done(MetaRequest::RenameSnapshot {
            path: path.to_string(),
            old: old.to_string(),
            new: new.to_string(),
        })
        .await
    }

    pub async fn snapshottable_dirs(&self) -> Result<Vec<SnapshottableDir>, FsError> {
        match self.meta(MetaRequest::ListSnapshottableDirs).await? {
            MetaResponse::SnapshottableDirs(v) => Ok(v),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn snapshots(&self, path: &str) -> Result<Vec<SnapshotInfo>, FsError> {
        match self
            .meta(MetaRequest::ListSnapshots {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Snapshots(v) => Ok(v),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn snapshot_diff(
        &self,
        path: &str,
        from: &str,
        to: &str,
    ) -> Result<SnapshotDiffReport, FsError> {
        let op = MetaRequest::SnapshotDiff {
            path: path.to_string(),
            from: from.to_string(),
            to: to.to_string(),
        };
        match self.meta(op).await? {
            MetaResponse::SnapshotDiff(r) => Ok(r),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn change_acl(&self, path: &str, change: AclChange) -> Result<(), FsError> {
        self.done(MetaRequest::ChangeAcl {
            path: path.to_string(),
            change,
        })
        .await
    }

    pub async fn acl_status(&self, path: &str) -> Result<AclStatus, FsError> {
        match self
            .meta(MetaRequest::GetAclStatus {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::Acl(a) => Ok(a),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn set_xattr(
        &self,
        path: &str,
        name: &str,
        value: &[u8],
        flags: XAttrFlags,
    ) -> Result<(), FsError> {
        self.done(MetaRequest::SetXAttr {
            path: path.to_string(),
            name: name.to_string(),
            value: value.to_vec(),
            flags,
        })
        .await
    }

    pub async fn remove_xattr(&self, path: &str, name: &str) -> Result<(), FsError> {
        self.done(MetaRequest::RemoveXAttr {
            path: path.to_string(),
            name: name.to_string(),
        })
        .await
    }

    /// The named attributes, or every one the caller sees when `names` is empty.
    pub async fn xattrs(&self, path: &str, names: &[String]) -> Result<Vec<XAttr>, FsError> {
        let op = MetaRequest::GetXAttrs {
            path: path.to_string(),
            names: names.to_vec(),
        };
        match self.meta(op).await? {
            MetaResponse::XAttrs(v) => Ok(v),
            other => Err(unexpected_meta(other)),
        }
    }

    pub async fn list_xattrs(&self, path: &str) -> Result<Vec<String>, FsError> {
        match self
            .meta(MetaRequest::ListXAttrs {
                path: path.to_string(),
            })
            .await?
        {
            MetaResponse::XAttrNames(v) => Ok(v),
            other => Err(unexpected_meta(other)),
        }
    }

    /// Truncates; `true` when done at once, `false` when the last block is
    /// being recovered (see [`wait_closed`](Self::wait_closed)).
    pub async fn truncate(&self, path: &str, length: u64) -> Result<bool, FsError> {
        let op = MetaRequest::Truncate {
            path: path.to_string(),
            length,
        };
        match self.meta(op).await? {
            MetaResponse::Bool(b) => Ok(b),
            other => Err(unexpected_meta(other)),
        }
    }

    /// Waits until `path` is no longer under construction (a truncate's
    /// recovery finished), polling up to `timeout`.
    pub async fn wait_closed(
        &self,
        path: &str,
        timeout: std::time::Duration,
    ) -> Result<(), FsError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            if !self.stat(path).await?.under_construction {
                return Ok(());
            }
            if std::time::Instant::now() + pause > deadline {
                return Err(FsError::Timeout(timeout.as_millis() as u64));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
    }

    pub async fn concat(&self, target: &str, sources: &[String]) -> Result<(), FsError> {
        self.done(MetaRequest::Concat {
            target: target.to_string(),
            sources: sources.to_vec(),
        })
        .await
    }

    pub async fn server_defaults(&self) -> Result<ServerDefaults, FsError> {
        match self.meta(MetaRequest::GetServerDefaults).await? {
            MetaResponse::ServerDefaults(d) => Ok(d),
            other => Err(unexpected_meta(other)),
        }
    }
}
