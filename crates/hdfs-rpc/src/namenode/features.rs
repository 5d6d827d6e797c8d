//! The `ClientNamenodeProtocol` methods of the namespace features —
//! quotas, snapshots, ACLs, extended attributes, truncate and concat —
//! each one `MetaRequest` through [`Namenode::exec`], as every front end.

use super::feature_convert as fc;
use super::ops::unexpected;
use super::{run, Ctx, Namenode};
use crate::ipc::Outcome;
use crate::proto::hdfs::*;
use bytes::Bytes;
use tdfs_proto::acl::AclChange;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::FsError;

impl Namenode {
    /// Serves `method` when it is a feature method.
    pub(super) async fn feature_call(
        &self,
        ctx: &Ctx,
        method: &str,
        body: Bytes,
    ) -> Option<Outcome> {
        if let Some(o) = self.acl_call(ctx, method, body.clone()).await {
            return Some(o);
        }
        if let Some(o) = self.snapshot_call(ctx, method, body.clone()).await {
            return Some(o);
        }
        self.quota_call(ctx, method, body).await
    }

    /// Runs a mutation or read answered by an empty reply.
    async fn done(&self, ctx: &Ctx, op: MetaRequest) -> Result<(), FsError> {
        self.exec(ctx, None, op).await.map(|_| ())
    }

    async fn change_acl(&self, ctx: &Ctx, src: String, change: AclChange) -> Result<(), FsError> {
        self.done(ctx, MetaRequest::ChangeAcl { path: src, change })
            .await
    }

    async fn acl_call(&self, ctx: &Ctx, method: &str, body: Bytes) -> Option<Outcome> {
        Some(match method {
            "modifyAclEntries" => {
                run(body, |r: ModifyAclEntriesRequestProto| async move {
                    let e = fc::acl_entries_from(&r.acl_spec)?;
                    self.change_acl(ctx, r.src, AclChange::Modify(e)).await?;
                    Ok(ModifyAclEntriesResponseProto {})
                })
                .await
            }
            "removeAclEntries" => {
                run(body, |r: RemoveAclEntriesRequestProto| async move {
                    let e = fc::acl_entries_from(&r.acl_spec)?;
                    self.change_acl(ctx, r.src, AclChange::Remove(e)).await?;
                    Ok(RemoveAclEntriesResponseProto {})
                })
                .await
            }
            "removeDefaultAcl" => {
                run(body, |r: RemoveDefaultAclRequestProto| async move {
                    self.change_acl(ctx, r.src, AclChange::RemoveDefault)
                        .await?;
                    Ok(RemoveDefaultAclResponseProto {})
                })
                .await
            }
            "removeAcl" => {
                run(body, |r: RemoveAclRequestProto| async move {
                    self.change_acl(ctx, r.src, AclChange::RemoveAll).await?;
                    Ok(RemoveAclResponseProto {})
                })
                .await
            }
            "setAcl" => {
                run(body, |r: SetAclRequestProto| async move {
                    let e = fc::acl_entries_from(&r.acl_spec)?;
                    self.change_acl(ctx, r.src, AclChange::Set(e)).await?;
                    Ok(SetAclResponseProto {})
                })
                .await
            }
            "getAclStatus" => run(body, |r| self.acl_status(ctx, r)).await,
            "setXAttr" => run(body, |r| self.set_xattr(ctx, r)).await,
            "getXAttrs" => run(body, |r| self.get_xattrs(ctx, r)).await,
            "listXAttrs" => run(body, |r| self.list_xattrs(ctx, r)).await,
            "removeXAttr" => run(body, |r| self.remove_xattr(ctx, r)).await,
            _ => return None,
        })
    }

    async fn acl_status(
        &self,
        ctx: &Ctx,
        r: GetAclStatusRequestProto,
    ) -> Result<GetAclStatusResponseProto, FsError> {
        match self
            .exec(ctx, None, MetaRequest::GetAclStatus { path: r.src })
            .await?
        {
            MetaResponse::Acl(a) => Ok(GetAclStatusResponseProto {
                result: fc::acl_status(&a),
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn set_xattr(
        &self,
        ctx: &Ctx,
        r: SetXAttrRequestProto,
    ) -> Result<SetXAttrResponseProto, FsError> {
        let x = r
            .x_attr
            .ok_or_else(|| FsError::InvalidArgument("setXAttr without an xAttr".into()))?;
        let op = MetaRequest::SetXAttr {
            path: r.src,
            name: fc::xattr_name(&x)?,
            value: x.value.unwrap_or_default(),
            flags: fc::xattr_flags(r.flag),
        };
        self.done(ctx, op).await?;
        Ok(SetXAttrResponseProto {})
    }

    async fn get_xattrs(
        &self,
        ctx: &Ctx,
        r: GetXAttrsRequestProto,
    ) -> Result<GetXAttrsResponseProto, FsError> {
        let names = r
            .x_attrs
            .iter()
            .map(fc::xattr_name)
            .collect::<Result<Vec<_>, _>>()?;
        let op = MetaRequest::GetXAttrs { path: r.src, names };
        match self.exec(ctx, None, op).await? {
            MetaResponse::XAttrs(v) => Ok(GetXAttrsResponseProto {
                x_attrs: fc::xattrs(&v)?,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn list_xattrs(
        &self,
        ctx: &Ctx,
        r: ListXAttrsRequestProto,
    ) -> Result<ListXAttrsResponseProto, FsError> {
        match self
            .exec(ctx, None, MetaRequest::ListXAttrs { path: r.src })
            .await?
        {
            MetaResponse::XAttrNames(v) => Ok(ListXAttrsResponseProto {
                x_attrs: v
                    .iter()
                    .map(|n| fc::xattr(n, None))
                    .collect::<Result<_, _>>()?,
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn remove_xattr(
        &self,
        ctx: &Ctx,
        r: RemoveXAttrRequestProto,
    ) -> Result<RemoveXAttrResponseProto, FsError> {
        let x = r
            .x_attr
            .ok_or_else(|| FsError::InvalidArgument("removeXAttr without an xAttr".into()))?;
        let op = MetaRequest::RemoveXAttr {
            path: r.src,
            name: fc::xattr_name(&x)?,
        };
        self.done(ctx, op).await?;
        Ok(RemoveXAttrResponseProto {})
    }
}
