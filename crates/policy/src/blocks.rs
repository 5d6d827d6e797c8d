//! The block map: every block the namespace has (and every block a
//! datanode reported), with its good replicas, classified by health and
//! kept in work queues incrementally.
//!
//! Every change to an entry goes through [`BlockMap::update`]: the entry's
//! old contribution (health counters, queue membership) is taken out, the
//! entry changes, it is classified again and its new contribution put in.
//! So the counters and queues always agree with the classes, and a policy
//! round works on what changed instead of walking every block. A change of
//! a node (liveness, admin state) changes the class of every block on it;
//! those are reclassified by a rescan done in bounded steps.

use crate::nodes::Nodes;
use crate::replicas::{NodeIx, Replicas};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tdfs_proto::BlockId;

mod check;
mod table;

/// How healthy a block is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Class {
    /// Not in this node's namespace (yet): only its replicas are known.
    #[default]
    Untracked,
    /// Being written: length and digest are not final.
    Open,
    /// Fewer counted replicas than its factor, but written moments ago:
    /// the pipeline's other replicas are probably still reporting.
    Young,
    Healthy,
    Under,
    Over,
    /// No readable replica anywhere.
    Missing,
    /// Its only replicas are quarantined as corrupt.
    Corrupt,
}

/// Health counts over committed blocks, kept as classes change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Health {
    pub blocks: u64,
    pub under_replicated: u64,
    pub over_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
}

const KNOWN: u8 = 1;
const COMMITTED: u8 = 2;
const YOUNG: u8 = 4;

/// One block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub gen: u64,
    pub len: u64,
    pub repl: u16,
    flags: u8,
    class: Class,
    /// Counted replicas when last classified (the under queue's priority).
    counted: u8,
    /// Nodes holding a finalized, good replica at `gen`.
    pub replicas: Replicas,
}

impl Entry {
    pub fn known(&self) -> bool {
        self.flags & KNOWN != 0
    }

    pub fn committed(&self) -> bool {
        self.flags & COMMITTED != 0
    }

    pub fn class(&self) -> Class {
        self.class
    }
}

/// A replica reported at a generation other than its block's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OddReplica {
    pub gen: u64,
    pub len: u64,
}

/// The block map and its queues.
#[derive(Debug, Default)]
pub struct BlockMap {
    map: table::Table<Entry>,
    /// Replicas at another generation than their block's, by (block, node).
    odd: BTreeMap<(BlockId, NodeIx), OddReplica>,
    /// Quarantined (corrupt) replicas: node and generation, by block.
    quarantined: FxHashMap<BlockId, Vec<(NodeIx, u64)>>,
    /// Length and digest of finalized replicas of open blocks (lease
    /// recovery keeps the one the replicas agree on).
    open_info: BTreeMap<(BlockId, NodeIx), (u64, [u8; 32])>,
    /// Under-replicated blocks, fewest counted replicas first.
    under: BTreeSet<(u8, BlockId)>,
    /// Over-replicated blocks.
    over: BTreeSet<BlockId>,
    /// Missing or corrupt blocks.
    bad: BTreeSet<BlockId>,
    /// Blocks with quarantined replicas that may now be deleted (the
    /// block is at its factor on good replicas elsewhere).
    purgeable: BTreeSet<BlockId>,
    /// Young blocks in commit order, with the end of their grace.
    young: VecDeque<(Instant, BlockId)>,
    health: Health,
    /// The rescan's next block, while one runs.
    rescan_at: Option<BlockId>,
    /// Another rescan is wanted after the running one.
    rescan_again: bool,
    /// Class changes since the last [`take_transitions`](Self::take_transitions):
    /// block, old class, new class, counted replicas, replication.
    transitions: Vec<(BlockId, Class, Class, u8, u16)>,
}

impl BlockMap {
    pub fn get(&self, id: BlockId) -> Option<&Entry> {
        self.map.get(id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// Changes an entry (creating it if absent) and reclassifies it.
    pub fn update<R>(&mut self, id: BlockId, nodes: &Nodes, f: impl FnOnce(&mut Entry) -> R) -> R {
        let old = self.map.get(id).map(|e| e.class);
        self.detach(id);
        let e = self.map.get_or_default(id);
        let r = f(e);
        self.attach(id, nodes);
        if let (Some(old), Some(e)) = (old, self.map.get(id)) {
            if e.class != old {
                self.transitions.push((id, old, e.class, e.counted, e.repl));
            }
        }
        r
    }

    /// Takes the class changes recorded since the last call.
    pub fn take_transitions(&mut self) -> Vec<(BlockId, Class, Class, u8, u16)> {
        std::mem::take(&mut self.transitions)
    }

    /// Takes an entry's contribution out of the counters and queues.
    fn detach(&mut self, id: BlockId) {
        let Some(e) = self.map.get(id) else { return };
        let (class, counted) = (e.class, e.counted);
        let h = &mut self.health;
        if e.committed() && e.known() {
            h.blocks -= 1;
        }
        match class {
            Class::Under => {
                h.under_replicated -= 1;
                self.under.remove(&(counted, id));
            }
            Class::Young => h.under_replicated -= 1,
            Class::Over => {
                h.over_replicated -= 1;
                self.over.remove(&id);
            }
            Class::Missing => {
                h.missing -= 1;
                self.bad.remove(&id);
            }
            Class::Corrupt => {
                h.corrupt -= 1;
                self.bad.remove(&id);
            }
            Class::Untracked | Class::Open | Class::Healthy => {}
        }
        self.purgeable.remove(&id);
    }

    /// Classifies an entry and puts its contribution in; an entry that is
    /// neither known nor holds replicas is dropped.
    fn attach(&mut self, id: BlockId, nodes: &Nodes) {
        let quarantined = self.quarantined.get(&id).is_some_and(|q| !q.is_empty());
        let odd = self.odd_exists(id);
        let Some(e) = self.map.get_mut(id) else {
            return;
        };
        if !e.known() && e.replicas.is_empty() && !odd {
            self.map.remove(id);
            return;
        }
        let (class, counted) = classify(e, nodes, quarantined);
        e.class = class;
        e.counted = counted;
        let h = &mut self.health;
        if e.committed() && e.known() {
            h.blocks += 1;
        }
        match class {
            Class::Under => {
                h.under_replicated += 1;
                self.under.insert((counted, id));
            }
            Class::Young => h.under_replicated += 1,
            Class::Over => {
                h.over_replicated += 1;
                self.over.insert(id);
            }
            Class::Missing => {
                h.missing += 1;
                self.bad.insert(id);
            }
            Class::Corrupt => {
                h.corrupt += 1;
                self.bad.insert(id);
            }
            Class::Untracked | Class::Open | Class::Healthy => {}
        }
        if quarantined && matches!(class, Class::Healthy | Class::Over) {
            self.purgeable.insert(id);
        }
    }

    fn odd_exists(&self, id: BlockId) -> bool {
        self.odd.range((id, 0)..=(id, NodeIx::MAX)).next().is_some()
    }

    /// Reclassifies `id` against the nodes as they are now.
    pub fn reclassify(&mut self, id: BlockId, nodes: &Nodes) {
        if self.map.contains_key(id) {
            self.update(id, nodes, |_| ());
        }
    }

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
    /// entries in the range, so a report split in pages is reconciled in
    /// bounded steps.
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
                .map
                .range_from(lo)
                .take_while(|(id, _)| *id <= upto)
                .filter(|(id, e)| e.replicas.contains(n) && !keep.contains(id))
                .map(|(id, _)| id)
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

    // ------------------------------------------------------------------
    // What the policies read
    // ------------------------------------------------------------------

    /// Under-replicated blocks, most endangered first.
    pub fn under(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.under.iter().map(|(_, id)| *id)
    }

    pub fn over(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.over.iter().copied()
    }

    /// Missing and corrupt blocks.
    pub fn bad(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.bad.iter().copied()
    }

    /// Blocks whose quarantined replicas may be deleted now.
    pub fn purgeable(&self) -> impl Iterator<Item = BlockId> + '_ {
        self.purgeable.iter().copied()
    }

    pub fn quarantined(&self, id: BlockId) -> &[(NodeIx, u64)] {
        self.quarantined.get(&id).map_or(&[], |v| v.as_slice())
    }

    /// Odd replicas of `id`.
    pub fn odd_of(&self, id: BlockId) -> impl Iterator<Item = (NodeIx, OddReplica)> + '_ {
        self.odd
            .range((id, 0)..=(id, NodeIx::MAX))
            .map(|((_, n), r)| (*n, *r))
    }

    /// Finalized replicas of open block `id` with their length and digest.
    pub fn open_replicas(&self, id: BlockId) -> impl Iterator<Item = (NodeIx, u64, [u8; 32])> + '_ {
        self.open_info
            .range((id, 0)..=(id, NodeIx::MAX))
            .map(|((_, n), (l, s))| (*n, *l, *s))
    }

    /// Entries from `start` on, in id order (chunked scans).
    pub fn range_from(&self, start: BlockId) -> impl Iterator<Item = (BlockId, &Entry)> {
        self.map.range_from(start)
    }

    // ------------------------------------------------------------------
    // Time and rescans
    // ------------------------------------------------------------------

    /// Ends the grace of blocks committed long enough ago.
    pub fn expire_young(&mut self, now: Instant, nodes: &Nodes) {
        while let Some(&(until, id)) = self.young.front() {
            if until > now {
                break;
            }
            self.young.pop_front();
            if self.map.get(id).is_some_and(|e| e.flags & YOUNG != 0) {
                self.update(id, nodes, |e| e.flags &= !YOUNG);
            }
        }
    }

    /// Asks for every block to be reclassified (a node changed).
    pub fn request_rescan(&mut self) {
        if self.rescan_at.is_some() {
            self.rescan_again = true;
        } else {
            self.rescan_at = Some(0);
        }
    }

    pub fn rescanning(&self) -> bool {
        self.rescan_at.is_some()
    }

    /// Reclassifies up to `budget` blocks of the running rescan, calling
    /// `seen` on each; returns true when a pass ended in this step.
    pub fn rescan_step(
        &mut self,
        budget: usize,
        nodes: &Nodes,
        seen: &mut dyn FnMut(BlockId, &Entry),
    ) -> bool {
        let Some(start) = self.rescan_at else {
            return false;
        };
        let ids: Vec<BlockId> = self
            .map
            .range_from(start)
            .take(budget + 1)
            .map(|(id, _)| id)
            .collect();
        let (now, next) = if ids.len() > budget {
            (&ids[..budget], Some(ids[budget]))
        } else {
            (&ids[..], None)
        };
        for id in now {
            self.reclassify(*id, nodes);
            if let Some(e) = self.map.get(*id) {
                seen(*id, e);
            }
        }
        self.rescan_at = next;
        if next.is_none() {
            if std::mem::take(&mut self.rescan_again) {
                self.rescan_at = Some(0);
            }
            return true;
        }
        false
    }
}

/// Where [`BlockMap::add_replica`] put a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// A good replica at the block's generation.
    Good,
    /// The block is not in this node's namespace (yet).
    Untracked,
    /// An older generation than the block's: a stale copy.
    Stale,
    /// Another generation this node cannot judge yet.
    Odd,
}

/// The class of an entry against the nodes as they are, and its counted
/// replicas.
pub fn classify(e: &Entry, nodes: &Nodes, quarantined: bool) -> (Class, u8) {
    if !e.known() {
        return (Class::Untracked, 0);
    }
    if !e.committed() {
        return (Class::Open, 0);
    }
    let mut live = 0usize;
    let mut counted = 0usize;
    for n in e.replicas.iter() {
        let node = nodes.get(n);
        if node.can_source() {
            live += 1;
        }
        if node.counts() {
            counted += 1;
        }
    }
    let c = counted.min(u8::MAX as usize) as u8;
    let repl = e.repl as usize;
    let class = if live == 0 {
        if quarantined {
            Class::Corrupt
        } else {
            Class::Missing
        }
    } else if counted < repl {
        if e.flags & YOUNG != 0 {
            Class::Young
        } else {
            Class::Under
        }
    } else if counted > repl {
        Class::Over
    } else {
        Class::Healthy
    };
    (class, c)
}
