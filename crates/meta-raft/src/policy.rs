//! The leader's periodic block duties: delete orphan and stale replicas,
//! recover expired leases, expire placement intents, and run the block
//! policies (re-replication, excess removal, balancing, decommission
//! progress) over a snapshot of the cluster. Runs only on the leader,
//! and only once the leader has applied every entry of earlier terms (its
//! own term's first entry is applied), so it never judges a replica against
//! an outdated namespace.

use crate::balancer::{balanced, plan_balance};
use crate::cluster::{Copy, Liveness};
use crate::command::{AdminState, OpKind};
use crate::config::defaults;
use crate::metrics::Health;
use crate::node::MetaNode;
use crate::replication::{
    drained, plan_excess, plan_replication, Action, BlockView, Limits, NodeView,
};
use openraft::ServerState;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_proto::meta::{BlockInfo, DatanodeAddr, DatanodeCommand};
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
        let threshold = node.balance_threshold();
        let drained = plan_blocks(&node, now, threshold);
        for id in drained {
            tracing::info!("datanode {id} is drained: marking it decommissioned");
            let op = node.system_op(OpKind::SetAdminState {
                id,
                state: AdminState::Decommissioned,
            });
            if let Err(e) = node.propose(op).await {
                tracing::warn!("marking a datanode decommissioned failed: {e}");
            }
        }
    }
}

/// The policies' view of the cluster: every datanode and every committed block.
pub fn snapshot(node: &MetaNode, now: Instant) -> (BTreeMap<DatanodeId, NodeView>, Vec<BlockView>) {
    let st = node.sm.state.read().unwrap();
    let v = node.view.lock().unwrap();
    let streams = v.streams();
    // Bytes about to leave each node (balancer moves in flight).
    let mut leaving: HashMap<&DatanodeId, u64> = HashMap::new();
    let mut lens: HashMap<BlockId, u64> = HashMap::new();
    let mut blocks = Vec::new();
    for (_, f) in st.ns.files() {
        for b in &f.blocks {
            if !b.committed {
                continue;
            }
            lens.insert(b.id, b.len);
            let replicas = v
                .replicas
                .get(&b.id)
                .map(|r| {
                    r.iter()
                        .filter(|(_, s)| s.gen == b.gen)
                        .map(|(n, _)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            blocks.push(BlockView {
                id: b.id,
                gen: b.gen,
                len: b.len,
                replication: f.replication,
                replicas,
                sha256: b.sha256,
                in_flight: v.replicating.contains_key(&b.id),
            });
        }
    }
    for (b, c) in &v.replicating {
        if c.is_move {
            *leaving.entry(&c.source).or_default() += lens.get(b).copied().unwrap_or(0);
        }
    }
    let nodes = st
        .ns
        .datanodes
        .iter()
        .map(|(id, rec)| {
            let soft = v.datanodes.get(id);
            let usage = soft.map(|d| d.usage).unwrap_or_default();
            let load = (usage.used + usage.pending + v.promised(id, now))
                .saturating_sub(leaving.get(id).copied().unwrap_or(0));
            (
                id.clone(),
                NodeView {
                    liveness: v.liveness(id, &node.liveness, now),
                    admin: rec.admin,
                    capacity: usage.capacity,
                    load,
                    streams: streams.get(id).copied().unwrap_or(0),
                },
            )
        })
        .collect();
    (nodes, blocks)
}

/// Plans and queues re-replication, excess removal and balancer moves;
/// returns the decommissioning nodes that are drained.
fn plan_blocks(node: &MetaNode, now: Instant, balance: Option<f64>) -> Vec<DatanodeId> {
    let (nodes, blocks) = snapshot(node, now);
    let limits = Limits {
        streams_per_node: defaults::STREAMS_PER_NODE,
    };
    let copies = plan_replication(&nodes, &blocks, limits);
    let mut v = node.view.lock().unwrap();
    node.metrics.set_health(health(&nodes, &blocks, &v));
    v.expire_copies(now);
    // No deletion of surplus replicas until every live datanode has sent
    // this leader a full report: a new leader must not act on a partial map.
    let all_reported = nodes
        .iter()
        .filter(|(_, n)| n.liveness != Liveness::Dead)
        .all(|(id, _)| v.datanodes.get(id).is_some_and(|d| d.reported_this_term));
    let mut actions = copies.into_iter().map(|a| (a, false)).collect::<Vec<_>>();
    if all_reported {
        actions.extend(
            plan_excess(&nodes, &blocks, &v.deleting)
                .into_iter()
                .map(|a| (a, false)),
        );
    }
    if let Some(t) = balance {
        if all_reported && !balanced(&nodes, t) {
            let moves = plan_balance(&nodes, &blocks, t, defaults::MOVES_PER_NODE);
            actions.extend(moves.into_iter().map(|a| (a, true)));
        }
    }
    let by_id: HashMap<BlockId, &BlockView> = blocks.iter().map(|b| (b.id, b)).collect();
    for (a, is_move) in actions {
        match a {
            Action::Delete { node: n, block } => {
                let gen = by_id.get(&block).map(|b| b.gen).unwrap_or(u64::MAX);
                v.queue_delete(&n, block, gen)
            }
            Action::Replicate {
                block,
                source,
                targets,
            } => {
                if v.replicating.contains_key(&block) {
                    continue;
                }
                // From the snapshot: the namespace lock is never taken under
                // the view lock (everywhere else takes it first).
                let Some(bi) = by_id.get(&block).map(|b| BlockInfo {
                    id: b.id,
                    gen: b.gen,
                    len: b.len,
                    sha256: b.sha256,
                }) else {
                    continue;
                };
                let addrs: Vec<DatanodeAddr> = targets
                    .iter()
                    .filter_map(|t| {
                        let d = v.datanodes.get(t)?;
                        Some(DatanodeAddr {
                            id: t.clone(),
                            addr: d.addr.clone(),
                            http: d.http.clone(),
                        })
                    })
                    .collect();
                if addrs.is_empty() {
                    continue;
                }
                let len = by_id.get(&block).map(|b| b.len).unwrap_or(0);
                v.add_intent(block, &targets, len, now);
                v.replicating.insert(
                    block,
                    Copy {
                        source: source.clone(),
                        targets,
                        since: now,
                        is_move,
                    },
                );
                v.commands
                    .entry(source)
                    .or_default()
                    .push(DatanodeCommand::Replicate {
                        block: bi,
                        targets: addrs,
                    });
            }
        }
    }
    drained(&nodes, &blocks)
}

/// Datanode liveness and block health for the metrics.
fn health(
    nodes: &BTreeMap<DatanodeId, NodeView>,
    blocks: &[BlockView],
    v: &crate::cluster::ClusterView,
) -> Health {
    let mut h = Health::default();
    for n in nodes.values() {
        match n.liveness {
            Liveness::Live => h.live += 1,
            Liveness::Stale => h.stale += 1,
            Liveness::Dead => h.dead += 1,
        }
    }
    for b in blocks {
        h.blocks += 1;
        let live = b
            .replicas
            .iter()
            .filter(|r| nodes.get(*r).is_some_and(|n| n.liveness != Liveness::Dead))
            .count();
        if live == 0 {
            if v.corrupt.contains_key(&b.id) {
                h.corrupt += 1;
            } else {
                h.missing += 1;
            }
        } else if live < b.replication as usize {
            h.under_replicated += 1;
        }
    }
    h
}

/// Leader, with an entry of its own term applied.
pub fn leader_ready(node: &MetaNode) -> bool {
    let m = node.raft.metrics().borrow().clone();
    m.state == ServerState::Leader
        && m.last_applied.map(|l| l.leader_id.term) == Some(m.current_term)
}

/// Queues deletion of replicas whose block is gone from the namespace
/// (deleted files, abandoned blocks) or whose generation is older than the
/// block's. Only for datanodes that sent a full report this term. Both rules
/// hold in any later state too (block ids are never reused, generations only
/// grow), so a leader whose namespace lags behind a newer one deletes
/// nothing the newer one still needs.
fn delete_orphans_and_stale(node: &MetaNode, now: Instant) {
    let st = node.sm.state.read().unwrap();
    let mut v = node.view.lock().unwrap();
    let mut deletes: Vec<(DatanodeId, BlockId, u64)> = Vec::new();
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
                // Only a block this namespace allocated and later dropped is
                // an orphan. A block beyond its counter was allocated by a
                // newer leader this node has not heard from (it may be a
                // deposed leader that does not know it yet): never delete it.
                None if *block < st.ns.next_block => deletes.push((n.clone(), *block, u64::MAX)),
                Some(g) if r.gen < g => deletes.push((n.clone(), *block, r.gen)),
                _ => {}
            }
        }
    }
    for (n, b, g) in deletes {
        v.queue_delete(&n, b, g);
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
