//! How the block map changes: namespace events (blocks opened, committed,
//! loaded, removed, their replication changed) and replica reports (added,
//! removed, quarantined, reconciled by range), each through
//! [`BlockMap::update`].

use super::*;

impl BlockMap {
    // ------------------------------------------------------------------
    // Namespace changes
    // ------------------------------------------------------------------

    /// A block was allocated or got a new generation.
    pub fn open(&mut self, id: BlockId, gen: u64, repl: u16, nodes: &Nodes) {
        self.set_gen(id, gen, nodes);
        self.update(id, nodes, |e| {
            e.flags = (e.flags | KNOWN) & !(COMMITTED | YOUNG);
            e.repl = repl;
        });
    }

    /// A block's length and digest are final; it gets `grace` before it
    /// may count as under-replicated.
    pub fn commit(
        &mut self,
        id: BlockId,
        gen: u64,
        len: u64,
        repl: u16,
        grace: Duration,
        nodes: &Nodes,
        now: Instant,
    ) {
        self.set_gen(id, gen, nodes);
        self.open_info_clear(id);
        self.update(id, nodes, |e| {
            e.flags |= KNOWN | COMMITTED | YOUNG;
            e.len = len;
            e.repl = repl;
        });
        self.young.push_back((now + grace, id));
    }

    /// A block known from a snapshot or a restart (no grace).
    pub fn load(
        &mut self,
        id: BlockId,
        gen: u64,
        len: u64,
        repl: u16,
        committed: bool,
        nodes: &Nodes,
    ) {
        self.set_gen(id, gen, nodes);
        self.update(id, nodes, |e| {
            e.flags = KNOWN | if committed { COMMITTED } else { 0 };
            e.len = len;
            e.repl = repl;
        });
    }

    /// Moves replicas between the good set and the odd set when a block's
    /// generation changes.
    fn set_gen(&mut self, id: BlockId, gen: u64, nodes: &Nodes) {
        let Some(e) = self.map.get(id) else {
            self.map.insert(
                id,
                Entry {
                    gen,
                    ..Entry::default()
                },
            );
            self.adopt_odd(id, gen, nodes);
            return;
        };
        if e.gen == gen {
            return;
        }
        let old_gen = e.gen;
        let old: Vec<NodeIx> = e.replicas.iter().collect();
        let len = e.len;
        self.update(id, nodes, |e| {
            e.gen = gen;
            e.replicas = Replicas::default();
        });
        for n in old {
            self.odd.insert((id, n), OddReplica { gen: old_gen, len });
        }
        self.adopt_odd(id, gen, nodes);
    }

    /// Odd replicas of `id` at `gen` become good ones.
    fn adopt_odd(&mut self, id: BlockId, gen: u64, nodes: &Nodes) {
        let matching: Vec<NodeIx> = self
            .odd
            .range((id, 0)..=(id, NodeIx::MAX))
            .filter(|(_, r)| r.gen == gen)
            .map(|((_, n), _)| *n)
            .collect();
        if matching.is_empty() {
            return;
        }
        for n in &matching {
            self.odd.remove(&(id, *n));
        }
        self.update(id, nodes, |e| {
            for n in matching {
                e.replicas.insert(n);
            }
        });
    }

    /// A block left the namespace; returns its replicas (good and odd, with
    /// generations) and quarantined copies: they are orphans now.
    pub fn remove(&mut self, id: BlockId) -> Vec<(NodeIx, u64)> {
        self.detach(id);
        let mut out = Vec::new();
        if let Some(e) = self.map.remove(id) {
            for n in e.replicas.iter() {
                self.index_remove(n, id);
            }
            out.extend(e.replicas.iter().map(|n| (n, e.gen)));
        }
        let odd: Vec<(NodeIx, u64)> = self
            .odd
            .range((id, 0)..=(id, NodeIx::MAX))
            .map(|((_, n), r)| (*n, r.gen))
            .collect();
        for (n, _) in &odd {
            self.odd.remove(&(id, *n));
        }
        out.extend(odd);
        if let Some(q) = self.quarantined.remove(&id) {
            out.extend(q);
        }
        self.open_info_clear(id);
        out
    }

    pub fn set_replication(&mut self, id: BlockId, repl: u16, nodes: &Nodes) {
        if self.map.contains_key(id) {
            self.update(id, nodes, |e| e.repl = repl);
        }
    }

    // ------------------------------------------------------------------
    // Replica changes
    // ------------------------------------------------------------------

    /// A node holds a finalized replica of `id` at `gen`. Returns where it
    /// went.
    pub fn add_replica(
        &mut self,
        id: BlockId,
        n: NodeIx,
        gen: u64,
        len: u64,
        sha: [u8; 32],
        nodes: &Nodes,
    ) -> Placed {
        self.unquarantine(id, n, gen, nodes);
        match self.map.get(id) {
            None => {
                self.map.insert(
                    id,
                    Entry {
                        gen,
                        len,
                        ..Entry::default()
                    },
                );
                self.update(id, nodes, |e| e.replicas.insert(n));
                Placed::Untracked
            }
            Some(e) if e.gen == gen => {
                let open = !e.committed();
                self.odd.remove(&(id, n));
                self.update(id, nodes, |e| e.replicas.insert(n));
                if open {
                    self.open_info.insert((id, n), (len, sha));
                }
                Placed::Good
            }
            Some(e) => {
                let stale = e.known() && gen < e.gen;
                let was_good = e.replicas.contains(n);
                if was_good {
                    self.update(id, nodes, |e| e.replicas.remove(n));
                }
                self.odd.insert((id, n), OddReplica { gen, len });
                if stale {
                    Placed::Stale
                } else {
                    Placed::Odd
                }
            }
        }
    }

    /// A node no longer holds its replica of `id` (any generation).
    pub fn remove_replica(&mut self, id: BlockId, n: NodeIx, nodes: &Nodes) {
        self.odd.remove(&(id, n));
        self.open_info.remove(&(id, n));
        if self.map.get(id).is_some_and(|e| e.replicas.contains(n)) {
            self.update(id, nodes, |e| e.replicas.remove(n));
        } else if self.map.get(id).is_some_and(|e| !e.known()) {
            self.reclassify(id, nodes);
        }
    }

    /// A node quarantined its replica of `id` at `gen` as corrupt.
    pub fn quarantine(&mut self, id: BlockId, n: NodeIx, gen: u64, nodes: &Nodes) {
        self.odd.remove(&(id, n));
        self.open_info.remove(&(id, n));
        let q = self.quarantined.entry(id).or_default();
        if !q.contains(&(n, gen)) {
            q.push((n, gen));
        }
        if self.map.contains_key(id) {
            self.update(id, nodes, |e| {
                e.replicas.remove(n);
            });
        }
    }

    /// A quarantined replica is gone (deleted, or replaced by a good one).
    fn unquarantine(&mut self, id: BlockId, n: NodeIx, gen: u64, nodes: &Nodes) {
        let Some(q) = self.quarantined.get_mut(&id) else {
            return;
        };
        let before = q.len();
        q.retain(|(x, g)| !(*x == n && *g <= gen));
        let empty = q.is_empty();
        if q.len() != before {
            if empty {
                self.quarantined.remove(&id);
            }
            self.reclassify(id, nodes);
        }
    }

    /// Forgets a quarantined replica the node deleted.
    pub fn forget_quarantined(&mut self, id: BlockId, n: NodeIx, nodes: &Nodes) {
        if let Some(q) = self.quarantined.get_mut(&id) {
            q.retain(|(x, _)| *x != n);
            if q.is_empty() {
                self.quarantined.remove(&id);
            }
            self.reclassify(id, nodes);
        }
    }

    /// Makes node `n`'s replicas with ids in `(after, upto]` exactly those
    /// in `keep` (the ids of one page of its full report, already added):
    /// anything else of `n` in that range is gone from the node. Costs the
    /// node's replicas in the range (its index), so a report split in pages
    /// is reconciled in bounded steps.
    pub fn reconcile_range(
        &mut self,
        n: NodeIx,
        after: Option<BlockId>,
        upto: BlockId,
        keep: &rustc_hash::FxHashSet<BlockId>,
        nodes: &Nodes,
    ) {
        let lo = after.map_or(0, |a| a.saturating_add(1));
        let gone: Vec<BlockId> = match after {
            Some(a) if a == BlockId::MAX => Vec::new(),
            _ => self
                .blocks_of(n, lo)
                .take_while(|id| *id <= upto)
                .filter(|id| !keep.contains(id))
                .collect(),
        };
        for id in gone {
            self.update(id, nodes, |e| e.replicas.remove(n));
        }
        let in_range = |id: &BlockId| after.is_none_or(|a| *id > a) && *id <= upto;
        self.odd
            .retain(|(id, x), _| !(*x == n && in_range(id) && !keep.contains(id)));
        self.open_info
            .retain(|(id, x), _| !(*x == n && in_range(id) && !keep.contains(id)));
    }

    /// Replaces the quarantined replicas node `n` holds with `now` (from
    /// its full report).
    pub fn set_quarantined_of(&mut self, n: NodeIx, now: &[(BlockId, u64)], nodes: &Nodes) {
        let had: Vec<BlockId> = self
            .quarantined
            .iter()
            .filter(|(_, v)| v.iter().any(|(x, _)| *x == n))
            .map(|(id, _)| *id)
            .collect();
        for id in had {
            if let Some(q) = self.quarantined.get_mut(&id) {
                q.retain(|(x, _)| *x != n);
                if q.is_empty() {
                    self.quarantined.remove(&id);
                }
            }
            self.reclassify(id, nodes);
        }
        for (id, gen) in now {
            self.quarantine(*id, n, *gen, nodes);
        }
    }

    /// Nodes holding a replica of `id` at `gen`: good ones when that is
    /// the block's generation, else the odd ones at it.
    pub fn holders_at(&self, id: BlockId, gen: u64) -> Vec<NodeIx> {
        let mut v: Vec<NodeIx> = match self.map.get(id) {
            Some(e) if e.gen == gen => e.replicas.iter().collect(),
            _ => Vec::new(),
        };
        v.extend(
            self.odd
                .range((id, 0)..=(id, NodeIx::MAX))
                .filter(|(_, r)| r.gen == gen)
                .map(|((_, n), _)| *n),
        );
        v
    }

    /// Length and digest node `n` reported for its replica of open block
    /// `id`.
    pub fn open_replica(&self, id: BlockId, n: NodeIx) -> Option<(u64, [u8; 32])> {
        self.open_info.get(&(id, n)).copied()
    }

    /// Replicas of `id` at a generation older than the block's.
    pub fn stale_of(&self, id: BlockId) -> Vec<(NodeIx, u64)> {
        let Some(e) = self.map.get(id).filter(|e| e.known()) else {
            return Vec::new();
        };
        self.odd
            .range((id, 0)..=(id, NodeIx::MAX))
            .filter(|(_, r)| r.gen < e.gen)
            .map(|((_, n), r)| (*n, r.gen))
            .collect()
    }

    fn open_info_clear(&mut self, id: BlockId) {
        let keys: Vec<(BlockId, NodeIx)> = self
            .open_info
            .range((id, 0)..=(id, NodeIx::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.open_info.remove(&k);
        }
    }
}
