//! The leader's truncate duty: every truncation pending in the namespace
//! is driven by the policy (commands to the holders of the old replica),
//! and committed through the log once its new replica is stored. The
//! pending set lives in the namespace, so a new leader picks it up.

use crate::node::MetaNode;
use std::sync::Arc;
use tdfs_namespace::{LogOp, Outcome};
use tdfs_policy::TruncateStep;

/// One step of every pending truncation.
pub(crate) async fn recover_truncates(node: &Arc<MetaNode>) {
    let core = node.core();
    let pending = core.ns(|r| r.ns.pending_truncates());
    if pending.is_empty() {
        return;
    }
    let now = core.now();
    let mut queued = false;
    for p in pending {
        let step = core.view(|v| v.drive_truncate(&p.truncation, p.replication, now));
        let block = match step {
            TruncateStep::Commit(b) => b,
            TruncateStep::Waiting { asked, .. } => {
                queued |= asked > 0;
                continue;
            }
        };
        let op = LogOp::CommitTruncate {
            file: p.file,
            block: block.clone(),
        };
        match node.propose_system(op).await {
            Ok(Outcome::Bool(true)) => {
                tracing::info!(
                    "truncate of file {} committed: block {} gen {} at {} bytes",
                    p.file,
                    block.id,
                    block.gen,
                    block.len
                );
                core.view(|v| v.truncate_done(&p.truncation));
            }
            Ok(_) => core.view(|v| v.truncate_done(&p.truncation)),
            Err(e) => tracing::warn!(fault = "peer", "committing a truncate failed: {e}"),
        }
    }
    if queued {
        core.commands.notify_waiters();
    }
}
