//! The write path of `ClientNamenodeProtocol`: files opened, blocks
//! allocated and committed, leases, and the pipeline-recovery calls. Each
//! call that names a Hadoop client passes its name as the lease holder.

use super::convert::{block_info, file_status, located_block, DatanodeDirectory};
use super::ops::{now_ms, unexpected};
use super::{Ctx, Namenode};
use crate::proto::hdfs::*;
use tdfs_proto::meta::{MetaRequest, MetaResponse};
use tdfs_proto::{DatanodeId, FsError};

/// Hadoop's `CreateFlag` bits.
const CREATE_OVERWRITE: u32 = 0x02;

impl Namenode {
    pub(super) async fn create(
        &self,
        ctx: &Ctx,
        r: CreateRequestProto,
    ) -> Result<CreateResponseProto, FsError> {
        let op = MetaRequest::Create {
            path: r.src.clone(),
            overwrite: r.create_flag & CREATE_OVERWRITE != 0,
            replication: (r.replication > 0).then_some(r.replication.min(u16::MAX as u32) as u16),
            block_size: (r.block_size > 0).then_some(r.block_size),
            mode: Some((r.masked.perm & 0o1777) as u16 | tdfs_proto::perm::AS_GIVEN),
            create_parents: r.create_parent,
        };
        let s = match self.exec(ctx, Some(&r.client_name), op).await? {
            MetaResponse::Status(s) => s,
            _ => self.stat(ctx, &r.src).await?,
        };
        Ok(CreateResponseProto {
            fs: Some(file_status(&s, b"")),
        })
    }

    pub(super) async fn append(
        &self,
        ctx: &Ctx,
        r: AppendRequestProto,
    ) -> Result<AppendResponseProto, FsError> {
        let op = MetaRequest::Append {
            path: r.src.clone(),
        };
        match self.exec(ctx, Some(&r.client_name), op).await? {
            MetaResponse::Appended { status, last } => {
                if let Some(lb) = &last {
                    self.remember_block(lb.block.id, &r.src);
                }
                Ok(AppendResponseProto {
                    block: last.map(|lb| located_block(&lb, &self.directory(), now_ms())),
                    stat: Some(file_status(&status, b"")),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn add_block(
        &self,
        ctx: &Ctx,
        r: AddBlockRequestProto,
    ) -> Result<AddBlockResponseProto, FsError> {
        let op = MetaRequest::AddBlock {
            path: r.src.clone(),
            previous: r.previous.as_ref().map(block_info),
            excluded: r
                .exclude_nodes
                .iter()
                .map(|d| DatanodeId(d.id.datanode_uuid.clone()))
                .collect(),
        };
        match self.exec(ctx, Some(&r.client_name), op).await? {
            MetaResponse::Block(lb) => {
                self.remember_block(lb.block.id, &r.src);
                Ok(AddBlockResponseProto {
                    block: located_block(&lb, &self.directory(), now_ms()),
                })
            }
            other => Err(unexpected(other)),
        }
    }

    /// `false` while the last block is not yet reported by a datanode:
    /// Hadoop's client calls `complete` again after a pause.
    pub(super) async fn complete(
        &self,
        ctx: &Ctx,
        r: CompleteRequestProto,
    ) -> Result<CompleteResponseProto, FsError> {
        let op = MetaRequest::Complete {
            path: r.src.clone(),
            last: r.last.as_ref().map(block_info),
        };
        match self.exec(ctx, Some(&r.client_name), op).await {
            Ok(_) => Ok(CompleteResponseProto { result: true }),
            Err(FsError::Unavailable(_)) => Ok(CompleteResponseProto { result: false }),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn abandon_block(
        &self,
        ctx: &Ctx,
        r: AbandonBlockRequestProto,
    ) -> Result<AbandonBlockResponseProto, FsError> {
        let op = MetaRequest::AbandonBlock {
            path: r.src.clone(),
            block: r.b.block_id,
        };
        self.exec(ctx, Some(&r.holder), op).await?;
        Ok(AbandonBlockResponseProto {})
    }

    pub(super) async fn renew_lease(
        &self,
        ctx: &Ctx,
        r: RenewLeaseRequestProto,
    ) -> Result<RenewLeaseResponseProto, FsError> {
        self.exec(ctx, Some(&r.client_name), MetaRequest::RenewLease)
            .await?;
        Ok(RenewLeaseResponseProto {})
    }

    /// True when the file is closed. An open file is recovered by the
    /// leader once its writer's lease expires; this call does not hurry it.
    pub(super) async fn recover_lease(
        &self,
        ctx: &Ctx,
        r: RecoverLeaseRequestProto,
    ) -> Result<RecoverLeaseResponseProto, FsError> {
        let s = self.stat(ctx, &r.src).await?;
        Ok(RecoverLeaseResponseProto {
            result: !s.under_construction,
        })
    }

    /// tdfs persists lengths when blocks finish; an fsync only checks that
    /// the caller still has the file open.
    pub(super) async fn fsync(
        &self,
        ctx: &Ctx,
        r: FsyncRequestProto,
    ) -> Result<FsyncResponseProto, FsError> {
        let s = self.stat(ctx, &r.src).await?;
        if !s.under_construction {
            return Err(FsError::LeaseExpired(r.src));
        }
        Ok(FsyncResponseProto {})
    }

    /// A new generation stamp for a block whose pipeline failed;
    /// `updatePipeline` then only checks. Hadoop's client rebuilds its
    /// pipeline from the nodes it has (dropping the failed ones), so the
    /// block keeps its current pipeline: the write token that comes back is
    /// bound to it, and the client's smaller pipeline passes every
    /// datanode's check.
    pub(super) async fn update_block_for_pipeline(
        &self,
        ctx: &Ctx,
        r: UpdateBlockForPipelineRequestProto,
    ) -> Result<UpdateBlockForPipelineResponseProto, FsError> {
        let path = self.path_of_block(r.block.block_id)?;
        let keep = self.node().inspect(|ns, _| {
            let file = ns.lookup(&ctx.user, &path).ok()?;
            ns.open_file(file)
                .filter(|f| f.open_block.is_some_and(|b| b.id == r.block.block_id))
                .map(|f| f.targets)
        });
        let op = MetaRequest::UpdatePipeline {
            path,
            block: r.block.block_id,
            keep: keep.unwrap_or_default(),
            excluded: Vec::new(),
        };
        match self.exec(ctx, Some(&r.client_name), op).await? {
            MetaResponse::Block(lb) => Ok(UpdateBlockForPipelineResponseProto {
                block: located_block(&lb, &self.directory(), now_ms()),
            }),
            other => Err(unexpected(other)),
        }
    }

    pub(super) async fn update_pipeline(
        &self,
        ctx: &Ctx,
        r: UpdatePipelineRequestProto,
    ) -> Result<UpdatePipelineResponseProto, FsError> {
        let path = self.path_of_block(r.old_block.block_id)?;
        if !self.stat(ctx, &path).await?.under_construction {
            return Err(FsError::LeaseExpired(path));
        }
        Ok(UpdatePipelineResponseProto {})
    }

    /// Replacement datanodes for a pipeline: placed like a new block's,
    /// away from the nodes the client has or excludes.
    pub(super) async fn additional_datanode(
        &self,
        ctx: &Ctx,
        r: GetAdditionalDatanodeRequestProto,
    ) -> Result<GetAdditionalDatanodeResponseProto, FsError> {
        let s = self.stat(ctx, &r.src).await?;
        let mut exclude: Vec<DatanodeId> = r
            .existings
            .iter()
            .chain(&r.excludes)
            .map(|d| DatanodeId(d.id.datanode_uuid.clone()))
            .collect();
        exclude.dedup();
        // Placed like a new block's; no placement promise is recorded (the
        // client may not use them), unlike a block the leader allocates.
        let mut rand01 = rand::random::<f64>;
        let more = self.node().inspect(|_, view| {
            view.place(
                r.num_additional_nodes as usize,
                s.block_size,
                &exclude,
                &mut rand01,
            )
        });
        let dir = self.directory();
        let mut lb = LocatedBlockProto {
            b: r.blk.clone(),
            ..Default::default()
        };
        lb.locs = r.existings.clone();
        lb.locs
            .extend(more.iter().filter_map(|a| dir_info(&dir, &a.id)));
        let n = lb.locs.len();
        lb.storage_types = vec![StorageTypeProto::Disk as i32; n];
        lb.storage_i_ds = lb
            .locs
            .iter()
            .map(|d| format!("DS-{}", d.id.datanode_uuid))
            .collect();
        lb.is_cached = vec![false; n];
        Ok(GetAdditionalDatanodeResponseProto { block: lb })
    }
}

fn dir_info(dir: &DatanodeDirectory, id: &DatanodeId) -> Option<DatanodeInfoProto> {
    dir.info(&id.0, now_ms())
}
