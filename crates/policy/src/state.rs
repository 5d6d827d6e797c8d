//! The cluster's soft state on one metadata node: the nodes, the block map
//! and, on the leader, what it has promised, asked for and is waiting on.
//! Fed by namespace changes (as the state machine applies them), datanode
//! reports and gossip; read by placement, reads and the policy round.
//! Nothing here is replicated; a restarted node rebuilds it from the
//! namespace and the datanodes' reports.

use crate::blocks::{BlockMap, Class, Placed};
use crate::liveness::{Liveness, LivenessConfig};
use crate::nodes::Nodes;
use crate::replicas::NodeIx;
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tdfs_namespace::{AdminState, BlockRef, InodeId, NsEvent};
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{DatanodeCommand, DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId};

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
    /// Blocks reclassified per round while a rescan runs.
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
    /// Deletions asked for and not yet reported done, with their bytes.
    pub(crate) deleting: FxHashMap<(NodeIx, BlockId), u64>,
    /// Copies in flight.
    pub(crate) copies: FxHashMap<BlockId, Copy>,
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
    /// Where the balancer's search for candidate blocks resumes.
    pub(crate) balance_cursor: BlockId,
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
            copies: FxHashMap::default(),
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
            balance_cursor: 0,
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
        self.copies.clear();
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
    /// snapshot install): replicas already reported are kept.
    pub fn load_namespace(
        &mut self,
        blocks: impl Iterator<Item = BlockRef>,
        next_block: BlockId,
        admin: impl Iterator<Item = (DatanodeId, AdminState)>,
        open: Vec<(InodeId, u64)>,
        now: Instant,
    ) {
        self.next_block = next_block;
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
        for (id, state) in admin {
            let ix = self.nodes.ensure(&id, now);
            let n = self.nodes.get_mut(ix);
            n.registered = true;
            n.admin = state;
        }
        self.open_files = open.into_iter().map(|(f, h)| (h, f)).collect();
        self.blocks.request_rescan();
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
                    self.blocks.request_rescan();
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

    // ------------------------------------------------------------------
    // Datanodes
    // ------------------------------------------------------------------

    /// A datanode announced itself.
    pub fn register(
        &mut self,
        id: &DatanodeId,
        addr: &str,
        http: Option<&str>,
        hdfs: Option<&str>,
        now: Instant,
    ) {
        let ix = self.nodes.ensure(id, now);
        let n = self.nodes.get_mut(ix);
        let new = n.addr.is_empty();
        n.addr = addr.to_string();
        n.http = http.map(str::to_string);
        n.hdfs = hdfs.map(str::to_string);
        n.last_contact = now;
        // A datanode that registers is up, whatever gossip last said.
        n.gossip_down = None;
        if new {
            self.events.push(EventKind::DatanodeRegistered {
                datanode: id.clone(),
            });
        }
    }

    /// The registry (replicated) has this datanode.
    pub fn set_registered(&mut self, id: &DatanodeId, admin: AdminState, now: Instant) {
        let ix = self.nodes.ensure(id, now);
        let n = self.nodes.get_mut(ix);
        n.registered = true;
        n.admin = admin;
    }

    /// Any call from a datanode.
    pub fn contact(&mut self, id: &DatanodeId, now: Instant) -> bool {
        match self.nodes.by_id_mut(id) {
            Some(n) if !n.addr.is_empty() => {
                n.last_contact = now;
                true
            }
            _ => false,
        }
    }

    /// Gossip says `id` is down (`true`) or up again (`false`).
    pub fn gossip(&mut self, id: &DatanodeId, down: bool, now: Instant) {
        if let Some(n) = self.nodes.by_id_mut(id) {
            if down {
                n.gossip_down.get_or_insert(now);
            } else {
                n.gossip_down = None;
                n.last_contact = now;
            }
        }
    }

    /// Usage spread by gossip.
    pub fn usage(&mut self, id: &DatanodeId, usage: DatanodeUsage) {
        if let Some(n) = self.nodes.by_id_mut(id) {
            n.usage = usage;
        }
    }

    /// One page of a datanode's full block report: `blocks` are its
    /// finalized replicas with ids in `(previous page's hi, hi]`, sorted.
    /// Page 0 starts a report; the last page has `hi = u64::MAX`. Returns
    /// false if the datanode is unknown here (it must register first).
    #[allow(clippy::too_many_arguments)]
    pub fn report_page(
        &mut self,
        id: &DatanodeId,
        report: u64,
        page: u32,
        hi: BlockId,
        blocks: &[ReplicaReport],
        quarantined: &[(BlockId, u64)],
        last: bool,
        now: Instant,
    ) -> bool {
        let Some(ix) = self.nodes.ix(id) else {
            return false;
        };
        if !self.contact(id, now) {
            return false;
        }
        let after = match self.report_cursor.get(&ix) {
            _ if page == 0 => None,
            Some((r, cur)) if *r == report => *cur,
            // A page of another report or out of order: start over.
            _ => return false,
        };
        let mut keep = FxHashSet::default();
        for b in blocks {
            keep.insert(b.id);
            self.add_replica(ix, b);
        }
        self.blocks
            .reconcile_range(ix, after, hi, &keep, &self.nodes);
        if page == 0 {
            self.blocks.set_quarantined_of(ix, quarantined, &self.nodes);
        } else {
            for (b, g) in quarantined {
                self.blocks.quarantine(*b, ix, *g, &self.nodes);
            }
        }
        if last {
            self.report_cursor.remove(&ix);
            let n = self.nodes.get_mut(ix);
            n.reported_this_term = true;
            // Deletions asked of it before are void: it reported what it has.
            self.deleting.retain(|(x, _), _| *x != ix);
            self.nodes.get_mut(ix).deleting = 0;
        } else {
            self.report_cursor.insert(ix, (report, Some(hi)));
        }
        self.drain_transitions();
        true
    }

    /// An incremental report. Returns false if the datanode is unknown here.
    pub fn incremental(
        &mut self,
        id: &DatanodeId,
        added: &[ReplicaReport],
        removed: &[(BlockId, u64)],
        corrupt: &[(BlockId, u64)],
        now: Instant,
    ) -> bool {
        let Some(ix) = self.nodes.ix(id) else {
            return false;
        };
        if !self.contact(id, now) {
            return false;
        }
        for b in added {
            self.add_replica(ix, b);
        }
        for (b, _gen) in removed {
            self.blocks.remove_replica(*b, ix, &self.nodes);
            self.blocks.forget_quarantined(*b, ix, &self.nodes);
            self.replica_gone(ix, *b);
        }
        for (b, gen) in corrupt {
            self.blocks.quarantine(*b, ix, *gen, &self.nodes);
        }
        self.drain_transitions();
        true
    }

    fn add_replica(&mut self, ix: NodeIx, b: &ReplicaReport) {
        let placed = self
            .blocks
            .add_replica(b.id, ix, b.gen, b.len, b.sha256, &self.nodes);
        self.deleting_done_if_newer(ix, b.id, b.gen);
        // Promised bytes and copies to this node are fulfilled.
        if let Some(v) = self.intents.get_mut(&b.id) {
            let n = self.nodes.get_mut(ix);
            v.retain(|(x, bytes, _)| {
                if *x == ix {
                    n.promised = n.promised.saturating_sub(*bytes);
                }
                *x != ix
            });
            if v.is_empty() {
                self.intents.remove(&b.id);
            }
        }
        self.copy_landed(ix, b.id);
        // A replica just reported is fresh: an orphan or stale copy can be
        // deleted whether or not the node's full report is complete.
        match placed {
            Placed::Stale | Placed::Good => self.purge_stale(b.id),
            // Only a block this namespace allocated and later dropped is an
            // orphan. A block beyond its counter was allocated by a newer
            // leader this node has not heard from (it may be a deposed
            // leader that does not know it yet): never delete it.
            Placed::Untracked if b.id < self.next_block => {
                self.blocks.remove_replica(b.id, ix, &self.nodes);
                self.delete_replica(ix, b.id, b.gen, b.len)
            }
            _ => {}
        }
    }

    /// Deletes the replicas of `id` older than its generation once the
    /// block is committed and a good replica of it is held: while a block
    /// is open, an older generation may be all there is (a truncate cuts
    /// its new generation from it), so it stays.
    pub(crate) fn purge_stale(&mut self, id: BlockId) {
        let Some(e) = self.blocks.get(id) else { return };
        if !e.committed() || e.replicas.is_empty() {
            return;
        }
        let len = e.len;
        for (n, gen) in self.blocks.stale_of(id) {
            self.delete_replica(n, id, gen, len);
        }
    }

    /// A deletion aimed at an older generation is moot once the node
    /// reports a newer one.
    fn deleting_done_if_newer(&mut self, ix: NodeIx, block: BlockId, _gen: u64) {
        if let Some(bytes) = self.deleting.remove(&(ix, block)) {
            let n = self.nodes.get_mut(ix);
            n.deleting = n.deleting.saturating_sub(bytes);
        }
    }

    fn replica_gone(&mut self, ix: NodeIx, block: BlockId) {
        if let Some(bytes) = self.deleting.remove(&(ix, block)) {
            let n = self.nodes.get_mut(ix);
            n.deleting = n.deleting.saturating_sub(bytes);
        }
        if let Some(bytes) = self.moving_out.remove(&(ix, block)) {
            let n = self.nodes.get_mut(ix);
            n.leaving = n.leaving.saturating_sub(bytes);
        }
    }

    fn copy_landed(&mut self, ix: NodeIx, block: BlockId) {
        let Some(c) = self.copies.get_mut(&block) else {
            return;
        };
        if !c.targets.contains(&ix) {
            return;
        }
        c.targets.retain(|t| *t != ix);
        self.nodes.get_mut(ix).streams = self.nodes.get(ix).streams.saturating_sub(1);
        self.events.push(EventKind::CopyDone {
            block,
            datanode: self.nodes.get(ix).id.clone(),
        });
        if c.targets.is_empty() {
            let c = self.copies.remove(&block).expect("present");
            let src = self.nodes.get_mut(c.source);
            src.streams = src.streams.saturating_sub(1);
            if c.is_move {
                self.finish_move(c.source, block, c.bytes);
            }
        }
    }

    /// A balancer move's copy landed: the source's replica goes (HDFS's
    /// delete hint), unless the block would fall below its factor, and the
    /// source keeps its leaving credit until the deletion is done.
    fn finish_move(&mut self, source: NodeIx, block: BlockId, bytes: u64) {
        let Some(e) = self.blocks.get(block) else {
            return;
        };
        let others = e
            .replicas
            .iter()
            .filter(|n| *n != source && self.nodes.get(*n).counts())
            .count();
        if others < e.repl as usize || !e.replicas.contains(source) {
            return;
        }
        let gen = e.gen;
        self.nodes.get_mut(source).leaving += bytes;
        self.moving_out.insert((source, block), bytes);
        self.delete_replica(source, block, gen, 0);
    }

    /// Queues deletion of `n`'s replica of `block` up to generation `gen`
    /// (leader only). Safe whatever the node reported: it only ever names
    /// a copy the namespace no longer needs (a dropped block, an older
    /// generation), and the datanode deletes nothing newer than `gen`.
    pub(crate) fn delete_replica(&mut self, n: NodeIx, block: BlockId, gen: u64, bytes: u64) {
        if !self.leader {
            return;
        }
        if self.deleting.contains_key(&(n, block)) {
            return;
        }
        self.deleting.insert((n, block), bytes);
        self.nodes.get_mut(n).deleting += bytes;
        let cmds = self.commands.entry(n).or_default();
        match cmds.iter_mut().find_map(|c| match c {
            DatanodeCommand::Delete { blocks } => Some(blocks),
            _ => None,
        }) {
            Some(blocks) => blocks.push((block, gen)),
            None => cmds.push(DatanodeCommand::Delete {
                blocks: vec![(block, gen)],
            }),
        }
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

    /// Liveness transitions: events, and every block is reclassified.
    pub(crate) fn update_liveness(&mut self, now: Instant) {
        let changed = self.nodes.update_liveness(&self.cfg.liveness, now);
        if changed.is_empty() {
            return;
        }
        for (ix, l) in changed {
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
        self.blocks.request_rescan();
    }
}
