//! What datanodes tell the soft state: registration, contact, gossip and
//! usage, full-report pages and incremental reports, and what a reported
//! replica settles (promises kept, copies landed, balancer moves finished,
//! orphans and stale copies deleted).

use super::ClusterState;
use crate::blocks::Placed;
use crate::replicas::NodeIx;
use rustc_hash::FxHashSet;
use std::time::Instant;
use tdfs_namespace::AdminState;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId};

impl ClusterState {
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
        if n.admin != admin {
            n.admin = admin;
            self.blocks.request_rescan(ix);
        }
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
            n.set_gossip(down, now);
        }
    }

    /// Gossip's whole member table, level-triggered: each registered
    /// datanode takes the state its row says (`Some(true)`: down), so an
    /// event lost on the way changes nothing for long. A datanode gossip
    /// has never heard of (`None`) is judged by its calls instead, as
    /// without gossip: down since its last call once it is quiet for the
    /// stale period, up again when it calls; never live forever on silence.
    pub fn gossip_table(
        &mut self,
        mut down: impl FnMut(&DatanodeId) -> Option<bool>,
        now: Instant,
    ) {
        let stale_after = self.cfg.liveness.stale_after;
        let ixs: Vec<NodeIx> = self.nodes.iter().map(|(ix, _)| ix).collect();
        for ix in ixs {
            let n = self.nodes.get_mut(ix);
            if n.addr.is_empty() {
                continue;
            }
            match down(&n.id) {
                Some(down) => n.set_gossip(down, now),
                None => {
                    if now.saturating_duration_since(n.last_contact) >= stale_after {
                        n.gossip_down.get_or_insert(n.last_contact);
                    } else {
                        n.gossip_down = None;
                    }
                }
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
        self.deletion_done(ix, block);
    }

    fn replica_gone(&mut self, ix: NodeIx, block: BlockId) {
        self.deletion_done(ix, block);
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
}
