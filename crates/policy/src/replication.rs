//! Re-replication and excess removal: pure functions from a view of the
//! nodes and of the blocks in a work queue to actions. The leader builds
//! the views from its incremental state each round, for the queued blocks
//! only; tests build them by hand.

use crate::liveness::Liveness;
use std::collections::{BTreeMap, HashMap, HashSet};
use tdfs_namespace::AdminState;
use tdfs_proto::{BlockId, DatanodeId};

/// A datanode as the policies see it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeView {
    pub liveness: Liveness,
    pub admin: AdminState,
    pub capacity: u64,
    /// Used plus pending plus promised bytes.
    pub load: u64,
    /// Replication streams this node is already part of (source or target).
    pub streams: usize,
}

impl NodeView {
    /// Utilization in [0, 1+].
    pub fn utilization(&self) -> f64 {
        if self.capacity == 0 {
            1.0
        } else {
            self.load as f64 / self.capacity as f64
        }
    }

    /// Can serve as the source of a copy (live or stale, any admin state).
    pub fn can_source(&self) -> bool {
        self.liveness != Liveness::Dead
    }

    /// Can receive a new replica.
    pub fn can_target(&self) -> bool {
        self.liveness == Liveness::Live && self.admin == AdminState::Normal
    }

    /// Its replica counts toward the replication factor.
    pub fn counts(&self) -> bool {
        self.liveness != Liveness::Dead && self.admin == AdminState::Normal
    }
}

/// A committed block as the policies see it.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockView {
    pub id: BlockId,
    pub gen: u64,
    pub len: u64,
    /// The committed digest, handed to the datanode that copies the block.
    pub sha256: Option<[u8; 32]>,
    pub replication: u16,
    /// Nodes holding a finalized replica at the block's generation.
    pub replicas: Vec<DatanodeId>,
    /// A copy of this block is already in flight.
    pub in_flight: bool,
    /// Nodes that must not receive a copy (they hold a quarantined one).
    pub exclude: Vec<DatanodeId>,
    /// Nodes of an earlier copy of this block that never finished (one of
    /// them may be unreachable from the others): another source and other
    /// targets are preferred, so a node cut off from its peers does not
    /// stall the block's repair.
    pub avoid: Vec<DatanodeId>,
}

/// What the policies may decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `source` copies the block to `targets`.
    Replicate {
        block: BlockId,
        source: DatanodeId,
        targets: Vec<DatanodeId>,
    },
    /// `node` drops its replica.
    Delete { node: DatanodeId, block: BlockId },
}

/// Limits of one planning round.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Replication streams a node may take part in at once.
    pub streams_per_node: usize,
}

/// Plans copies for blocks with fewer counted replicas than their factor,
/// the most endangered first (one counted replica before two, ...).
///
/// Sources: any non-dead holder, preferring normal, least busy nodes.
/// Targets: live, normal nodes that do not hold the block, by lowest
/// utilization, within the per-node stream limit (streams planned in this
/// round count too).
pub fn plan_replication(
    nodes: &BTreeMap<DatanodeId, NodeView>,
    blocks: &[BlockView],
    limits: Limits,
) -> Vec<Action> {
    let mut streams: HashMap<&DatanodeId, usize> =
        nodes.iter().map(|(id, n)| (id, n.streams)).collect();
    let mut queue: Vec<(usize, &BlockView)> = blocks
        .iter()
        .filter(|b| !b.in_flight)
        .filter_map(|b| {
            let counted = b
                .replicas
                .iter()
                .filter(|r| nodes.get(*r).is_some_and(|n| n.counts()))
                .count();
            (counted < b.replication as usize).then_some((counted, b))
        })
        .collect();
    queue.sort_by_key(|(counted, b)| (*counted, b.id));
    let mut out = Vec::new();
    for (counted, b) in queue {
        let source = b
            .replicas
            .iter()
            .filter_map(|r| nodes.get(r).map(|n| (r, n)))
            .filter(|(r, n)| n.can_source() && streams[r] < limits.streams_per_node)
            .min_by_key(|(r, n)| {
                (
                    b.avoid.contains(r),
                    n.admin != AdminState::Normal,
                    n.liveness != Liveness::Live,
                    streams[r],
                    (*r).clone(),
                )
            })
            .map(|(r, _)| r.clone());
        let Some(source) = source else { continue };
        let holders: HashSet<&DatanodeId> = b.replicas.iter().collect();
        let mut candidates: Vec<(&DatanodeId, &NodeView)> = nodes
            .iter()
            .filter(|(id, n)| {
                n.can_target()
                    && !holders.contains(id)
                    && !b.exclude.contains(id)
                    && streams[id] < limits.streams_per_node
                    && n.capacity.saturating_sub(n.load) >= b.len
            })
            .collect();
        candidates.sort_by(|x, y| {
            b.avoid
                .contains(x.0)
                .cmp(&b.avoid.contains(y.0))
                .then(
                    x.1.utilization()
                        .partial_cmp(&y.1.utilization())
                        .unwrap_or(std::cmp::Ordering::Equal),
                )
                .then(x.0.cmp(y.0))
        });
        let need = b.replication as usize - counted;
        let targets: Vec<DatanodeId> = candidates
            .iter()
            .take(need)
            .map(|(id, _)| (*id).clone())
            .collect();
        if targets.is_empty() {
            continue;
        }
        *streams.get_mut(&source).unwrap() += 1;
        for t in &targets {
            *streams.get_mut(t).unwrap() += 1;
        }
        out.push(Action::Replicate {
            block: b.id,
            source,
            targets,
        });
    }
    out
}

/// Plans deletions of surplus replicas: while a block has more counted
/// replicas than its factor, the replica on the fullest node goes. Replicas
/// on decommissioning or decommissioned nodes are never deleted here (they
/// serve reads until the node leaves), and a block never drops below its
/// factor. `deleting` holds deletions already in flight.
pub fn plan_excess(
    nodes: &BTreeMap<DatanodeId, NodeView>,
    blocks: &[BlockView],
    deleting: &HashSet<(DatanodeId, BlockId)>,
) -> Vec<Action> {
    let mut out = Vec::new();
    for b in blocks {
        let mut counted: Vec<(&DatanodeId, &NodeView)> = b
            .replicas
            .iter()
            .filter(|r| !deleting.contains(&((*r).clone(), b.id)))
            .filter_map(|r| nodes.get(r).map(|n| (r, n)))
            .filter(|(_, n)| n.counts())
            .collect();
        let want = b.replication as usize;
        if counted.len() <= want {
            continue;
        }
        // Fullest first; stale nodes before live ones (they may be leaving).
        counted.sort_by(|a, b| {
            (b.1.liveness != Liveness::Live)
                .cmp(&(a.1.liveness != Liveness::Live))
                .then(
                    b.1.utilization()
                        .partial_cmp(&a.1.utilization())
                        .unwrap_or(std::cmp::Ordering::Equal),
                )
                .then(a.0.cmp(b.0))
        });
        let surplus = counted.len() - want;
        for (node, _) in counted.into_iter().take(surplus) {
            out.push(Action::Delete {
                node: node.clone(),
                block: b.id,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DatanodeId {
        DatanodeId(s.into())
    }

    /// `spec`: "name:state:admin:load%" with state L/S/D and admin N/G/X.
    fn nodes(spec: &[&str]) -> BTreeMap<DatanodeId, NodeView> {
        spec.iter()
            .map(|s| {
                let p: Vec<&str> = s.split(':').collect();
                let liveness = match p[1] {
                    "L" => Liveness::Live,
                    "S" => Liveness::Stale,
                    _ => Liveness::Dead,
                };
                let admin = match p[2] {
                    "N" => AdminState::Normal,
                    "G" => AdminState::Decommissioning,
                    _ => AdminState::Decommissioned,
                };
                let load: u64 = p[3].parse().unwrap();
                (
                    id(p[0]),
                    NodeView {
                        liveness,
                        admin,
                        capacity: 100 << 20,
                        load: load << 20,
                        streams: 0,
                    },
                )
            })
            .collect()
    }

    fn block(n: u64, repl: u16, on: &[&str]) -> BlockView {
        BlockView {
            id: n,
            gen: 1,
            len: 1 << 20,
            replication: repl,
            replicas: on.iter().map(|s| id(s)).collect(),
            sha256: None,
            in_flight: false,
            exclude: Vec::new(),
            avoid: Vec::new(),
        }
    }

    const LIM: Limits = Limits {
        streams_per_node: 2,
    };

    #[test]
    fn a_copy_that_never_finished_is_planned_around_its_nodes() {
        let n = nodes(&["a:L:N:10", "b:L:N:20", "c:L:N:30", "e:L:N:50"]);
        let plan = |avoid: &[&str]| {
            let mut b = block(1, 3, &["a", "b"]);
            b.avoid = avoid.iter().map(|s| id(s)).collect();
            plan_replication(&n, &[b], LIM)
        };
        let copy = |source: &str, target: &str| {
            vec![Action::Replicate {
                block: 1,
                source: id(source),
                targets: vec![id(target)],
            }]
        };
        // First try: the lowest source, the emptiest target.
        assert_eq!(plan(&[]), copy("a", "c"));
        // `a -> c` expired (one of them is cut off): `b` to `e` instead.
        assert_eq!(plan(&["a", "c"]), copy("b", "e"));
        // Only the source failed: a new source, the best target still.
        assert_eq!(plan(&["a"]), copy("b", "c"));
        // Every choice was tried: the usual order again rather than nothing.
        assert_eq!(plan(&["a", "b", "c", "e"]), copy("a", "c"));
    }

    #[test]
    fn replication_table() {
        // (nodes, blocks, expected actions)
        let n = nodes(&["a:L:N:10", "b:L:N:20", "c:L:N:30", "d:D:N:0", "e:L:N:50"]);
        let cases: Vec<(Vec<BlockView>, Vec<Action>)> = vec![
            // Fully replicated: nothing.
            (vec![block(1, 3, &["a", "b", "c"])], vec![]),
            // A replica on a dead node does not count; the emptiest non-holder gets it.
            (
                vec![block(1, 3, &["b", "c", "d"])],
                vec![Action::Replicate {
                    block: 1,
                    source: id("b"),
                    targets: vec![id("a")],
                }],
            ),
            // One live replica left: two copies at once.
            (
                vec![block(1, 3, &["e", "d"])],
                vec![Action::Replicate {
                    block: 1,
                    source: id("e"),
                    targets: vec![id("a"), id("b")],
                }],
            ),
            // No live holder: nothing can be done (missing block).
            (vec![block(1, 3, &["d"])], vec![]),
        ];
        for (i, (blocks, want)) in cases.into_iter().enumerate() {
            assert_eq!(plan_replication(&n, &blocks, LIM), want, "case {i}");
        }
    }

    #[test]
    fn most_endangered_first_and_stream_limits() {
        let n = nodes(&["a:L:N:10", "b:L:N:20", "c:L:N:30", "d:D:N:0"]);
        let blocks = vec![
            block(1, 3, &["a", "b", "d"]),
            block(2, 3, &["a", "d"]),
            block(3, 3, &["a", "d"]),
            block(4, 3, &["a", "d"]),
        ];
        let acts = plan_replication(&n, &blocks, LIM);
        // Blocks with one replica go first; a is the only source and may feed two streams.
        let planned: Vec<BlockId> = acts
            .iter()
            .map(|a| match a {
                Action::Replicate { block, .. } => *block,
                _ => 0,
            })
            .collect();
        assert_eq!(planned, vec![2, 3]);
    }

    #[test]
    fn stale_nodes_count_but_take_no_copies() {
        let n = nodes(&["a:L:N:10", "b:S:N:20", "c:L:N:30", "e:L:N:40"]);
        // The stale replica still counts: no storm while a node flaps.
        assert!(plan_replication(&n, &[block(1, 3, &["a", "b", "c"])], LIM).is_empty());
        // Targets are never stale.
        let acts = plan_replication(&n, &[block(1, 3, &["a", "c"])], LIM);
        assert_eq!(
            acts,
            vec![Action::Replicate {
                block: 1,
                source: id("a"),
                targets: vec![id("e")]
            }]
        );
    }

    #[test]
    fn decommissioning_replicas_do_not_count_and_are_sources() {
        let n = nodes(&["a:L:G:10", "b:L:N:20", "c:L:N:30", "e:L:N:40"]);
        let acts = plan_replication(&n, &[block(1, 3, &["a", "b", "c"])], LIM);
        assert_eq!(
            acts,
            vec![Action::Replicate {
                block: 1,
                source: id("b"),
                targets: vec![id("e")]
            }]
        );
        let only = plan_replication(&n, &[block(2, 2, &["a"])], LIM);
        assert_eq!(
            only,
            vec![Action::Replicate {
                block: 2,
                source: id("a"),
                targets: vec![id("b"), id("c")]
            }]
        );
    }

    #[test]
    fn excess_table() {
        let n = nodes(&["a:L:N:10", "b:L:N:90", "c:L:N:30", "d:S:N:20", "g:L:G:95"]);
        let none = HashSet::new();
        // The fullest node loses its replica.
        assert_eq!(
            plan_excess(&n, &[block(1, 3, &["a", "b", "c", "d"])], &none),
            vec![Action::Delete {
                node: id("d"),
                block: 1
            }]
        );
        assert_eq!(
            plan_excess(&n, &[block(1, 2, &["a", "b", "c"])], &none),
            vec![Action::Delete {
                node: id("b"),
                block: 1
            }]
        );
        // Decommissioning replicas are kept and do not count.
        assert!(plan_excess(&n, &[block(1, 3, &["a", "b", "c", "g"])], &none).is_empty());
        // Deletions in flight are not planned twice.
        let busy: HashSet<_> = [(id("b"), 1)].into_iter().collect();
        assert!(plan_excess(&n, &[block(1, 2, &["a", "b", "c"])], &busy).is_empty());
        // Never below the factor.
        assert!(plan_excess(&n, &[block(1, 3, &["a", "b", "c"])], &none).is_empty());
    }
}
