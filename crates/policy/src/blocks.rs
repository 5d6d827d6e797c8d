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

mod changes;
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
