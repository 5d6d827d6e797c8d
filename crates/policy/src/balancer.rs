//! The balancer: a pure function that moves blocks from nodes above the
//! average utilization to nodes below it until every node is within a
//! threshold of the average. A move is a copy to the target; once the copy
//! lands the block is over-replicated and excess removal drops the replica
//! on the fullest holder (the source, typically). Loads in the snapshot
//! already count moves in flight (promised bytes on targets, bytes leaving
//! sources), so consecutive rounds do not oscillate.

use crate::replication::{Action, BlockView, NodeView};
use std::collections::{BTreeMap, HashMap, HashSet};
use tdfs_proto::DatanodeId;

/// Whether every eligible node is within `threshold` (a fraction, 0.1 =
/// 10 points) of the average utilization.
pub fn balanced(nodes: &BTreeMap<DatanodeId, NodeView>, threshold: f64) -> bool {
    let el: Vec<&NodeView> = eligible(nodes).map(|(_, n)| n).collect();
    let Some(avg) = average(&el) else { return true };
    el.iter()
        .all(|n| (n.utilization() - avg).abs() <= threshold)
}

fn eligible(
    nodes: &BTreeMap<DatanodeId, NodeView>,
) -> impl Iterator<Item = (&DatanodeId, &NodeView)> {
    nodes.iter().filter(|(_, n)| {
        n.liveness == crate::liveness::Liveness::Live
            && n.admin == tdfs_namespace::AdminState::Normal
            && n.capacity > 0
    })
}

fn average(nodes: &[&NodeView]) -> Option<f64> {
    let cap: u64 = nodes.iter().map(|n| n.capacity).sum();
    if cap == 0 || nodes.len() < 2 {
        return None;
    }
    Some(nodes.iter().map(|n| n.load).sum::<u64>() as f64 / cap as f64)
}

/// Plans at most `max_per_node` moves per node this round.
pub fn plan_balance(
    nodes: &BTreeMap<DatanodeId, NodeView>,
    blocks: &[BlockView],
    threshold: f64,
    max_per_node: usize,
) -> Vec<Action> {
    let el: Vec<(&DatanodeId, &NodeView)> = eligible(nodes).collect();
    let Some(avg) = average(&el.iter().map(|(_, n)| *n).collect::<Vec<_>>()) else {
        return Vec::new();
    };
    let any_under = el.iter().any(|(_, n)| n.utilization() < avg - threshold);
    let any_over = el.iter().any(|(_, n)| n.utilization() > avg + threshold);
    if !any_under && !any_over {
        return Vec::new();
    }
    let mut plan = Plan {
        load: el
            .iter()
            .map(|(id, n)| (*id, (n.load, n.capacity)))
            .collect(),
        moves: HashMap::new(),
        avg,
        max_per_node,
    };
    // Sources: over the threshold (or merely above average when some node is
    // under it); fullest first. Each gives until it is down to `stop_at`.
    let mut sources: Vec<&DatanodeId> = el
        .iter()
        .filter(|(_, n)| {
            let u = n.utilization();
            u > avg + threshold || (any_under && u > avg)
        })
        .map(|(id, _)| *id)
        .collect();
    sources.sort_by(|a, b| plan.util(b).total_cmp(&plan.util(a)).then(a.cmp(b)));
    let stop_at = if any_under { avg } else { avg + threshold };
    let targets: Vec<&DatanodeId> = el.iter().map(|(id, _)| *id).collect();
    let mut out = Vec::new();
    let mut moving: HashSet<u64> = HashSet::new();
    for src in sources {
        for b in blocks
            .iter()
            .filter(|b| b.replicas.contains(src) && !b.in_flight)
        {
            if plan.util(src) <= stop_at || plan.moves_of(src) >= max_per_node {
                break;
            }
            if moving.contains(&b.id) {
                continue;
            }
            let Some(t) = plan.target(&targets, src, b) else {
                continue;
            };
            plan.apply(src, t, b.len);
            moving.insert(b.id);
            out.push(Action::Replicate {
                block: b.id,
                source: src.clone(),
                targets: vec![t.clone()],
            });
        }
    }
    out
}

/// Loads and move counts as the round's moves are planned.
struct Plan<'a> {
    /// (load, capacity) of each eligible node, moves planned so far counted.
    load: HashMap<&'a DatanodeId, (u64, u64)>,
    /// Moves each node takes part in this round.
    moves: HashMap<&'a DatanodeId, usize>,
    avg: f64,
    max_per_node: usize,
}

impl<'a> Plan<'a> {
    fn util(&self, id: &DatanodeId) -> f64 {
        let (ld, cap) = self.load[id];
        ld as f64 / cap as f64
    }

    fn moves_of(&self, id: &DatanodeId) -> usize {
        self.moves.get(id).copied().unwrap_or(0)
    }

    /// The emptiest node below average that lacks `b`, can take it and
    /// has moves left, if moving `b` there from `src` does not overshoot
    /// (the move must bring the pair closer together).
    fn target(
        &self,
        targets: &[&'a DatanodeId],
        src: &DatanodeId,
        b: &BlockView,
    ) -> Option<&'a DatanodeId> {
        let t = targets
            .iter()
            .copied()
            .filter(|t| !b.replicas.contains(t) && !b.exclude.contains(t))
            .filter(|t| self.util(t) < self.avg && self.moves_of(t) < self.max_per_node)
            .filter(|t| {
                let (ld, cap) = self.load[t];
                cap.saturating_sub(ld) >= b.len
            })
            .min_by(|a, c| self.util(a).total_cmp(&self.util(c)).then(a.cmp(c)))?;
        let after_t = (self.load[t].0 + b.len) as f64 / self.load[t].1 as f64;
        let after_s = (self.load[src].0.saturating_sub(b.len)) as f64 / self.load[src].1 as f64;
        (after_t <= after_s).then_some(t)
    }

    /// Counts a move of `len` bytes from `src` to `t`.
    fn apply(&mut self, src: &'a DatanodeId, t: &'a DatanodeId, len: u64) {
        let s = self.load.get_mut(src).expect("sources are eligible");
        s.0 -= len.min(s.0);
        self.load.get_mut(t).expect("targets are eligible").0 += len;
        *self.moves.entry(src).or_default() += 1;
        *self.moves.entry(t).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::Liveness;
    use tdfs_namespace::AdminState;

    fn node(load_mb: u64) -> NodeView {
        NodeView {
            liveness: Liveness::Live,
            admin: AdminState::Normal,
            capacity: 100 << 20,
            load: load_mb << 20,
            streams: 0,
        }
    }

    fn id(s: &str) -> DatanodeId {
        DatanodeId(s.into())
    }

    #[test]
    fn moves_from_full_to_empty_until_balanced() {
        let mut nodes: BTreeMap<DatanodeId, NodeView> = [("a", 60), ("b", 60), ("c", 60), ("e", 0)]
            .iter()
            .map(|(n, l)| (id(n), node(*l)))
            .collect();
        // 60 blocks of 1 MiB on a, b, c (three replicas each).
        let blocks: Vec<BlockView> = (0..60)
            .map(|i| BlockView {
                id: i,
                gen: 1,
                len: 1 << 20,
                replication: 3,
                replicas: vec![id("a"), id("b"), id("c")],
                sha256: None,
                in_flight: false,
                exclude: Vec::new(),
                avoid: Vec::new(),
            })
            .collect();
        assert!(!balanced(&nodes, 0.10));
        // Simulate rounds: each move lands and the source's copy is dropped.
        let mut blocks = blocks;
        for round in 0..100 {
            let acts = plan_balance(&nodes, &blocks, 0.10, 4);
            if acts.is_empty() {
                break;
            }
            for a in acts {
                let Action::Replicate {
                    block,
                    source,
                    targets,
                } = a
                else {
                    panic!()
                };
                let b = blocks.iter_mut().find(|b| b.id == block).unwrap();
                b.replicas.retain(|r| *r != source);
                b.replicas.push(targets[0].clone());
                nodes.get_mut(&source).unwrap().load -= 1 << 20;
                nodes.get_mut(&targets[0]).unwrap().load += 1 << 20;
            }
            assert!(round < 99, "did not converge");
        }
        assert!(balanced(&nodes, 0.10), "{nodes:?}");
        // Never two replicas on one node.
        for b in &blocks {
            let mut r = b.replicas.clone();
            r.sort();
            r.dedup();
            assert_eq!(r.len(), 3);
        }
    }

    #[test]
    fn balanced_cluster_plans_nothing() {
        let nodes: BTreeMap<DatanodeId, NodeView> = [("a", 50), ("b", 45), ("c", 55)]
            .iter()
            .map(|(n, l)| (id(n), node(*l)))
            .collect();
        assert!(balanced(&nodes, 0.10));
        assert!(plan_balance(&nodes, &[], 0.10, 4).is_empty());
    }
}
