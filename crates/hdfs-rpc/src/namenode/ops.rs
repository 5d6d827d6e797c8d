//! The `ClientNamenodeProtocol` methods, each mapped to tdfs's
//! `MetaRequest`s. Where HDFS answers `false` or an empty message instead
//! of throwing (a missing file in `getFileInfo`, `getListing`, `delete`,
//! `rename`), so does this.

use super::convert::{datanode_info, file_status, located_blocks, DatanodeDirectory};
use super::{run, Ctx, Namenode};
use crate::ipc::Outcome;
use crate::proto::common::HaServiceStateProto;
use crate::proto::hdfs::*;
use bytes::Bytes;
use tdfs_proto::meta::{FileStatus, MetaRequest, MetaResponse};
use tdfs_proto::FsError;

/// Java's `-1` ("leave unchanged") in an unsigned field.
const UNCHANGED: u64 = u64::MAX;

pub(super) fn unexpected(r: MetaResponse) -> FsError {
    FsError::Internal(format!("unexpected reply {r:?}"))
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn child(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Namenode {
    /// Routes one call by method name.
    pub(crate) async fn dispatch(&self, ctx: &Ctx, method: &str, body: Bytes) -> Outcome {
        match method {
            "getServerDefaults" => {
                run(body, |_: GetServerDefaultsRequestProto| {
                    self.server_defaults()
                })
                .await
            }
            "getFileInfo" => {
                run(body, |r: GetFileInfoRequestProto| {
                    self.get_file_info(ctx, r.src)
                })
                .await
            }
            "getFileLinkInfo" => {
                run(body, |r: GetFileLinkInfoRequestProto| async move {
                    let fs = self.get_file_info(ctx, r.src).await?.fs;
                    Ok(GetFileLinkInfoResponseProto { fs })
                })
                .await
            }
            "getListing" => run(body, |r| self.get_listing(ctx, r)).await,
            "mkdirs" => run(body, |r| self.mkdirs(ctx, r)).await,
            "create" => run(body, |r| self.create(ctx, r)).await,
            "append" => run(body, |r| self.append(ctx, r)).await,
            "addBlock" => run(body, |r| self.add_block(ctx, r)).await,
            "complete" => run(body, |r| self.complete(ctx, r)).await,
            "abandonBlock" => run(body, |r| self.abandon_block(ctx, r)).await,
            "getBlockLocations" => run(body, |r| self.get_block_locations(ctx, r)).await,
            "delete" => run(body, |r| self.delete(ctx, r)).await,
            "rename" => run(body, |r| self.rename(ctx, r)).await,
            "rename2" => run(body, |r| self.rename2(ctx, r)).await,
            "renewLease" => run(body, |r| self.renew_lease(ctx, r)).await,
            "recoverLease" => run(body, |r| self.recover_lease(ctx, r)).await,
            "setPermission" => run(body, |r| self.set_permission(ctx, r)).await,
            "setOwner" => run(body, |r| self.set_owner(ctx, r)).await,
            "setReplication" => run(body, |r| self.set_replication(ctx, r)).await,
            "setTimes" => run(body, |r| self.set_times(ctx, r)).await,
            "getPreferredBlockSize" => run(body, |r| self.preferred_block_size(ctx, r)).await,
            "fsync" => run(body, |r| self.fsync(ctx, r)).await,
            "getFsStats" => run(body, |_: GetFsStatusRequestProto| self.fs_stats()).await,
            "getDatanodeReport" => run(body, |r| self.datanode_report(r)).await,
            "updateBlockForPipeline" => run(body, |r| self.update_block_for_pipeline(ctx, r)).await,
            "updatePipeline" => run(body, |r| self.update_pipeline(ctx, r)).await,
            "getAdditionalDatanode" => run(body, |r| self.additional_datanode(ctx, r)).await,
            "msync" => {
                run(body, |_: MsyncRequestProto| async {
                    Ok(MsyncResponseProto {})
                })
                .await
            }
            "getHAServiceState" => run(body, |_: HaServiceStateRequestProto| self.ha_state()).await,
            other => {
                if let Some(o) = self.feature_call(ctx, other, body).await {
                    return o;
                }
                tracing::info!(
                    "hdfs: {} called {other}, which is not implemented",
                    ctx.user
                );
                super::errors::failure(
                    super::errors::NO_SUCH_METHOD,
                    format!("Unknown method {other} called on {} protocol.", crate::ipc::CLIENT_PROTOCOL),
                    crate::proto::common::rpc_response_header_proto::RpcErrorCodeProto::ErrorNoSuchMethod,
                )
            }
        }
    }

    /// Runs `op` through the metadata node; mutations get a call id (the
    /// lease holder is `holder` when the Hadoop call names a client).
    pub(super) async fn exec(
        &self,
        ctx: &Ctx,
        holder: Option<&str>,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        let call = op.is_mutation().then(|| ctx.call(holder));
        self.node().execute(&ctx.user, call, op).await
    }

    pub(super) async fn stat(&self, ctx: &Ctx, path: &str) -> Result<FileStatus, FsError> {
        match self
            .exec(ctx, None, MetaRequest::GetFileInfo { path: path.into() })
            .await?
        {
            MetaResponse::Status(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }

    async fn server_defaults(&self) -> Result<GetServerDefaultsResponseProto, FsError> {
        let d = &self.node().config().defaults;
        Ok(GetServerDefaultsResponseProto {
            server_defaults: FsServerDefaultsProto {
                block_size: d.block_size,
                bytes_per_checksum: 512,
                write_packet_size: 64 << 10,
                replication: d.replication as u32,
                file_buffer_size: 4096,
                encrypt_data_transfer: Some(false),
                // Minutes, rounded up: a shorter interval (tests) still means on.
                trash_interval: Some(self.node().config().trash_interval_ms.div_ceil(60_000)),
                checksum_type: Some(ChecksumTypeProto::ChecksumCrc32c as i32),
                key_provider_uri: Some(String::new()),
                policy_id: Some(0),
                snapshot_trash_root_enabled: Some(false),
            },
        })
    }

    /// A missing file is an empty answer, not an error (HDFS returns null).
    async fn get_file_info(
        &self,
        ctx: &Ctx,
        src: String,
    ) -> Result<GetFileInfoResponseProto, FsError> {
        match self.stat(ctx, &src).await {
            Ok(s) => Ok(GetFileInfoResponseProto {
                fs: Some(file_status(&s, b"")),
            }),
            Err(FsError::FileNotFound(_)) => Ok(GetFileInfoResponseProto { fs: None }),
            Err(e) => Err(e),
        }
    }

    async fn get_listing(
        &self,
        ctx: &Ctx,
        r: GetListingRequestProto,
    ) -> Result<GetListingResponseProto, FsError> {
        let start_after = (!r.start_after.is_empty())
            .then(|| String::from_utf8(r.start_after.clone()))
            .transpose()
            .map_err(|_| FsError::InvalidArgument("startAfter is not UTF-8".into()))?;
        let op = MetaRequest::ListStatus {
            path: r.src.clone(),
            start_after,
            limit: self.config().list_limit,
        };
        let (entries, remaining) = match self.exec(ctx, None, op).await {
            Ok(MetaResponse::Listing { entries, remaining }) => (entries, remaining),
            Ok(other) => return Err(unexpected(other)),
            Err(FsError::FileNotFound(_)) => return Ok(GetListingResponseProto { dir_list: None }),
            Err(e) => Err(e)?,
        };
        // A file lists as itself, under the empty name (HDFS's EMPTY_NAME).
        let listed_file = entries.len() == 1
            && !entries[0].is_dir()
            && r.start_after.is_empty()
            && { !self.stat(ctx, &r.src).await?.is_dir() };
        let dir = if r.need_location {
            self.directory()
        } else {
            DatanodeDirectory::default()
        };
        let mut partial = Vec::with_capacity(entries.len());
        for e in &entries {
            let name: &[u8] = if listed_file { b"" } else { e.name.as_bytes() };
            let mut s = file_status(e, name);
            if r.need_location && !e.is_dir() {
                let path = if listed_file {
                    r.src.clone()
                } else {
                    child(&r.src, &e.name)
                };
                s.locations = Some(self.locations(ctx, &path, (0, u64::MAX), &dir).await?);
            }
            partial.push(s);
        }
        Ok(GetListingResponseProto {
            dir_list: Some(DirectoryListingProto {
                partial_listing: partial,
                remaining_entries: remaining.min(u32::MAX as u64) as u32,
            }),
        })
    }

    async fn locations(
        &self,
        ctx: &Ctx,
        path: &str,
        (offset, len): (u64, u64),
        dir: &DatanodeDirectory,
    ) -> Result<LocatedBlocksProto, FsError> {
        let op = MetaRequest::GetBlockLocations {
            path: path.into(),
            offset,
            len,
        };
        match self.exec(ctx, None, op).await? {
            MetaResponse::Blocks(b) => Ok(located_blocks(&b, dir, now_ms())),
            r => Err(unexpected(r)),
        }
    }

    /// The datanodes' HDFS addresses and usage, as the report has them.
    pub(super) fn directory(&self) -> DatanodeDirectory {
        DatanodeDirectory::new(&self.node().report().datanodes)
    }

    async fn get_block_locations(
        &self,
        ctx: &Ctx,
        r: GetBlockLocationsRequestProto,
    ) -> Result<GetBlockLocationsResponseProto, FsError> {
        let dir = self.directory();
        let locations = self
            .locations(ctx, &r.src, (r.offset, r.length), &dir)
            .await?;
        Ok(GetBlockLocationsResponseProto {
            locations: Some(locations),
        })
    }

    /// HDFS's mkdirs answers true when the directory exists already.
    async fn mkdirs(
        &self,
        ctx: &Ctx,
        r: MkdirsRequestProto,
    ) -> Result<MkdirsResponseProto, FsError> {
        let op = MetaRequest::Mkdirs {
            path: r.src.clone(),
            mode: Some((r.masked.perm & 0o1777) as u16 | tdfs_proto::perm::AS_GIVEN),
            parents: r.create_parent,
        };
        match self.exec(ctx, None, op).await {
            Ok(_) => Ok(MkdirsResponseProto { result: true }),
            Err(FsError::AlreadyExists(p)) => match self.stat(ctx, &r.src).await {
                Ok(s) if s.is_dir() => Ok(MkdirsResponseProto { result: true }),
                _ => Err(FsError::AlreadyExists(p)),
            },
            Err(e) => Err(e),
        }
    }

    /// `false` for a missing path, as HDFS.
    async fn delete(
        &self,
        ctx: &Ctx,
        r: DeleteRequestProto,
    ) -> Result<DeleteResponseProto, FsError> {
        let op = MetaRequest::Delete {
            path: r.src,
            recursive: r.recursive,
        };
        match self.exec(ctx, None, op).await {
            Ok(MetaResponse::Bool(b)) => Ok(DeleteResponseProto { result: b }),
            Ok(_) => Ok(DeleteResponseProto { result: true }),
            Err(FsError::FileNotFound(_)) => Ok(DeleteResponseProto { result: false }),
            Err(e) => Err(e),
        }
    }

    /// The old rename: into an existing directory, `false` (not an error)
    /// when the source is missing or the target taken.
    async fn rename(
        &self,
        ctx: &Ctx,
        r: RenameRequestProto,
    ) -> Result<RenameResponseProto, FsError> {
        let op = MetaRequest::Rename {
            src: r.src,
            dst: r.dst,
            into_dir: true,
        };
        match self.exec(ctx, None, op).await {
            Ok(MetaResponse::Bool(b)) => Ok(RenameResponseProto { result: b }),
            Ok(_) => Ok(RenameResponseProto { result: true }),
            Err(
                FsError::FileNotFound(_) | FsError::AlreadyExists(_) | FsError::NotADirectory(_),
            ) => Ok(RenameResponseProto { result: false }),
            Err(e) => Err(e),
        }
    }

    /// `rename2` renames to exactly `dst` and throws on failure. With
    /// OVERWRITE, an existing file or empty directory at `dst` is deleted
    /// first — two steps, not one atomic rename as in HDFS.
    async fn rename2(
        &self,
        ctx: &Ctx,
        r: Rename2RequestProto,
    ) -> Result<Rename2ResponseProto, FsError> {
        if r.overwrite_dest {
            if let Ok(d) = self.stat(ctx, &r.dst).await {
                if d.is_dir() && d.children > 0 {
                    return Err(FsError::DirectoryNotEmpty(r.dst));
                }
                self.stat(ctx, &r.src).await?;
                self.exec(
                    ctx,
                    None,
                    MetaRequest::Delete {
                        path: r.dst.clone(),
                        recursive: false,
                    },
                )
                .await?;
            }
        }
        let op = MetaRequest::Rename {
            src: r.src,
            dst: r.dst,
            into_dir: false,
        };
        match self.exec(ctx, None, op).await? {
            MetaResponse::Bool(false) => Err(FsError::Io("rename failed".into())),
            _ => Ok(Rename2ResponseProto {}),
        }
    }

    async fn set_permission(
        &self,
        ctx: &Ctx,
        r: SetPermissionRequestProto,
    ) -> Result<SetPermissionResponseProto, FsError> {
        let op = MetaRequest::SetPermission {
            path: r.src,
            mode: (r.permission.perm & 0o7777) as u16,
        };
        self.exec(ctx, None, op).await?;
        Ok(SetPermissionResponseProto {})
    }

    async fn set_owner(
        &self,
        ctx: &Ctx,
        r: SetOwnerRequestProto,
    ) -> Result<SetOwnerResponseProto, FsError> {
        let op = MetaRequest::SetOwner {
            path: r.src,
            owner: r.username.filter(|u| !u.is_empty()),
            group: r.groupname.filter(|g| !g.is_empty()),
        };
        self.exec(ctx, None, op).await?;
        Ok(SetOwnerResponseProto {})
    }

    async fn set_replication(
        &self,
        ctx: &Ctx,
        r: SetReplicationRequestProto,
    ) -> Result<SetReplicationResponseProto, FsError> {
        let op = MetaRequest::SetReplication {
            path: r.src,
            replication: r.replication.min(u16::MAX as u32) as u16,
        };
        let result = !matches!(self.exec(ctx, None, op).await?, MetaResponse::Bool(false));
        Ok(SetReplicationResponseProto { result })
    }

    async fn set_times(
        &self,
        ctx: &Ctx,
        r: SetTimesRequestProto,
    ) -> Result<SetTimesResponseProto, FsError> {
        let op = MetaRequest::SetTimes {
            path: r.src,
            mtime: (r.mtime != UNCHANGED).then_some(r.mtime),
            atime: (r.atime != UNCHANGED).then_some(r.atime),
        };
        self.exec(ctx, None, op).await?;
        Ok(SetTimesResponseProto {})
    }

    async fn preferred_block_size(
        &self,
        ctx: &Ctx,
        r: GetPreferredBlockSizeRequestProto,
    ) -> Result<GetPreferredBlockSizeResponseProto, FsError> {
        let s = self.stat(ctx, &r.filename).await?;
        Ok(GetPreferredBlockSizeResponseProto {
            bsize: s.block_size,
        })
    }

    async fn fs_stats(&self) -> Result<GetFsStatsResponseProto, FsError> {
        let report = self.node().report();
        let (mut capacity, mut used, mut remaining) = (0, 0, 0);
        for d in report.datanodes.iter().filter(|d| d.state != "dead") {
            capacity += d.capacity;
            used += d.used;
            remaining += d.remaining;
        }
        Ok(GetFsStatsResponseProto {
            capacity,
            used,
            remaining,
            ..Default::default()
        })
    }

    async fn datanode_report(
        &self,
        r: GetDatanodeReportRequestProto,
    ) -> Result<GetDatanodeReportResponseProto, FsError> {
        use DatanodeReportTypeProto as T;
        let want = T::try_from(r.r#type).unwrap_or(T::All);
        let now = now_ms();
        let di = self
            .node()
            .report()
            .datanodes
            .iter()
            .filter(|d| match want {
                T::Live => d.state != "dead",
                T::Dead => d.state == "dead",
                T::Decommissioning => d.admin_state == "decommissioning",
                T::All => true,
                _ => false,
            })
            .map(|d| datanode_info(d, now))
            .collect();
        Ok(GetDatanodeReportResponseProto { di })
    }

    async fn ha_state(&self) -> Result<HaServiceStateResponseProto, FsError> {
        let state = if self.node().is_leader() {
            HaServiceStateProto::Active
        } else {
            HaServiceStateProto::Standby
        };
        Ok(HaServiceStateResponseProto {
            state: state as i32,
        })
    }
}
