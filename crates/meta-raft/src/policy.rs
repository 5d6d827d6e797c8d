//! The leader's periodic block duties: delete orphan and stale replicas,
//! recover expired leases, expire placement intents. Runs only on the leader,
//! and only once the leader has applied every entry of earlier terms (its
//! own term's first entry is applied), so it never judges a replica against
//! an outdated namespace.

use crate::command::OpKind;
use crate::config::defaults;
use crate::node::MetaNode;
use openraft::ServerState;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::{BlockId, DatanodeId};
use tdfs_rpc::Shutdown;

/// Runs the leader's duties until shutdown.
pub async fn run(node: Arc<MetaNode>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(Duration::from_millis(defaults::POLICY_INTERVAL_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tick.tick() => {}
        }
        if !leader_ready(&node) {
            continue;
        }
        let now = Instant::now();
        delete_orphans_and_stale(&node, now);
        recover_leases(&node, now).await;
    }
}

/// Leader, with an entry of its own term applied.
pub fn leader_ready(node: &MetaNode) -> bool {
    let m = node.raft.metrics().borrow().clone();
    m.state == ServerState::Leader
        && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term)
}

/// Queues deletion of replicas whose block is gone from the namespace
/// (deleted files, abandoned blocks) or whose generation is older than the
/// block's. Only for datanodes that sent a full report this term.
fn delete_orphans_and_stale(node: &MetaNode, now: Instant) {
    let st = node.sm.state.read().unwrap();
    let mut v = node.view.lock().unwrap();
    let mut deletes: Vec<(DatanodeId, BlockId)> = Vec::new();
    for (block, reps) in &v.replicas {
        let current_gen =
            st.ns
                .block_file(*block)
                .and_then(|(ino, idx)| match &st.ns.inodes.get(&ino)?.body {
                    crate::namespace::Body::File(f) => Some(f.blocks[idx].gen),
                    _ => None,
                });
        for (n, r) in reps {
            let reported = v.datanodes.get(n).is_some_and(|d| d.reported_this_term);
            if !reported {
                continue;
            }
            match current_gen {
                None => deletes.push((n.clone(), *block)),
                Some(g) if r.gen < g => deletes.push((n.clone(), *block)),
                _ => {}
            }
        }
    }
    for (n, b) in deletes {
        v.queue_delete(&n, b);
    }
    v.expire_intents(now);
}

/// Closes files whose writer stopped renewing its lease: the last block is
/// kept at the length and digest its finalized replicas agree on, or dropped
/// when no replica finished it.
async fn recover_leases(node: &MetaNode, now: Instant) {
    let timeout = Duration::from_millis(node.config.lease_timeout_ms);
    let mut recover: Vec<(String, Option<BlockInfo>, bool)> = Vec::new();
    {
        let st = node.sm.state.read().unwrap();
        let mut v = node.view.lock().unwrap();
        for (ino, f) in st.ns.files() {
            let Some(lease) = &f.lease else { continue };
            let renewed = *v.leases.entry(lease.holder).or_insert(now);
            if now.saturating_duration_since(renewed) < timeout {
                continue;
            }
            let path = st.ns.path_of(ino.id);
            match f.blocks.last() {
                Some(b) if !b.committed => {
                    let good = v.good_replicas(b.id, b.gen, &node.liveness, now);
                    // The most common (length, digest) among finished replicas.
                    let mut votes: HashMap<(u64, [u8; 32]), usize> = HashMap::new();
                    for (_, r) in &good {
                        *votes.entry((r.len, r.sha256)).or_default() += 1;
                    }
                    match votes.into_iter().max_by_key(|(_, n)| *n) {
                        Some(((len, sha), _)) => recover.push((
                            path,
                            Some(BlockInfo {
                                id: b.id,
                                gen: b.gen,
                                len,
                                sha256: Some(sha),
                            }),
                            false,
                        )),
                        None => recover.push((path, None, true)),
                    }
                }
                _ => recover.push((path, None, false)),
            }
        }
    }
    for (path, last, drop_last) in recover {
        tracing::info!("lease expired on {path}: recovering (drop last block: {drop_last})");
        let op = node.system_op(OpKind::RecoverLease {
            path: path.clone(),
            last,
            drop_last,
        });
        if let Err(e) = node.propose(op).await {
            tracing::warn!("lease recovery of {path} failed: {e}");
        }
    }
}
