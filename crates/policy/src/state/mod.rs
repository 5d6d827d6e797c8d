//! The cluster's soft state on one metadata node: the nodes, the block map
//! and, on the leader, what it has promised, asked for and is waiting on.
//! Fed by namespace changes (as the state machine applies them), datanode
//! reports and gossip; read by placement, reads and the policy round.
//! Nothing here is replicated; a restarted node rebuilds it from the
//! namespace and the datanodes' reports.

use crate::blocks::{BlockMap, Class};
use crate::liveness::{Liveness, LivenessConfig};
use crate::nodes::Nodes;
use crate::replicas::NodeIx;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tdfs_namespace::{AdminState, BlockRef, InodeId, NsEvent};
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::DatanodeCommand;
use tdfs_proto::{BlockId, DatanodeId};

mod deleting;
mod reports;

/// Knobs of the policies.
#[derive(Clone, Copy, Debug)]
pub struct PolicyConfig {
    pub liveness: LivenessConfig,
    /// A block just written is not counted under-replicated for this long.
    pub young_grace: Duration,
    /// Copies a datanode takes part in at once.
    pub streams_per_node: usize,
    /// Balancer moves per datanode per round.
    pub moves_per_node: usize,
    /// A copy not done by then is planned again.
    pub copy_ttl: Duration,
    /// A placement promise is dropped if its replica never shows up.
    pub intent_ttl: Duration,
    /// Blocks reclassified per round while rescans run (and searched per round by the balancer).
    pub rescan_budget: usize,
    /// Block events published per round at most (a dead node can change
    /// millions of blocks at once).
    pub max_block_events: usize,
    /// A deliberate defect for the chaos suite: corrupt replicas are
    /// deleted even when no good copy exists.
    pub bug_delete_last_corrupt: bool,
}

impl PolicyConfig {
    pub fn new(liveness: LivenessConfig) -> Self {
        PolicyConfig {
            liveness,
            young_grace: Duration::from_secs(10),
            streams_per_node: 4,
            moves_per_node: 2,
            copy_ttl: Duration::from_secs(20),
            intent_ttl: Duration::from_secs(600),
            rescan_budget: 100_000,
            max_block_events: 10_000,
            bug_delete_last_corrupt: false,
        }
    }
}

/// A copy the leader asked for.
#[derive(Clone, Debug)]
pub struct Copy {
    pub source: NodeIx,
    pub targets: Vec<NodeIx>,
    pub since: Instant,
    /// A balancer move: the source's replica is expected to go.
    pub is_move: bool,
    pub bytes: u64,
}

/// The soft state.
#[derive(Debug)]
pub struct ClusterState {
    pub cfg: PolicyConfig,
    pub nodes: Nodes,
    pub blocks: BlockMap,
    /// Every block below this id was allocated by the namespace this node
    /// applied; a replica of a block above it comes from a newer leader.
    pub next_block: BlockId,
    /// This node leads (commands, deletions and copies are leader state).
    pub(crate) leader: bool,
    /// Commands waiting for each datanode.
    pub(crate) commands: FxHashMap<NodeIx, Vec<DatanodeCommand>>,
    /// Deletions asked for and not yet reported done.
    pub(crate) deleting: FxHashMap<(NodeIx, BlockId), deleting::Deleting>,
    /// Their deadlines, oldest first (`deleting.rs`).
    pub(crate) delete_deadlines: std::collections::VecDeque<deleting::Deadline>,
    pub(crate) delete_seq: u64,
    /// The time of the latest round (deadlines of deletions queued between
    /// rounds start there).
    pub(crate) last_round: Option<Instant>,
    /// Copies in flight.
    pub(crate) copies: FxHashMap<BlockId, Copy>,
    /// Under-replicated blocks whose last copy expired unfinished: the
    /// nodes it involved, avoided by the next plan (leader).
    pub(crate) failed_copies: FxHashMap<BlockId, Vec<NodeIx>>,
    /// Bytes promised to nodes by placements not yet reported.
    pub(crate) intents: FxHashMap<BlockId, Vec<(NodeIx, u64, Instant)>>,
    /// Balancer sources whose copy landed, until their replica is deleted.
    pub(crate) moving_out: FxHashMap<(NodeIx, BlockId), u64>,
    /// Writers' last lease renewal (leader).
    pub(crate) renewals: FxHashMap<u64, Instant>,
    /// Files under construction by holder.
    pub(crate) open_files: BTreeSet<(u64, InodeId)>,
    /// Per node: the previous page's upper bound in the running full report.
    pub(crate) report_cursor: FxHashMap<NodeIx, (u64, Option<BlockId>)>,
    /// Decommissioning nodes with a block still short, in the running pass.
    pub(crate) undrained: FxHashSet<NodeIx>,
    /// Truncate commands sent (leader): target block and node, when.
    pub(crate) truncating: FxHashMap<(BlockId, NodeIx), Instant>,
    /// When this leader first drove each truncation (by target block).
    pub(crate) truncate_since: FxHashMap<BlockId, Instant>,
    /// Events to publish.
    pub(crate) events: Vec<EventKind>,
    /// Block events published this round.
    pub(crate) block_events: usize,
    /// Per heavy node: where the balancer's search of its blocks resumes.
    pub(crate) balance_cursor: FxHashMap<NodeIx, BlockId>,
}

impl ClusterState {
    pub fn new(cfg: PolicyConfig) -> Self {
        ClusterState {
            cfg,
            nodes: Nodes::default(),
            blocks: BlockMap::default(),
            next_block: 0,
            leader: false,
            commands: FxHashMap::default(),
            deleting: FxHashMap::default(),
            delete_deadlines: Default::default(),
            delete_seq: 0,
            last_round: None,
            copies: FxHashMap::default(),
            failed_copies: FxHashMap::default(),
            intents: FxHashMap::default(),
            moving_out: FxHashMap::default(),
            renewals: FxHashMap::default(),
            open_files: BTreeSet::new(),
            report_cursor: FxHashMap::default(),
            undrained: FxHashSet::default(),
            truncating: FxHashMap::default(),
            truncate_since: FxHashMap::default(),
            events: Vec::new(),
            block_events: 0,
            balance_cursor: FxHashMap::default(),
        }
    }

    /// Takes the events to publish.
    pub fn take_events(&mut self) -> Vec<EventKind> {
        std::mem::take(&mut self.events)
    }

    pub fn is_leader(&self) -> bool {
        self.leader
    }

    // ------------------------------------------------------------------
    // Leadership
    // ------------------------------------------------------------------

    /// This node became leader: forget per-term state, and ask for a full
    /// report from every datanode before deleting anything.
    pub fn become_leader(&mut self, now: Instant) {
        self.leader = true;
        self.reset_leader_state();
        let ixs: Vec<NodeIx> = self.nodes.iter().map(|(i, _)| i).collect();
        for ix in ixs {
            self.nodes.get_mut(ix).reported_this_term = false;
        }
        // Writers get a full timeout from now: this leader has not heard
        // their renewals.
        let holders: Vec<u64> = self.open_files.iter().map(|(h, _)| *h).collect();
        for h in holders {
            self.renewals.insert(h, now);
        }
    }

    pub fn step_down(&mut self) {
        self.leader = false;
        self.reset_leader_state();
    }

    fn reset_leader_state(&mut self) {
        self.commands.clear();
        self.deleting.clear();
        self.delete_deadlines.clear();
        self.copies.clear();
        self.failed_copies.clear();
        self.moving_out.clear();
        self.renewals.clear();
        self.undrained.clear();
        self.truncating.clear();
        self.truncate_since.clear();
        let ixs: Vec<NodeIx> = self.nodes.iter().map(|(i, _)| i).collect();
        for ix in ixs {
            let n = self.nodes.get_mut(ix);
            n.deleting = 0;
            n.leaving = 0;
            n.streams = 0;
        }
    }

    // ------------------------------------------------------------------
    // Namespace changes
    // ------------------------------------------------------------------

    /// Rebuilds the block map from the namespace (after a restart or a
    /// snapshot install): replicas already reported are kept. The nodes'
    /// admin states are set first, so every block loaded is classified
    /// against them, and a block the namespace no longer has is removed:
    /// no rescan is needed.
    pub fn load_namespace(
        &mut self,
        blocks: impl Iterator<Item = BlockRef>,
        next_block: BlockId,
        admin: impl Iterator<Item = (DatanodeId, AdminState)>,
        open: Vec<(InodeId, u64)>,
        now: Instant,
    ) {
        self.next_block = next_block;
        for (id, state) in admin {
            let ix = self.nodes.ensure(&id, now);
            let n = self.nodes.get_mut(ix);
            n.registered = true;
            n.admin = state;
        }
        let known: Vec<BlockId> = self.blocks.range_from(0).map(|(id, _)| id).collect();
        let mut seen = FxHashSet::default();
        for b in blocks {
            seen.insert(b.block.id);
            self.blocks.load(
                b.block.id,
                b.block.gen,
                b.block.len,
                b.replication,
                b.committed,
                &self.nodes,
            );
        }
        for id in known {
            if !seen.contains(&id) && self.blocks.get(id).is_some_and(|e| e.known()) {
                self.block_removed(id);
            }
        }
        self.open_files = open.into_iter().map(|(f, h)| (h, f)).collect();
    }

    /// Feeds one namespace change.
    pub fn ns_event(&mut self, ev: &NsEvent, now: Instant) {
        match ev {
            NsEvent::BlockOpen {
                id,
                gen,
                replication,
                ..
            } => {
                self.next_block = self.next_block.max(id + 1);
                self.blocks.open(*id, *gen, *replication, &self.nodes);
            }
            NsEvent::BlockCommitted {
                id,
                gen,
                len,
                replication,
            } => {
                let grace = self.cfg.young_grace;
                self.blocks
                    .commit(*id, *gen, *len, *replication, grace, &self.nodes, now);
                self.purge_stale(*id);
            }
            NsEvent::BlockRemoved { id } => self.block_removed(*id),
            NsEvent::Replication { id, replication } => {
                self.blocks.set_replication(*id, *replication, &self.nodes)
            }
            NsEvent::LeaseOpened { holder, file } => {
                self.open_files.insert((*holder, *file));
                self.renewals.entry(*holder).or_insert(now);
            }
            NsEvent::LeaseClosed { holder, file } => {
                self.open_files.remove(&(*holder, *file));
            }
            NsEvent::AdminState { id, state } => {
                let ix = self.nodes.ensure(id, now);
                let n = self.nodes.get_mut(ix);
                n.registered = true;
                if n.admin != *state {
                    n.admin = *state;
                    if *state == AdminState::Decommissioned {
                        self.events.push(EventKind::DatanodeDecommissioned {
                            datanode: id.clone(),
                        });
                    }
                    self.blocks.request_rescan(ix);
                }
            }
        }
        self.drain_transitions();
    }

    /// A block left the namespace: the leader deletes its replicas.
    fn block_removed(&mut self, id: BlockId) {
        for (n, gen) in self.blocks.remove(id) {
            self.delete_replica(n, id, gen, 0);
        }
        self.copies.remove(&id);
        self.drop_intents(id);
    }

    /// Asks `node` to re-verify its replica of `block`.
    pub fn queue_verify(&mut self, node: &DatanodeId, block: BlockId) {
        let Some(ix) = self.nodes.ix(node) else {
            return;
        };
        let cmds = self.commands.entry(ix).or_default();
        match cmds.iter_mut().find_map(|c| match c {
            DatanodeCommand::Verify { blocks } => Some(blocks),
            _ => None,
        }) {
            Some(blocks) if !blocks.contains(&block) => blocks.push(block),
            Some(_) => {}
            None => cmds.push(DatanodeCommand::Verify {
                blocks: vec![block],
            }),
        }
    }

    /// Takes the commands waiting for `node`.
    pub fn take_commands(&mut self, node: &DatanodeId) -> Vec<DatanodeCommand> {
        self.nodes
            .ix(node)
            .and_then(|ix| self.commands.remove(&ix))
            .unwrap_or_default()
    }

    /// Puts commands back at the front of `node`'s queue (they could not
    /// be sent).
    pub fn requeue_commands(&mut self, node: &DatanodeId, mut cmds: Vec<DatanodeCommand>) {
        let Some(ix) = self.nodes.ix(node) else {
            return;
        };
        let q = self.commands.entry(ix).or_default();
        cmds.append(q);
        *q = cmds;
    }

    /// Whether commands wait for `node`.
    pub fn has_commands(&self, node: &DatanodeId) -> bool {
        self.nodes
            .ix(node)
            .is_some_and(|ix| self.commands.get(&ix).is_some_and(|c| !c.is_empty()))
    }

    /// Whether any command waiting for `node` destroys or moves data (the
    /// leader confirms its leadership before sending those).
    pub fn commands_are_destructive(cmds: &[DatanodeCommand]) -> bool {
        cmds.iter().any(|c| {
            matches!(
                c,
                DatanodeCommand::Delete { .. }
                    | DatanodeCommand::Replicate { .. }
                    | DatanodeCommand::Truncate { .. }
            )
        })
    }

    // ------------------------------------------------------------------
    // Promises
    // ------------------------------------------------------------------

    /// Records the bytes promised to `targets` for a new block.
    pub fn note_intent(
        &mut self,
        block: BlockId,
        targets: &[DatanodeId],
        bytes: u64,
        now: Instant,
    ) {
        for t in targets {
            let Some(ix) = self.nodes.ix(t) else { continue };
            self.nodes.get_mut(ix).promised += bytes;
            self.intents
                .entry(block)
                .or_default()
                .push((ix, bytes, now));
        }
    }

    fn drop_intents(&mut self, block: BlockId) {
        if let Some(v) = self.intents.remove(&block) {
            for (ix, bytes, _) in v {
                let n = self.nodes.get_mut(ix);
                n.promised = n.promised.saturating_sub(bytes);
            }
        }
    }

    /// Drops promises whose replica never showed up.
    pub(crate) fn expire_intents(&mut self, now: Instant) {
        let ttl = self.cfg.intent_ttl;
        let nodes = &mut self.nodes;
        self.intents.retain(|_, v| {
            v.retain(|(ix, bytes, t)| {
                let keep = now.saturating_duration_since(*t) < ttl;
                if !keep {
                    let n = nodes.get_mut(*ix);
                    n.promised = n.promised.saturating_sub(*bytes);
                }
                keep
            });
            !v.is_empty()
        });
    }

    // ------------------------------------------------------------------
    // Health transitions become events
    // ------------------------------------------------------------------

    pub(crate) fn drain_transitions(&mut self) {
        let moves = self.blocks.take_transitions();
        if !self.leader {
            return;
        }
        for (id, old, new, counted, repl) in moves {
            if self.block_events >= self.cfg.max_block_events {
                break;
            }
            let ev = match new {
                Class::Under if old != Class::Under => EventKind::BlockUnderReplicated {
                    block: id,
                    replicas: counted as u32,
                    replication: repl as u32,
                },
                Class::Missing | Class::Corrupt if old != new => EventKind::BlockMissing {
                    block: id,
                    corrupt: new == Class::Corrupt,
                },
                Class::Healthy | Class::Over
                    if matches!(
                        old,
                        Class::Under | Class::Young | Class::Missing | Class::Corrupt
                    ) =>
                {
                    EventKind::BlockHealthy { block: id }
                }
                _ => continue,
            };
            self.block_events += 1;
            self.events.push(ev);
        }
    }

    /// Liveness transitions: events, and the blocks of each node that
    /// changed are reclassified.
    pub(crate) fn update_liveness(&mut self, now: Instant) {
        let changed = self.nodes.update_liveness(&self.cfg.liveness, now);
        if changed.is_empty() {
            return;
        }
        for (ix, l) in changed {
            self.blocks.request_rescan(ix);
            if !self.leader {
                continue;
            }
            let datanode = self.nodes.get(ix).id.clone();
            self.events.push(match l {
                Liveness::Live => EventKind::DatanodeLive { datanode },
                Liveness::Stale => EventKind::DatanodeStale { datanode },
                Liveness::Dead => EventKind::DatanodeDead { datanode },
            });
        }
    }
}
