//! The snapshot methods of `ClientNamenodeProtocol`.

use super::feature_convert as fc;
use super::ops::unexpected;
use super::{run, Ctx, Namenode};
use crate::ipc::Outcome;
use crate::proto::hdfs::*;
use bytes::Bytes;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::FsError;

impl Namenode {
    pub(super) async fn snapshot_call(
        &self,
        ctx: &Ctx,
        method: &str,
        body: Bytes,
    ) -> Option<Outcome> {
        Some(match method {
            "allowSnapshot" => {
                run(body, |r: AllowSnapshotRequestProto| async move {
                    let path = r.snapshot_root;
                    self.exec(ctx, None, MetaRequest::AllowSnapshot { path })
                        .await?;
                    Ok(AllowSnapshotResponseProto {})
                })
                .await
            }
            "disallowSnapshot" => {
                run(body, |r: DisallowSnapshotRequestProto| async move {
                    let path = r.snapshot_root;
                    self.exec(ctx, None, MetaRequest::DisallowSnapshot { path })
                        .await?;
                    Ok(DisallowSnapshotResponseProto {})
                })
                .await
            }
            "createSnapshot" => run(body, |r| self.create_snapshot(ctx, r)).await,
            "deleteSnapshot" => {
                run(body, |r: DeleteSnapshotRequestProto| async move {
                    let op = MetaRequest::DeleteSnapshot {
                        path: r.snapshot_root,
                        name: r.snapshot_name,
                    };
                    self.exec(ctx, None, op).await?;
                    Ok(DeleteSnapshotResponseProto {})
                })
                .await
            }
            "renameSnapshot" => {
                run(body, |r: RenameSnapshotRequestProto| async move {
                    let op = MetaRequest::RenameSnapshot {
                        path: r.snapshot_root,
                        old: r.snapshot_old_name,
                        new: r.snapshot_new_name,
                    };
                    self.exec(ctx, None, op).await?;
                    Ok(RenameSnapshotResponseProto {})
                })
                .await
            }
            "getSnapshottableDirListing" => {
                run(body, |_: GetSnapshottableDirListingRequestProto| {
                    self.snapshottable_dirs(ctx)
                })
                .await
            }
            "getSnapshotListing" => run(body, |r| self.snapshot_listing(ctx, r)).await,
            "getSnapshotDiffReport" => run(body, |r| self.snapshot_diff(ctx, r)).await,
            "getSnapshotDiffReportListing" => {
                run(body, |r| self.snapshot_diff_listing(ctx, r)).await
            }
            _ => return None,
        })
    }

    async fn create_snapshot(
        &self,
        ctx: &Ctx,
        r: CreateSnapshotRequestProto,
    ) -> Result<CreateSnapshotResponseProto, FsError> {
        let op = MetaRequest::CreateSnapshot {
            path: r.snapshot_root,
            name: r.snapshot_name.filter(|n| !n.is_empty()),
        };
        match self.exec(ctx, None, op).await? {
            MetaResponse::Path(snapshot_path) => Ok(CreateSnapshotResponseProto { snapshot_path }),
            other => Err(unexpected(other)),
        }
    }

    /// None when there is no snapshottable directory, as HDFS answers.
    async fn snapshottable_dirs(
        &self,
        ctx: &Ctx,
    ) -> Result<GetSnapshottableDirListingResponseProto, FsError> {
        let dirs = match self
            .exec(ctx, None, MetaRequest::ListSnapshottableDirs)
            .await?
        {
            MetaResponse::SnapshottableDirs(v) => v,
            other => return Err(unexpected(other)),
        };
        Ok(GetSnapshottableDirListingResponseProto {
            snapshottable_dir_list: (!dirs.is_empty()).then(|| {
                SnapshottableDirectoryListingProto {
                    snapshottable_dir_listing: dirs.iter().map(fc::snapshottable_dir).collect(),
                }
            }),
        })
    }

    async fn snapshot_listing(
        &self,
        ctx: &Ctx,
        r: GetSnapshotListingRequestProto,
    ) -> Result<GetSnapshotListingResponseProto, FsError> {
        let path = r.snapshot_root;
        let op = MetaRequest::ListSnapshots { path: path.clone() };
        let snaps = match self.exec(ctx, None, op).await? {
            MetaResponse::Snapshots(v) => v,
            other => return Err(unexpected(other)),
        };
        let root = self.stat(ctx, &path).await?;
        Ok(GetSnapshotListingResponseProto {
            snapshot_list: Some(SnapshotListingProto {
                snapshot_listing: snaps
                    .iter()
                    .map(|s| fc::snapshot_status(&path, &root, s))
                    .collect(),
            }),
        })
    }

    async fn snapshot_diff(
        &self,
        ctx: &Ctx,
        r: GetSnapshotDiffReportRequestProto,
    ) -> Result<GetSnapshotDiffReportResponseProto, FsError> {
        let op = MetaRequest::SnapshotDiff {
            path: r.snapshot_root,
            from: r.from_snapshot,
            to: r.to_snapshot,
        };
        match self.exec(ctx, None, op).await? {
            MetaResponse::SnapshotDiff(d) => Ok(GetSnapshotDiffReportResponseProto {
                diff_report: fc::snapshot_diff(&d),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// One page of the diff (HDFS's cursor: the index this node handed
    /// out), computed from the same report as `getSnapshotDiffReport`.
    async fn snapshot_diff_listing(
        &self,
        ctx: &Ctx,
        r: GetSnapshotDiffReportListingRequestProto,
    ) -> Result<GetSnapshotDiffReportListingResponseProto, FsError> {
        let op = MetaRequest::SnapshotDiff {
            path: r.snapshot_root,
            from: r.from_snapshot,
            to: r.to_snapshot,
        };
        let index = r.cursor.map_or(-1, |c| c.index);
        match self.exec(ctx, None, op).await? {
            MetaResponse::SnapshotDiff(d) => {
                let page = d.listing_page(index, self.config().snapshot_diff_limit);
                Ok(GetSnapshotDiffReportListingResponseProto {
                    diff_report: fc::snapshot_diff_listing(&page),
                })
            }
            other => Err(unexpected(other)),
        }
    }
}
