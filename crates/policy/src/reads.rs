//! What reads and reports ask of the soft state.

use crate::blocks::Class;
use crate::liveness::Liveness;
use crate::placement::{choose_targets, Candidate};
use crate::state::ClusterState;
use std::time::Instant;
use tdfs_namespace::AdminState;
use tdfs_proto::meta::{DatanodeAddr, DatanodeReport};
use tdfs_proto::{BlockId, DatanodeId};

/// Health of one block as fsck shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHealth {
    /// Good replicas on nodes that are not dead.
    pub live: usize,
    pub class: Class,
}

impl ClusterState {
    /// Good replicas of `block` at `gen` on nodes that are not dead, live
    /// ones first, in a random order among equals so readers spread.
    pub fn locations(
        &self,
        block: BlockId,
        gen: u64,
        rand: &mut dyn FnMut() -> u64,
    ) -> Vec<DatanodeAddr> {
        let Some(e) = self.blocks.get(block).filter(|e| e.gen == gen) else {
            return Vec::new();
        };
        let mut reps: Vec<(bool, u64, DatanodeAddr)> = e
            .replicas
            .iter()
            .map(|n| self.nodes.get(n))
            .filter(|n| n.can_source() && !n.addr.is_empty())
            .map(|n| (n.liveness != Liveness::Live, rand(), n.addr()))
            .collect();
        reps.sort_by_key(|(stale, r, _)| (*stale, *r));
        reps.into_iter().map(|(_, _, a)| a).collect()
    }

    /// The datanodes holding a replica of `block` at `gen` (any liveness).
    pub fn holders(&self, block: BlockId) -> Vec<DatanodeId> {
        let Some(e) = self.blocks.get(block) else {
            return Vec::new();
        };
        e.replicas
            .iter()
            .map(|n| self.nodes.get(n).id.clone())
            .collect()
    }

    /// Nodes holding a quarantined replica of `block`.
    pub fn corrupt_holders(&self, block: BlockId) -> Vec<DatanodeId> {
        self.blocks
            .quarantined(block)
            .iter()
            .map(|(n, _)| self.nodes.get(*n).id.clone())
            .collect()
    }

    /// Whether some datanode reported a finalized replica of `block` at `gen`.
    pub fn reported(&self, block: BlockId, gen: u64) -> bool {
        self.blocks
            .get(block)
            .is_some_and(|e| e.gen == gen && !e.replicas.is_empty())
            || self.blocks.odd_of(block).any(|(_, r)| r.gen == gen)
    }

    /// Health of `block` for fsck.
    pub fn block_health(&self, block: BlockId) -> BlockHealth {
        match self.blocks.get(block) {
            None => BlockHealth {
                live: 0,
                class: Class::Missing,
            },
            Some(e) => BlockHealth {
                live: e
                    .replicas
                    .iter()
                    .filter(|n| self.nodes.get(*n).can_source())
                    .count(),
                class: e.class(),
            },
        }
    }

    /// Picks up to `n` datanodes for a new replica of `block_size` bytes:
    /// live, in normal admin state, not excluded, by available space net of
    /// what is already promised to them. `rand01` gives uniform numbers in
    /// [0, 1) (seeded in tests).
    pub fn place(
        &self,
        n: usize,
        block_size: u64,
        exclude: &[DatanodeId],
        rand01: &mut dyn FnMut() -> f64,
    ) -> Vec<DatanodeAddr> {
        let candidates: Vec<Candidate> = self
            .nodes
            .iter()
            .filter(|(_, d)| d.registered && d.can_target() && !d.addr.is_empty())
            .filter(|(_, d)| !exclude.contains(&d.id))
            .map(|(_, d)| Candidate {
                id: d.id.clone(),
                available: d.available(),
            })
            .collect();
        choose_targets(&candidates, n, block_size, rand01)
            .into_iter()
            .filter_map(|id| self.nodes.by_id(&id).map(|d| d.addr()))
            .collect()
    }

    /// Addresses of known datanodes (a pipeline's kept nodes).
    pub fn addrs_of(&self, ids: &[DatanodeId]) -> Vec<DatanodeAddr> {
        ids.iter()
            .filter_map(|id| self.nodes.by_id(id))
            .filter(|n| !n.addr.is_empty())
            .map(|n| n.addr())
            .collect()
    }

    /// The datanode table for `dfsadmin -report`.
    pub fn report(&self, now: Instant) -> Vec<DatanodeReport> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.registered)
            .map(|(_, n)| DatanodeReport {
                id: n.id.clone(),
                addr: n.addr.clone(),
                http: n.http.clone(),
                hdfs: n.hdfs.clone(),
                state: crate::liveness::judge(
                    &self.cfg.liveness,
                    n.gossip_down,
                    n.last_contact,
                    now,
                )
                .as_str()
                .into(),
                admin_state: n.admin.as_str().into(),
                capacity: n.usage.capacity,
                used: n.usage.used,
                remaining: n
                    .usage
                    .capacity
                    .saturating_sub(n.usage.used + n.usage.pending),
                blocks: n.usage.blocks,
                last_contact_ms: now.saturating_duration_since(n.last_contact).as_millis() as u64,
            })
            .collect()
    }

    /// Datanodes by liveness: (live, stale, dead).
    pub fn liveness_counts(&self) -> (u64, u64, u64) {
        let mut c = (0, 0, 0);
        for (_, n) in self.nodes.iter().filter(|(_, n)| n.registered) {
            match n.liveness {
                Liveness::Live => c.0 += 1,
                Liveness::Stale => c.1 += 1,
                Liveness::Dead => c.2 += 1,
            }
        }
        c
    }

    /// Copies in flight (re-replication and balancer moves).
    pub fn copies_in_flight(&self) -> usize {
        self.copies.len()
    }

    /// The liveness of `id` judged now (not as of the last round).
    pub fn liveness_of(&self, id: &DatanodeId, now: Instant) -> Option<Liveness> {
        self.nodes
            .by_id(id)
            .map(|n| crate::liveness::judge(&self.cfg.liveness, n.gossip_down, n.last_contact, now))
    }

    /// Copies in flight that are balancer moves.
    pub fn moves_in_flight(&self) -> usize {
        self.copies.values().filter(|c| c.is_move).count()
    }

    /// The admin state of a datanode as mirrored here.
    pub fn admin_of(&self, id: &DatanodeId) -> Option<AdminState> {
        self.nodes.by_id(id).map(|n| n.admin)
    }
}
