//! The block map: every block the namespace has (and every block a
//! datanode reported), with its good replicas, classified by health and
//! kept in work queues incrementally.
//!
//! Every change to an entry goes through [`BlockMap::update`]: the entry's
//! old contribution (health counters, queue membership) is taken out, the
//! entry changes, it is classified again and its new contribution put in.
//! So the counters and queues always agree with the classes, and a policy
//! round works on what changed instead of walking every block. Beside the
//! entries, each node's good replicas are indexed (`by_node`, kept by the
//! same `update`), as HDFS keeps a block list per storage: a change of a
//! node (liveness, admin state) changes the class of the blocks on it, and
//! only those are reclassified, by a rescan of that node's index done in
//! bounded steps.

use crate::nodes::Nodes;
use crate::replicas::{NodeIx, Replicas};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};
use tdfs_proto::BlockId;

mod changes;
mod check;
mod idset;
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

/// A rescan of one node's blocks: a circular walk of its index that ends
/// when every block has been reclassified since the latest request.
#[derive(Clone, Copy, Debug)]
struct Rescan {
    /// The next block to reclassify.
    at: BlockId,
    /// Where the walk ends once it has wrapped around (`None`: at the end
    /// of the index).
    stop: Option<BlockId>,
    /// The walk still has to go past the end and start again from 0.
    wrap: bool,
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
    /// Per node (by index): the blocks it holds a good replica of, that
    /// is, whose entry's `replicas` names it. About 4 bytes a replica.
    by_node: Vec<idset::IdSet>,
    /// Rescans of nodes' blocks in progress, by node.
    rescans: BTreeMap<NodeIx, Rescan>,
    /// The node whose rescan is served first in the next step.
    rescan_turn: NodeIx,
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

    /// Changes an entry (creating it if absent) and reclassifies it; the
    /// per-node index follows its replicas.
    pub fn update<R>(&mut self, id: BlockId, nodes: &Nodes, f: impl FnOnce(&mut Entry) -> R) -> R {
        let old = self.map.get(id).map(|e| (e.class, e.replicas.clone()));
        self.detach(id);
        let e = self.map.get_or_default(id);
        let r = f(e);
        self.attach(id, nodes);
        let now = self.map.get(id);
        if let (Some((class, _)), Some(e)) = (&old, now) {
            if e.class != *class {
                self.transitions
                    .push((id, *class, e.class, e.counted, e.repl));
            }
        }
        let before = old.map(|(_, r)| r).unwrap_or_default();
        let after = now.map(|e| e.replicas.clone()).unwrap_or_default();
        if before != after {
            for n in before.iter().filter(|n| !after.contains(*n)) {
                self.index_remove(n, id);
            }
            for n in after.iter().filter(|n| !before.contains(*n)) {
                self.index_insert(n, id);
            }
        }
        r
    }

    fn index_insert(&mut self, n: NodeIx, id: BlockId) {
        let n = n as usize;
        if self.by_node.len() <= n {
            self.by_node.resize_with(n + 1, Default::default);
        }
        self.by_node[n].insert(id);
    }

    fn index_remove(&mut self, n: NodeIx, id: BlockId) {
        if let Some(t) = self.by_node.get_mut(n as usize) {
            t.remove(id);
        }
    }

    /// The blocks node `n` holds a good replica of, from `start` on, in id
    /// order.
    pub fn blocks_of(&self, n: NodeIx, start: BlockId) -> impl Iterator<Item = BlockId> + '_ {
        self.by_node
            .get(n as usize)
            .into_iter()
            .flat_map(move |t| t.range_from(start))
    }

    /// How many good replicas node `n` holds.
    pub fn replicas_on(&self, n: NodeIx) -> usize {
        self.by_node.get(n as usize).map_or(0, |t| t.len())
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

    /// Asks for node `n`'s blocks to be reclassified (its liveness or
    /// admin state changed). A walk already running goes on from where it
    /// is, around the end and back to this point, so each block is
    /// reclassified once after the latest request, not once more per request.
    pub fn request_rescan(&mut self, n: NodeIx) {
        self.rescans
            .entry(n)
            .and_modify(|r| {
                // From 0, a walk to the end is a whole circle.
                r.stop = (r.at != 0).then_some(r.at);
                r.wrap = r.at != 0;
            })
            .or_insert(Rescan {
                at: 0,
                stop: None,
                wrap: false,
            });
    }

    pub fn rescanning(&self) -> bool {
        !self.rescans.is_empty()
    }

    pub fn rescanning_node(&self, n: NodeIx) -> bool {
        self.rescans.contains_key(&n)
    }

    /// Reclassifies up to `budget` blocks of the running rescans, calling
    /// `seen` on each with the node whose rescan it is. The budget is
    /// shared evenly among the running rescans (what one leaves goes to the
    /// others), so a long one — a decommissioning node is rescanned again
    /// and again — cannot starve another. Returns the nodes whose rescan
    /// ended in this step: every block of theirs has been reclassified
    /// since the latest request.
    pub fn rescan_step(
        &mut self,
        budget: usize,
        nodes: &Nodes,
        seen: &mut dyn FnMut(NodeIx, BlockId, &Entry),
    ) -> Vec<NodeIx> {
        let mut left = budget;
        let mut ended = Vec::new();
        // Starting where the last step stopped: with more rescans than
        // blocks in the budget, each still gets its turn.
        let turn = self.rescan_turn;
        let running: Vec<NodeIx> = (self.rescans.range(turn..).map(|(n, _)| *n))
            .chain(self.rescans.range(..turn).map(|(n, _)| *n))
            .collect();
        let share = (budget / running.len().max(1)).max(1);
        for quota in [share, usize::MAX] {
            for n in &running {
                if left == 0 {
                    break;
                }
                if !self.rescans.contains_key(n) {
                    continue;
                }
                let (walked, done) = self.walk(*n, quota.min(left), nodes, seen);
                left -= walked;
                self.rescan_turn = n.wrapping_add(1);
                if done {
                    self.rescans.remove(n);
                    ended.push(*n);
                }
            }
        }
        ended
    }

    /// Walks up to `quota` blocks of node `n`'s rescan: how many, and
    /// whether it reached its end.
    fn walk(
        &mut self,
        n: NodeIx,
        quota: usize,
        nodes: &Nodes,
        seen: &mut dyn FnMut(NodeIx, BlockId, &Entry),
    ) -> (usize, bool) {
        let mut walked = 0;
        loop {
            let r = self.rescans[&n];
            let end = if r.wrap { None } else { r.stop };
            let ids: Vec<BlockId> = self
                .blocks_of(n, r.at)
                .take_while(|id| end.is_none_or(|s| *id < s))
                .take(quota - walked + 1)
                .collect();
            let now = ids.len().min(quota - walked);
            for id in &ids[..now] {
                self.reclassify(*id, nodes);
                if let Some(e) = self.map.get(*id) {
                    seen(n, *id, e);
                }
            }
            walked += now;
            let r = self.rescans.get_mut(&n).expect("running");
            if ids.len() > now {
                r.at = ids[now];
                return (walked, false);
            }
            if !r.wrap {
                return (walked, true);
            }
            r.at = 0;
            r.wrap = false;
        }
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
