//! The trash emptier (HDFS's `TrashPolicyDefault.Emptier`), run by the
//! leader when the cluster has a trash interval: at every multiple of the
//! interval, each `/user/USER/.Trash` loses its checkpoints older than the
//! interval and its `Current` becomes a checkpoint named by the time
//! (`yyMMddHHmmss`, `-N` when taken). Everything goes through ordinary
//! log operations as the superuser, so a failover in the middle leaves a
//! consistent trash and the next leader carries on.

use crate::node::MetaNode;
use std::sync::Arc;
use tdfs_namespace::{LogOp, Outcome};
use tdfs_proto::trash::{self, CURRENT, TRASH};
use tdfs_proto::{path, FsError};

/// Entries read per listing page.
const PAGE: u32 = 1000;

/// Runs the emptier if its time has come. `next` is when it runs next
/// (wall ms, 0 until scheduled): the driver's own state, so a new leader
/// schedules its first run from its own clock. Wall time on purpose, not
/// the log tick: checkpoint names are dates and their expiry is by date,
/// as in HDFS (a wall step runs the emptier early or late; it never
/// applies a call twice, which is what the retry cache's tick prevents).
pub(crate) async fn expire(node: &Arc<MetaNode>, next: &mut u64) {
    let interval = node.config().trash_interval_ms;
    if interval == 0 {
        return;
    }
    let now = node.core().wall_ms();
    let due = *next != 0 && *next <= now;
    if *next == 0 || due || *next > now + interval {
        *next = (now / interval + 1) * interval;
    }
    if !due {
        return;
    }
    for user in trash_users(node) {
        let root = trash::trash_root(&user);
        if let Err(e) = empty_one(node, &root, now, interval).await {
            tracing::warn!(fault = "peer", "emptying the trash {root} failed: {e}");
        }
    }
}

/// Names under `path`, as the superuser, every page.
fn names(node: &MetaNode, p: &str) -> Vec<(String, bool)> {
    let su = node.config().superuser.clone();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = node
            .core()
            .ns(|r| r.ns.list(&su, p, after.as_deref(), PAGE));
        let Ok(page) = page else { return out };
        after = page.entries.last().map(|e| e.name.clone());
        out.extend(page.entries.into_iter().map(|e| {
            let d = e.is_dir();
            (e.name, d)
        }));
        if page.remaining == 0 || after.is_none() {
            return out;
        }
    }
}

/// Users whose home holds a trash directory.
fn trash_users(node: &MetaNode) -> Vec<String> {
    names(node, "/user")
        .into_iter()
        .filter(|(_, dir)| *dir)
        .map(|(u, _)| u)
        .filter(|u| {
            names(node, &trash::home(u))
                .iter()
                .any(|(n, dir)| n == TRASH && *dir)
        })
        .collect()
}

/// Deletes the expired checkpoints of one trash root, then checkpoints
/// its `Current`.
async fn empty_one(node: &MetaNode, root: &str, now: u64, interval: u64) -> Result<(), FsError> {
    let entries = names(node, root);
    for (name, _) in &entries {
        let Some(made) = trash::checkpoint_time(name) else {
            continue;
        };
        if trash::expired(made, now, interval) {
            let p = path::child(root, name);
            node.propose_system(LogOp::Delete {
                path: p.clone(),
                recursive: true,
            })
            .await?;
            tracing::info!("deleted trash checkpoint {p}");
        }
    }
    if !entries.iter().any(|(n, _)| n == CURRENT) {
        return Ok(());
    }
    let current = path::child(root, CURRENT);
    let base = path::child(root, &trash::checkpoint_name(now));
    for attempt in 0..1000 {
        let dst = match attempt {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        };
        let op = LogOp::Rename {
            src: current.clone(),
            dst: dst.clone(),
            into_dir: false,
        };
        match node.propose_system(op).await {
            Ok(Outcome::Bool(false)) | Err(FsError::AlreadyExists(_)) => continue,
            Ok(_) => {
                tracing::info!("created trash checkpoint {dst}");
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Err(FsError::Internal(format!(
        "cannot checkpoint the trash {root}"
    )))
}
