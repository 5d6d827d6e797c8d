//! The namespace operations every front end calls — tdfs's RPC, WebHDFS
//! (through the client) and HDFS's RPC — one core, several encodings.
//! Reads are served linearizably (read index) from the local namespace;
//! mutations are turned into log operations on the leader (with its
//! placement for new blocks and its defaults for new files) and go through
//! Raft.

use crate::features::feature_log_op;
use crate::node::MetaNode;
use std::time::Duration;
use tdfs_namespace::{LogOp, Outcome};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{
    AccessMode, CorruptBlock, DatanodeAddr, FsckReport, LocatedBlock, LocatedBlocks, MetaRequest,
    MetaResponse,
};
use tdfs_proto::{BlockId, DatanodeId, FsError};

/// How long a block access token is valid: longer than a lease renewal
/// interval and than writing or reading one block takes; a reader whose
/// token expired asks for the block's locations again.
pub const BLOCK_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Inodes an fsck visits per step (between two takes of the locks).
const FSCK_STEP: usize = 10_000;
/// Files and blocks an fsck names at most.
const FSCK_NAMES: usize = 1000;

impl MetaNode {
    /// Executes one namespace operation for `user`: the entry point of
    /// every protocol front end.
    pub async fn execute(
        &self,
        user: &str,
        call: Option<CallId>,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        if user.is_empty() || user.len() > 255 {
            return Err(FsError::InvalidArgument(
                "user name must be 1..255 bytes".into(),
            ));
        }
        let (name, t0) = (op.name(), std::time::Instant::now());
        let r = if op.is_mutation() {
            if !self.is_leader() {
                return Err(self.not_leader());
            }
            self.mutate(user, call, op).await
        } else {
            self.read_barrier().await?;
            self.read(user, op).await
        };
        self.metrics().observe(name, t0.elapsed(), r.is_ok());
        let mut r = r?;
        self.add_tokens(user, &mut r);
        Ok(r)
    }

    /// A read, after the read barrier.
    async fn read(&self, user: &str, op: MetaRequest) -> Result<MetaResponse, FsError> {
        let core = self.core();
        match op {
            MetaRequest::GetFileInfo { path } => core
                .ns(|r| r.ns.stat(user, &path))
                .map(MetaResponse::Status),
            MetaRequest::ListStatus {
                path,
                start_after,
                limit,
            } => core
                .ns(|r| r.ns.list(user, &path, start_after.as_deref(), limit))
                .map(|l| MetaResponse::Listing {
                    entries: l.entries,
                    remaining: l.remaining,
                }),
            MetaRequest::ContentSummary { path } => core
                .ns(|r| r.ns.summary(user, &path))
                .map(MetaResponse::Summary),
            MetaRequest::GetBlockLocations { path, offset, len } => {
                let random = self.random().clone();
                let mut rng = move || random.next_u64();
                core.both(|r, v| {
                    let mut b = r.ns.locate(user, &path, offset, len)?;
                    for lb in &mut b.blocks {
                        lb.locations = v.locations(lb.block.id, lb.block.gen, &mut rng);
                    }
                    Ok(MetaResponse::Blocks(b))
                })
            }
            MetaRequest::Fsck { path } => self.fsck(user, &path).await.map(MetaResponse::Fsck),
            other => self.read_feature(user, other),
        }
    }

    /// Namespace and block health under `path`, walked in steps: the locks
    /// are released between steps, so a large fsck never stalls applies.
    pub async fn fsck(&self, user: &str, path: &str) -> Result<FsckReport, FsError> {
        let core = self.core();
        let mut walk = core.ns(|r| r.ns.walk_start(user, path))?;
        let mut rep = FsckReport::default();
        while !walk.done() {
            core.both(|r, v| {
                r.ns.walk(&mut walk, FSCK_STEP, &mut |visit| {
                    let Some(f) = visit.inode.file() else {
                        rep.directories += 1;
                        return;
                    };
                    rep.files += 1;
                    rep.blocks += f.blocks.len() as u64;
                    rep.total_size += f.len();
                    let mut bad = false;
                    for b in f.blocks.iter() {
                        bad |= fsck_block(&mut rep, v, b.id, f.replication(), || {
                            r.ns.path_of(visit.slot)
                        });
                    }
                    if bad && rep.bad_files.len() < FSCK_NAMES {
                        rep.bad_files.push(r.ns.path_of(visit.slot));
                    }
                });
            });
            tokio::task::yield_now().await;
        }
        Ok(rep)
    }

    /// A mutation on the leader: leases renewed, targets placed for new
    /// blocks, the last block known to be stored before it is committed.
    async fn mutate(
        &self,
        user: &str,
        call: Option<CallId>,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        let core = self.core();
        let now = core.now();
        if let Some(c) = call {
            core.view(|v| v.renew(c.client, now));
        }
        let log_op = match op {
            MetaRequest::RenewLease => return Ok(MetaResponse::Done),
            MetaRequest::ReportBadReplica { block, node } => {
                core.view(|v| v.queue_verify(&node, block));
                core.commands.notify_waiters();
                return Ok(MetaResponse::Done);
            }
            other => self.to_log_op(user, other).await?,
        };
        let (log_op, promise) = log_op;
        let is_append = matches!(log_op, LogOp::Append { .. });
        let stamp = self.stamp(user, call);
        let out = self.propose(stamp, log_op).await?;
        Ok(match out {
            Outcome::Done => MetaResponse::Done,
            Outcome::Bool(b) => MetaResponse::Bool(b),
            Outcome::Status(status) if is_append => MetaResponse::Appended { status, last: None },
            Outcome::Status(s) => MetaResponse::Status(s),
            Outcome::Path(p) => MetaResponse::Path(p),
            Outcome::Block {
                block,
                offset,
                targets,
            } => {
                let locations = core.view(|v| {
                    v.note_intent(block.id, &targets, promise, now);
                    v.addrs_of(&targets)
                });
                MetaResponse::Block(LocatedBlock {
                    block,
                    offset,
                    locations,
                    token: None,
                })
            }
        })
    }

    /// The log operation for a wire mutation, and the bytes to promise its
    /// targets when it allocates a block (the file's block size).
    async fn to_log_op(&self, user: &str, op: MetaRequest) -> Result<(LogOp, u64), FsError> {
        let d = &self.config().defaults;
        let mut promise = 0;
        let op = match op {
            MetaRequest::Mkdirs {
                path,
                mode,
                parents,
            } => LogOp::Mkdirs {
                mode: self.mode_for(user, &path, mode, 0o777),
                path,
                parents,
            },
            MetaRequest::Create {
                path,
                overwrite,
                replication,
                block_size,
                mode,
                create_parents,
            } => {
                let block_size = block_size.unwrap_or(d.block_size);
                // The one check every gateway's create passes.
                self.config().check_block_size(block_size)?;
                LogOp::Create {
                    mode: self.mode_for(user, &path, mode, 0o666),
                    path,
                    overwrite,
                    replication: replication.unwrap_or(d.replication),
                    block_size,
                    create_parents,
                }
            }
            MetaRequest::Append { path } => LogOp::Append { path },
            MetaRequest::AddBlock {
                path,
                previous,
                excluded,
            } => {
                let (repl, bs) = self.core().ns(|r| r.ns.file_params(user, &path))?;
                if let Some(p) = &previous {
                    self.require_reported(p.id, p.gen).await?;
                }
                let targets = self.place(repl as usize, bs, &excluded)?;
                promise = bs;
                LogOp::AddBlock {
                    path,
                    previous,
                    targets,
                }
            }
            MetaRequest::UpdatePipeline {
                path,
                block,
                keep,
                excluded,
            } => {
                let (targets, bs) = self.pipeline_targets(user, &path, &keep, excluded)?;
                promise = bs;
                LogOp::UpdatePipeline {
                    path,
                    block,
                    targets,
                }
            }
            MetaRequest::AbandonBlock { path, block } => LogOp::AbandonBlock { path, block },
            MetaRequest::Complete { path, last } => {
                if let Some(b) = &last {
                    self.require_reported(b.id, b.gen).await?;
                }
                LogOp::Complete { path, last }
            }
            MetaRequest::Delete { path, recursive } => LogOp::Delete { path, recursive },
            MetaRequest::Rename { src, dst, into_dir } => LogOp::Rename { src, dst, into_dir },
            MetaRequest::SetReplication { path, replication } => {
                LogOp::SetReplication { path, replication }
            }
            MetaRequest::SetPermission { path, mode } => LogOp::SetPermission { path, mode },
            MetaRequest::SetOwner { path, owner, group } => LogOp::SetOwner { path, owner, group },
            MetaRequest::SetTimes { path, mtime, atime } => LogOp::SetTimes { path, mtime, atime },
            other => feature_log_op(other)?,
        };
        Ok((op, promise))
    }

    /// A recovered pipeline's targets: the survivors `keep`, topped up to
    /// the file's replication from nodes outside `excluded` and `keep`;
    /// with the file's block size.
    fn pipeline_targets(
        &self,
        user: &str,
        path: &str,
        keep: &[DatanodeId],
        mut excluded: Vec<DatanodeId>,
    ) -> Result<(Vec<DatanodeId>, u64), FsError> {
        let (repl, bs) = self.core().ns(|r| r.ns.file_params(user, path))?;
        excluded.extend(keep.iter().cloned());
        let more = (repl as usize).saturating_sub(keep.len());
        let mut targets: Vec<DatanodeId> = self
            .core()
            .view(|v| v.addrs_of(keep))
            .into_iter()
            .map(|a| a.id)
            .collect();
        if more > 0 {
            targets.extend(self.place(more, bs, &excluded).unwrap_or_default());
        }
        if targets.is_empty() {
            return Err(no_datanodes(bs));
        }
        Ok((targets, bs))
    }

    /// Picks `n` targets for a block of `block_size` bytes.
    fn place(
        &self,
        n: usize,
        block_size: u64,
        exclude: &[DatanodeId],
    ) -> Result<Vec<DatanodeId>, FsError> {
        let random = self.random().clone();
        let mut rand01 = move || random.next_f64();
        let t: Vec<DatanodeId> = self
            .core()
            .view(|v| v.place(n, block_size, exclude, &mut rand01))
            .into_iter()
            .map(|a: DatanodeAddr| a.id)
            .collect();
        if t.is_empty() {
            return Err(no_datanodes(block_size));
        }
        Ok(t)
    }

    async fn require_reported(&self, block: BlockId, gen: u64) -> Result<(), FsError> {
        if self.wait_reported(block, gen, Duration::from_secs(5)).await {
            Ok(())
        } else {
            Err(FsError::Unavailable(format!(
                "no datanode has reported block {block} yet"
            )))
        }
    }

    /// On a keyed cluster, gives every located block in `r` an access token
    /// for `user`: read tokens with block locations, write tokens with a new
    /// block or pipeline. The datanodes accept a caller without the key only
    /// with one.
    fn add_tokens(&self, user: &str, r: &mut MetaResponse) {
        let Some(key) = self.config().key.as_ref() else {
            return;
        };
        let expires = self.core().wall_ms() + BLOCK_TOKEN_LIFETIME.as_millis() as u64;
        let token = |lb: &mut LocatedBlock, mode: AccessMode| {
            let (id, gen) = (lb.block.id, lb.block.gen);
            lb.token = Some(match mode {
                AccessMode::Read => key.block_token(id, gen, mode, user, expires),
                // A write token names the pipeline chosen, in order.
                AccessMode::Write => {
                    let pipeline = lb.locations.iter().map(|a| a.id.clone()).collect();
                    key.write_token(id, gen, user, expires, pipeline)
                }
            });
        };
        match r {
            MetaResponse::Blocks(LocatedBlocks { blocks, .. }) => {
                for lb in blocks {
                    token(lb, AccessMode::Read);
                }
            }
            MetaResponse::Block(lb) => token(lb, AccessMode::Write),
            MetaResponse::Appended { last: Some(lb), .. } => token(lb, AccessMode::Write),
            _ => {}
        }
    }
}

/// Counts one block into an fsck report; true if it is missing or corrupt.
fn fsck_block(
    rep: &mut FsckReport,
    v: &tdfs_policy::ClusterState,
    id: BlockId,
    replication: u16,
    path: impl FnOnce() -> String,
) -> bool {
    use tdfs_policy::Class;
    let h = v.block_health(id);
    match h.class {
        Class::Open => false,
        Class::Corrupt => {
            rep.corrupt += 1;
            if rep.corrupt_blocks.len() < FSCK_NAMES {
                rep.corrupt_blocks.push(CorruptBlock {
                    path: path(),
                    block: id,
                    locations: v.corrupt_holders(id),
                });
            }
            true
        }
        Class::Missing | Class::Untracked => {
            rep.missing += 1;
            true
        }
        _ if h.live < replication as usize => {
            rep.under_replicated += 1;
            false
        }
        _ if h.live > replication as usize => {
            rep.over_replicated += 1;
            false
        }
        _ => false,
    }
}

fn no_datanodes(bs: u64) -> FsError {
    FsError::NoDatanodes(format!("no live datanode can take a block of {bs} bytes"))
}
