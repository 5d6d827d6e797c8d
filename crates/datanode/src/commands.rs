//! The leader's commands on this datanode: admitted through the term
//! fence, then run off the poller (copies as tasks, disk work on blocking
//! threads), each outcome reported incrementally.

use crate::block_store::{BlockStore, Check, Truncated};
use crate::fence::{Admit, Fence};
use crate::node::Change;
use crate::transfer::TransferCtx;
use std::sync::Arc;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr, DatanodeCommand};
use tdfs_rpc::EventBus;
use tokio::sync::mpsc;

/// Runs the leader's commands.
pub(crate) struct Exec {
    pub(crate) ctx: Arc<TransferCtx>,
    pub(crate) changes: mpsc::UnboundedSender<Change>,
    pub(crate) fence: Arc<Fence>,
    pub(crate) events: Arc<EventBus>,
}

impl Exec {
    /// Checks the fence, then runs the commands in the background (disk
    /// work off the poller).
    pub(crate) async fn admit(&self, term: u64, commands: Vec<DatanodeCommand>) {
        let fence = self.fence.clone();
        let mut admitted = tokio::task::spawn_blocking(move || fence.admit(term)).await;
        if tdfs_rpc::bugs::on(tdfs_rpc::bugs::Bug::SkipFencing) {
            // The term is still recorded; a stale one is just not refused.
            admitted = Ok(Ok(Admit::Yes));
        }
        if commands.is_empty() {
            // A new leader announcing its term: nothing to run or refuse.
            return;
        }
        match admitted {
            Ok(Ok(Admit::Yes)) => self.execute(commands),
            Ok(Ok(Admit::Fenced(seen))) => {
                tracing::warn!(
                    fault = "peer",
                    "refusing commands of term {term}: a leader of term {seen} exists"
                );
                self.events.publish(EventKind::CommandFenced {
                    datanode: self.ctx.store.datanode_id().clone(),
                    term,
                    seen,
                });
            }
            Ok(Err(e)) => tracing::warn!(fault = "local", "cannot record the leader's term: {e}"),
            Err(e) => tracing::warn!(fault = "local", "fence task failed: {e}"),
        }
    }

    fn execute(&self, commands: Vec<DatanodeCommand>) {
        for cmd in commands {
            let store = self.ctx.store.clone();
            let changes = self.changes.clone();
            if let DatanodeCommand::Replicate {
                block,
                targets,
                token,
            } = cmd
            {
                let ctx = self.ctx.clone();
                tokio::spawn(async move { copy(&ctx, &block, &targets, token).await });
                continue;
            }
            tokio::task::spawn_blocking(move || run_local(&store, cmd, &changes));
        }
    }
}

/// A copy to other datanodes. A checksum failure of our own stored data
/// quarantines our replica (and reports it) inside `replicate`; a failure
/// downstream never touches it.
async fn copy(
    ctx: &TransferCtx,
    block: &BlockInfo,
    targets: &[DatanodeAddr],
    token: Option<BlockToken>,
) {
    match crate::transfer::replicate(ctx, block, targets, token).await {
        Ok(ack) => {
            for s in ack.statuses.iter().filter(|s| s.result.is_err()) {
                tracing::info!(
                    "copy of block {} to {} failed: {:?}",
                    block.id,
                    s.node,
                    s.result
                );
            }
        }
        Err(e) => tracing::info!("copy of block {} failed: {e}", block.id),
    }
}

/// Deletes and verifications (blocking).
fn run_local(
    store: &Arc<BlockStore>,
    cmd: DatanodeCommand,
    changes: &mpsc::UnboundedSender<Change>,
) {
    match cmd {
        DatanodeCommand::Delete { blocks } => {
            for (b, gen) in blocks {
                match store.delete(b, gen) {
                    Ok(d) => {
                        for g in d.finalized.into_iter().chain(d.quarantined) {
                            let _ = changes.send(Change::Removed(b, g));
                        }
                    }
                    Err(e) => tracing::warn!(fault = "local", "deleting block {b}: {e}"),
                }
            }
        }
        DatanodeCommand::Verify { blocks } => {
            for b in blocks {
                match store.check(b) {
                    Ok(Check::Quarantined { gen }) => {
                        tracing::warn!(
                            fault = "local",
                            "block {b} gen {gen} is corrupt: quarantined"
                        );
                        let _ = changes.send(Change::Corrupt(b, gen));
                    }
                    Ok(Check::Good | Check::Gone) => {}
                    Err(e) => tracing::warn!(fault = "local", "verifying block {b}: {e}"),
                }
            }
        }
        DatanodeCommand::Truncate {
            source,
            target,
            gen,
            len,
        } => match store.truncate_copy(&source, target, gen, len) {
            Ok(Truncated::Stored(r)) => {
                tracing::info!(
                    "block {} cut to {len} bytes as block {target} gen {gen}",
                    source.id
                );
                let _ = changes.send(Change::Added(r));
            }
            Ok(Truncated::Corrupt { gen }) => {
                tracing::warn!(
                    fault = "local",
                    "block {} gen {gen} is corrupt: quarantined",
                    source.id
                );
                let _ = changes.send(Change::Corrupt(source.id, gen));
            }
            Err(e) => tracing::info!("truncating block {} failed: {e}", source.id),
        },
        other => tracing::debug!("command not handled by this datanode yet: {other:?}"),
    }
}
