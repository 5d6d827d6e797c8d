//! The leader's policy round: what changed since the last round is turned
//! into copies and deletions. Each step works on a queue kept up to date
//! incrementally (under- and over-replicated blocks, blocks whose corrupt
//! replicas may go, young blocks, copies and promises in flight), so an
//! idle cluster costs almost nothing however many blocks it holds; the
//! rescan of a node's blocks after it changes and the balancer's search of
//! the heavy nodes' blocks are bounded per round.

use crate::balancer::{balanced, plan_balance};
use crate::blocks::{Class, Entry};
use crate::replicas::NodeIx;
use crate::replication::{plan_excess, plan_replication, Action, BlockView, Limits, NodeView};
use crate::state::{ClusterState, Copy};
use std::collections::{BTreeMap, HashSet};
use std::time::Instant;
use tdfs_namespace::AdminState;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{BlockInfo, DatanodeCommand};
use tdfs_proto::{BlockId, DatanodeId};

/// What a round found that needs the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundOutput {
    /// Decommissioning nodes now drained: mark them decommissioned.
    pub decommissioned: Vec<DatanodeId>,
    /// Actions queued this round (for tests and metrics).
    pub copies: usize,
    pub deletions: usize,
    /// Deletions sent again, their first command lost (`state/deleting.rs`).
    pub resent: usize,
}

impl ClusterState {
    /// What every metadata node does periodically, leader or not, so that
    /// its view (what fsck and reads answer from, and what a new leader
    /// starts with) follows time: liveness, the end of young blocks'
    /// grace, and a step of a pending rescan. Returns the decommissioning
    /// nodes found drained when a rescan pass ended.
    pub fn tick(&mut self, now: Instant) -> Vec<DatanodeId> {
        self.block_events = 0;
        self.update_liveness(now);
        self.blocks.expire_young(now, &self.nodes);
        let drained = self.rescan();
        self.drain_transitions();
        drained
    }

    /// One round of the leader's block policies (after a [`tick`](Self::tick)).
    /// `balance` is the balancer's threshold (a fraction) when it runs;
    /// `drained` what the tick found.
    pub fn round(
        &mut self,
        now: Instant,
        balance: Option<f64>,
        drained: Vec<DatanodeId>,
    ) -> RoundOutput {
        let mut out = RoundOutput::default();
        if !self.leader {
            return out;
        }
        self.last_round = Some(now);
        out.resent = self.resend_deletions(now);
        self.expire_copies(now);
        self.expire_intents(now);
        out.decommissioned = drained;
        self.purge_corrupt(&mut out);
        let views = self.node_views();
        self.plan_copies(&views, now, &mut out);
        if self.all_reported() {
            self.plan_deletions(&views, &mut out);
            if let Some(t) = balance {
                if !balanced(&views, t) {
                    self.plan_moves(&views, t, now, &mut out);
                }
            }
        }
        self.drain_transitions();
        out
    }

    /// Every live datanode sent this leader a full report: the replica map
    /// is complete enough to delete surplus replicas.
    pub fn all_reported(&self) -> bool {
        self.nodes
            .iter()
            .filter(|(_, n)| n.registered && n.liveness != crate::Liveness::Dead)
            .all(|(_, n)| n.reported_this_term)
    }

    /// The nodes as the planners see them.
    pub fn node_views(&self) -> BTreeMap<DatanodeId, NodeView> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.registered)
            .map(|(_, n)| {
                (
                    n.id.clone(),
                    NodeView {
                        liveness: n.liveness,
                        admin: n.admin,
                        capacity: n.usage.capacity,
                        load: n.load(),
                        streams: n.streams,
                    },
                )
            })
            .collect()
    }

    fn view_of(&self, id: BlockId, e: &Entry) -> BlockView {
        BlockView {
            id,
            gen: e.gen,
            len: e.len,
            sha256: None,
            replication: e.repl,
            replicas: e
                .replicas
                .iter()
                .map(|n| self.nodes.get(n).id.clone())
                .collect(),
            in_flight: self.copies.contains_key(&id),
            exclude: self
                .blocks
                .quarantined(id)
                .iter()
                .map(|(n, _)| self.nodes.get(*n).id.clone())
                .collect(),
            avoid: self
                .failed_copies
                .get(&id)
                .into_iter()
                .flatten()
                .map(|n| self.nodes.get(*n).id.clone())
                .collect(),
        }
    }

    /// Advances the rescans of nodes' blocks. A decommissioning node is
    /// rescanned again and again; a rescan that ends with none of its
    /// blocks found short (every block walked since the latest request,
    /// so since it became decommissioning) finds it drained.
    fn rescan(&mut self) -> Vec<DatanodeId> {
        let decommissioning: Vec<NodeIx> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.admin == AdminState::Decommissioning)
            .map(|(i, _)| i)
            .collect();
        for n in decommissioning {
            if !self.blocks.rescanning_node(n) {
                self.blocks.request_rescan(n);
            }
        }
        let eligible = self.nodes.counting();
        let nodes = &self.nodes;
        let undrained = &mut self.undrained;
        let budget = self.cfg.rescan_budget;
        let ended = self.blocks.rescan_step(budget, nodes, &mut |n, _, e| {
            if e.known()
                && nodes.get(n).admin == AdminState::Decommissioning
                && !satisfied(e, nodes, eligible)
            {
                undrained.insert(n);
            }
        });
        let mut done = Vec::new();
        for n in ended {
            let short = self.undrained.remove(&n);
            let node = self.nodes.get(n);
            if !short && node.admin == AdminState::Decommissioning {
                done.push(node.id.clone());
            }
        }
        done
    }

    /// Deletes quarantined replicas of blocks back at their factor on good
    /// replicas elsewhere. A block whose every replica is corrupt keeps
    /// them all.
    fn purge_corrupt(&mut self, out: &mut RoundOutput) {
        let mut ids: Vec<BlockId> = self.blocks.purgeable().take(1000).collect();
        if self.cfg.bug_delete_last_corrupt {
            ids.extend(self.blocks.bad().take(1000));
        }
        for id in ids {
            let q: Vec<(NodeIx, u64)> = self.blocks.quarantined(id).to_vec();
            for (n, gen) in q {
                if !self.deleting.contains_key(&(n, id)) {
                    self.delete_replica(n, id, gen, 0);
                    out.deletions += 1;
                }
            }
        }
    }

    /// Copies for under-replicated blocks, most endangered first.
    fn plan_copies(
        &mut self,
        views: &BTreeMap<DatanodeId, NodeView>,
        now: Instant,
        out: &mut RoundOutput,
    ) {
        let cap = 4 * self.cfg.streams_per_node * views.len().max(1) + 64;
        // A block repaired (or gone) forgets its failed copy.
        let blocks = &self.blocks;
        self.failed_copies
            .retain(|id, _| blocks.get(*id).is_some_and(|e| e.class() == Class::Under));
        let candidates: Vec<BlockView> = self
            .blocks
            .under()
            .filter(|id| !self.copies.contains_key(id))
            .take(cap)
            .filter_map(|id| self.blocks.get(id).map(|e| self.view_of(id, e)))
            .collect();
        let limits = Limits {
            streams_per_node: self.cfg.streams_per_node,
        };
        for a in plan_replication(views, &candidates, limits) {
            if self.schedule(a, false, now) {
                out.copies += 1;
            }
        }
    }

    /// Deletions of surplus replicas.
    fn plan_deletions(&mut self, views: &BTreeMap<DatanodeId, NodeView>, out: &mut RoundOutput) {
        let blocks: Vec<BlockView> = self
            .blocks
            .over()
            .filter(|id| !self.copies.contains_key(id))
            .take(10_000)
            .filter_map(|id| self.blocks.get(id).map(|e| self.view_of(id, e)))
            .collect();
        let deleting: HashSet<(DatanodeId, BlockId)> = self
            .deleting
            .keys()
            .map(|(n, b)| (self.nodes.get(*n).id.clone(), *b))
            .collect();
        for a in plan_excess(views, &blocks, &deleting) {
            if let Action::Delete { node, block } = a {
                let (Some(ix), Some(e)) = (self.nodes.ix(&node), self.blocks.get(block)) else {
                    continue;
                };
                let (gen, len) = (e.gen, e.len);
                self.delete_replica(ix, block, gen, len);
                out.deletions += 1;
            }
        }
    }

    /// Balancer moves: candidates are found by a bounded search of each
    /// heavy node's blocks from where its last search stopped.
    fn plan_moves(
        &mut self,
        views: &BTreeMap<DatanodeId, NodeView>,
        t: f64,
        now: Instant,
        out: &mut RoundOutput,
    ) {
        let avg = {
            let cap: u64 = views
                .values()
                .filter(|v| v.can_target())
                .map(|v| v.capacity)
                .sum();
            let load: u64 = views
                .values()
                .filter(|v| v.can_target())
                .map(|v| v.load)
                .sum();
            if cap == 0 {
                return;
            }
            load as f64 / cap as f64
        };
        let heavy: Vec<NodeIx> = views
            .iter()
            .filter(|(_, v)| v.can_target() && v.utilization() > avg)
            .filter_map(|(id, _)| self.nodes.ix(id))
            .collect();
        // Each heavy node's own blocks are searched, from where its last
        // search stopped, for healthy ones not already moving.
        let want = 4 * self.cfg.moves_per_node;
        let budget = (self.cfg.rescan_budget / heavy.len().max(1)).max(1);
        let mut candidates = Vec::new();
        let mut taken = HashSet::new();
        for n in heavy {
            let start = self.balance_cursor.get(&n).copied().unwrap_or(0);
            let (mut scanned, mut found, mut last) = (0, 0, None);
            for id in self.blocks.blocks_of(n, start).take(budget) {
                scanned += 1;
                last = Some(id);
                let Some(e) = self.blocks.get(id) else {
                    continue;
                };
                if e.class() != Class::Healthy || self.copies.contains_key(&id) {
                    continue;
                }
                if taken.insert(id) {
                    candidates.push(self.view_of(id, e));
                    found += 1;
                    if found >= want {
                        break;
                    }
                }
            }
            // Resume after the last block seen, or from the start once the
            // search reached the end of the node's blocks.
            match last {
                Some(l) if found >= want || scanned == budget => {
                    self.balance_cursor.insert(n, l + 1);
                }
                _ => {
                    self.balance_cursor.remove(&n);
                }
            }
        }
        for a in plan_balance(views, &candidates, t, self.cfg.moves_per_node) {
            if let Action::Replicate {
                block,
                source,
                targets,
            } = &a
            {
                if let Some(target) = targets.first() {
                    self.events.push(EventKind::BalancerMove {
                        block: *block,
                        source: source.clone(),
                        target: target.clone(),
                    });
                }
            }
            if self.schedule(a, true, now) {
                out.copies += 1;
            }
        }
    }

    /// Queues a copy command and records it.
    fn schedule(&mut self, a: Action, is_move: bool, now: Instant) -> bool {
        let Action::Replicate {
            block,
            source,
            targets,
        } = a
        else {
            return false;
        };
        let (Some(src), Some(e)) = (self.nodes.ix(&source), self.blocks.get(block)) else {
            return false;
        };
        let (gen, len) = (e.gen, e.len);
        let tix: Vec<NodeIx> = targets.iter().filter_map(|t| self.nodes.ix(t)).collect();
        if tix.is_empty() || self.copies.contains_key(&block) {
            return false;
        }
        let addrs = tix.iter().map(|t| self.nodes.get(*t).addr()).collect();
        self.note_intent(block, &targets, len, now);
        self.nodes.get_mut(src).streams += 1;
        for t in &tix {
            self.nodes.get_mut(*t).streams += 1;
        }
        self.copies.insert(
            block,
            Copy {
                source: src,
                targets: tix,
                since: now,
                is_move,
                bytes: len,
            },
        );
        self.events.push(EventKind::CopyScheduled {
            block,
            source: source.clone(),
            targets: targets.clone(),
        });
        self.commands
            .entry(src)
            .or_default()
            .push(DatanodeCommand::Replicate {
                block: BlockInfo {
                    id: block,
                    gen,
                    len,
                    sha256: None,
                },
                targets: addrs,
                token: None,
            });
        true
    }

    /// Forgets copies that did not finish in time.
    fn expire_copies(&mut self, now: Instant) {
        let ttl = self.cfg.copy_ttl;
        let expired: Vec<BlockId> = self
            .copies
            .iter()
            .filter(|(_, c)| now.saturating_duration_since(c.since) >= ttl)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let c = self.copies.remove(&id).expect("present");
            if !c.is_move {
                let failed = self.failed_copies.entry(id).or_default();
                for n in std::iter::once(c.source).chain(c.targets.iter().copied()) {
                    if !failed.contains(&n) {
                        failed.push(n);
                    }
                }
            }
            for n in std::iter::once(c.source).chain(c.targets) {
                let node = self.nodes.get_mut(n);
                node.streams = node.streams.saturating_sub(1);
            }
        }
    }
}

/// Whether a block on a decommissioning node is held elsewhere enough for
/// the node to leave: at its factor on counting nodes, or on every
/// counting node when there are fewer.
fn satisfied(e: &Entry, nodes: &crate::nodes::Nodes, eligible: usize) -> bool {
    if !e.committed() {
        return false;
    }
    let counted = e.replicas.iter().filter(|n| nodes.get(*n).counts()).count();
    counted > 0 && counted >= (e.repl as usize).min(eligible)
}
