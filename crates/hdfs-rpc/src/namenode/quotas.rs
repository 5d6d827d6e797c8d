//! Quotas, content summaries with their quotas, truncate and concat over
//! `ClientNamenodeProtocol`.

use super::feature_convert as fc;
use super::ops::unexpected;
use super::{run, Ctx, Namenode};
use crate::ipc::Outcome;
use crate::proto::hdfs::*;
use bytes::Bytes;
use tdfs_proto::meta::{ContentSummary, MetaRequest, MetaResponse};
use tdfs_proto::quota::QuotaUsage;
use tdfs_proto::FsError;

impl Namenode {
    pub(super) async fn quota_call(&self, ctx: &Ctx, method: &str, body: Bytes) -> Option<Outcome> {
        Some(match method {
            "setQuota" => run(body, |r| self.set_quota(ctx, r)).await,
            "getQuotaUsage" => {
                run(body, |r: GetQuotaUsageRequestProto| async move {
                    let usage = fc::quota_usage(&self.quota(ctx, r.path).await?);
                    Ok(GetQuotaUsageResponseProto { usage })
                })
                .await
            }
            "getContentSummary" => {
                run(body, |r: GetContentSummaryRequestProto| async move {
                    let s = self.summary(ctx, r.path.clone()).await?;
                    let q = self.quota(ctx, r.path).await?;
                    Ok(GetContentSummaryResponseProto {
                        summary: fc::content_summary(&s, &q),
                    })
                })
                .await
            }
            "truncate" => {
                run(body, |r: TruncateRequestProto| async move {
                    let op = MetaRequest::Truncate {
                        path: r.src,
                        length: r.new_length,
                    };
                    let holder = (!r.client_name.is_empty()).then_some(r.client_name.as_str());
                    match self.exec(ctx, holder, op).await? {
                        MetaResponse::Bool(result) => Ok(TruncateResponseProto { result }),
                        other => Err(unexpected(other)),
                    }
                })
                .await
            }
            "concat" => {
                run(body, |r: ConcatRequestProto| async move {
                    let op = MetaRequest::Concat {
                        target: r.trg,
                        sources: r.srcs,
                    };
                    self.exec(ctx, None, op).await?;
                    Ok(ConcatResponseProto {})
                })
                .await
            }
            _ => return None,
        })
    }

    /// `setQuota`: with a storage type, that type's space quota (the
    /// namespace quota must then be left alone, as HDFS requires).
    async fn set_quota(
        &self,
        ctx: &Ctx,
        r: SetQuotaRequestProto,
    ) -> Result<SetQuotaResponseProto, FsError> {
        let space = fc::quota_change(r.storagespace_quota);
        let op = match r.storage_type {
            Some(t) => MetaRequest::SetTypeQuota {
                path: r.path,
                storage_type: fc::storage_type_name(t)?.to_string(),
                quota: space,
            },
            None => MetaRequest::SetQuota {
                path: r.path,
                namespace: fc::quota_change(r.namespace_quota),
                space,
            },
        };
        self.exec(ctx, None, op).await?;
        Ok(SetQuotaResponseProto {})
    }

    async fn quota(&self, ctx: &Ctx, path: String) -> Result<QuotaUsage, FsError> {
        match self
            .exec(ctx, None, MetaRequest::GetQuotaUsage { path })
            .await?
        {
            MetaResponse::Quota(q) => Ok(q),
            other => Err(unexpected(other)),
        }
    }

    async fn summary(&self, ctx: &Ctx, path: String) -> Result<ContentSummary, FsError> {
        match self
            .exec(ctx, None, MetaRequest::ContentSummary { path })
            .await?
        {
            MetaResponse::Summary(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }
}
