//! The datanodes as a metadata node knows them: addresses, usage from
//! gossip, liveness, admin state (mirrored from the namespace), and what
//! the leader has promised to or asked of each.

use crate::liveness::{judge, Liveness, LivenessConfig};
use crate::replicas::NodeIx;
use std::collections::BTreeMap;
use std::time::Instant;
use tdfs_namespace::AdminState;
use tdfs_proto::meta::{DatanodeAddr, DatanodeUsage};
use tdfs_proto::DatanodeId;

/// One datanode.
#[derive(Clone, Debug)]
pub struct Node {
    pub id: DatanodeId,
    pub addr: String,
    pub http: Option<String>,
    pub hdfs: Option<String>,
    /// Capacity, used and pending bytes, from gossip (or reports).
    pub usage: DatanodeUsage,
    /// The last call from the node (registration, report, poll).
    pub last_contact: Instant,
    /// When gossip declared the node down (cleared when it is back up).
    pub gossip_down: Option<Instant>,
    /// A full block report arrived since this metadata node became leader.
    pub reported_this_term: bool,
    /// Registered in the replicated registry (the leader recorded it).
    pub registered: bool,
    pub admin: AdminState,
    /// Liveness as of the last evaluation; a change triggers a rescan of its blocks.
    pub liveness: Liveness,
    /// Bytes promised to new replicas on this node not yet reported.
    pub promised: u64,
    /// Bytes of replicas queued for deletion here (they are about to go).
    pub deleting: u64,
    /// Bytes of balancer moves away from here whose source replica is not
    /// deleted yet.
    pub leaving: u64,
    /// Copies this node takes part in (source or target).
    pub streams: usize,
}

impl Node {
    /// Gossip says the node is down (`true`) or up: down keeps the first
    /// time it was said, up clears it and counts as contact.
    pub fn set_gossip(&mut self, down: bool, now: Instant) {
        if down {
            self.gossip_down.get_or_insert(now);
        } else {
            self.gossip_down = None;
            self.last_contact = now;
        }
    }

    /// Bytes the node will hold once what is in flight settles: what it
    /// holds, plus what is being or will be written (a write in progress is
    /// both reserved on the node and promised by the leader: counted once),
    /// minus what is about to be deleted or moved away.
    pub fn load(&self) -> u64 {
        (self.usage.used + self.usage.pending.max(self.promised))
            .saturating_sub(self.deleting)
            .saturating_sub(self.leaving)
    }

    /// Free bytes for a new replica.
    pub fn available(&self) -> u64 {
        self.usage.capacity.saturating_sub(self.load())
    }

    /// Its replicas count toward the replication factor.
    pub fn counts(&self) -> bool {
        self.liveness != Liveness::Dead && self.admin == AdminState::Normal
    }

    /// May receive a new replica.
    pub fn can_target(&self) -> bool {
        self.liveness == Liveness::Live && self.admin == AdminState::Normal
    }

    /// May serve a replica (a read or a copy).
    pub fn can_source(&self) -> bool {
        self.liveness != Liveness::Dead
    }

    pub fn addr(&self) -> DatanodeAddr {
        DatanodeAddr {
            id: self.id.clone(),
            addr: self.addr.clone(),
            http: self.http.clone(),
        }
    }
}

/// Every datanode, by a stable index (never reused while the process runs).
#[derive(Clone, Debug, Default)]
pub struct Nodes {
    by_id: BTreeMap<DatanodeId, NodeIx>,
    nodes: Vec<Node>,
}

impl Nodes {
    pub fn ix(&self, id: &DatanodeId) -> Option<NodeIx> {
        self.by_id.get(id).copied()
    }

    pub fn get(&self, ix: NodeIx) -> &Node {
        &self.nodes[ix as usize]
    }

    pub fn get_mut(&mut self, ix: NodeIx) -> &mut Node {
        &mut self.nodes[ix as usize]
    }

    pub fn by_id(&self, id: &DatanodeId) -> Option<&Node> {
        self.ix(id).map(|i| self.get(i))
    }

    pub fn by_id_mut(&mut self, id: &DatanodeId) -> Option<&mut Node> {
        let ix = self.ix(id)?;
        Some(self.get_mut(ix))
    }

    /// The index of `id`, adding a node (unregistered, live) if new.
    pub fn ensure(&mut self, id: &DatanodeId, now: Instant) -> NodeIx {
        if let Some(ix) = self.ix(id) {
            return ix;
        }
        let ix = self.nodes.len() as NodeIx;
        self.nodes.push(Node {
            id: id.clone(),
            addr: String::new(),
            http: None,
            hdfs: None,
            usage: DatanodeUsage::default(),
            last_contact: now,
            gossip_down: None,
            reported_this_term: false,
            registered: false,
            admin: AdminState::Normal,
            liveness: Liveness::Live,
            promised: 0,
            deleting: 0,
            leaving: 0,
            streams: 0,
        });
        self.by_id.insert(id.clone(), ix);
        ix
    }

    /// Nodes in id order.
    pub fn iter(&self) -> impl Iterator<Item = (NodeIx, &Node)> {
        self.by_id
            .values()
            .map(|ix| (*ix, &self.nodes[*ix as usize]))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Re-evaluates every node's liveness; returns those that changed,
    /// with their new liveness.
    pub fn update_liveness(
        &mut self,
        cfg: &LivenessConfig,
        now: Instant,
    ) -> Vec<(NodeIx, Liveness)> {
        let mut changed = Vec::new();
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let l = judge(cfg, n.gossip_down, n.last_contact, now);
            if l != n.liveness {
                n.liveness = l;
                changed.push((i as NodeIx, l));
            }
        }
        changed
    }

    /// Nodes whose replicas count.
    pub fn counting(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.registered && n.counts())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(used: u64, pending: u64, promised: u64, deleting: u64, leaving: u64) -> Node {
        let mut ns = Nodes::default();
        let ix = ns.ensure(&DatanodeId("a".into()), Instant::now());
        let mut n = ns.get(ix).clone();
        n.usage = DatanodeUsage {
            capacity: 1000,
            used,
            pending,
            blocks: 0,
        };
        n.promised = promised;
        n.deleting = deleting;
        n.leaving = leaving;
        n
    }

    /// Each accounting rule of the predicted load; removing any of them
    /// makes its row fail.
    #[test]
    fn load_accounting_table() {
        // (used, pending, promised, deleting, leaving, expected load)
        let rows = [
            // A write in progress: reserved on the node and promised by the
            // leader, counted once.
            (100, 50, 50, 0, 0, 150),
            // Promised but not started yet.
            (100, 0, 64, 0, 0, 164),
            // A copy from another writer the leader did not promise.
            (100, 30, 0, 0, 0, 130),
            // Queued deletions are about to free their bytes.
            (500, 0, 0, 200, 0, 300),
            // A balancer source keeps its leaving credit until its replica goes.
            (500, 0, 0, 0, 64, 436),
            (10, 0, 0, 50, 0, 0),
        ];
        for (i, (u, p, pr, d, l, want)) in rows.into_iter().enumerate() {
            assert_eq!(node(u, p, pr, d, l).load(), want, "row {i}");
        }
        assert_eq!(node(100, 50, 50, 0, 0).available(), 850);
    }
}
