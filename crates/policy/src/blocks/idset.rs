//! A node's block ids: an ordered set in sorted chunks, like
//! [`Table`](super::table::Table), but each id stored as a 4-byte offset
//! from its chunk's first id, so a replica in the per-node index costs
//! about 4 bytes instead of 8. A chunk's ids span at most `u32::MAX`; an id
//! further away starts a chunk of its own.

use super::table::CHUNK;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub(crate) struct IdSet {
    /// Chunks by their first id; each non-empty, ≤ `CHUNK`, sorted, its
    /// first offset 0.
    chunks: BTreeMap<u64, Vec<u32>>,
    len: usize,
}

/// `id - base` when it fits an offset.
fn offset(base: u64, id: u64) -> Option<u32> {
    id.checked_sub(base).and_then(|d| u32::try_from(d).ok())
}

/// Re-expresses a chunk's offsets against `base` (its new first id).
fn rebase(c: &mut [u32], old: u64, base: u64) {
    for o in c.iter_mut() {
        *o = (old + *o as u64 - base) as u32;
    }
}

impl IdSet {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `id`; false if it was there.
    pub(crate) fn insert(&mut self, id: u64) -> bool {
        let Some((&first, c)) = self.chunks.range_mut(..=id).next_back() else {
            return self.insert_front(id);
        };
        let Some(off) = offset(first, id) else {
            // Beyond this chunk's span (so after all its ids).
            self.chunks.insert(id, vec![0]);
            self.len += 1;
            return true;
        };
        match c.binary_search(&off) {
            Ok(_) => return false,
            Err(i) if c.len() < CHUNK => c.insert(i, off),
            Err(i) if i == CHUNK => {
                let mut n = Vec::with_capacity(CHUNK);
                n.push(0);
                self.chunks.insert(id, n);
            }
            Err(i) => {
                let mut right = c.split_off(CHUNK / 2);
                let right_first = first + right[0] as u64;
                if i <= CHUNK / 2 {
                    c.insert(i, off);
                } else {
                    right.insert(i - CHUNK / 2, (id - first) as u32);
                }
                rebase(&mut right, first, right_first);
                right.reserve_exact(CHUNK - right.len());
                self.chunks.insert(right_first, right);
            }
        }
        self.len += 1;
        true
    }

    /// `id` is below every chunk: the first chunk takes it under a new
    /// first id if it has room and the span allows, else a new chunk.
    fn insert_front(&mut self, id: u64) -> bool {
        self.len += 1;
        if let Some(e) = self.chunks.first_entry() {
            let old = *e.key();
            let c = e.get();
            let span_ok = offset(id, old + *c.last().expect("non-empty") as u64).is_some();
            if c.len() < CHUNK && span_ok {
                let mut c = e.remove();
                rebase(&mut c, old, id);
                c.insert(0, 0);
                self.chunks.insert(id, c);
                return true;
            }
        }
        let mut n = Vec::with_capacity(CHUNK);
        n.push(0);
        self.chunks.insert(id, n);
        true
    }

    /// Removes `id`; false if it was not there. A chunk left under a
    /// quarter full merges into its predecessor when that has room (and the
    /// span allows), else gives back its spare capacity.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        let Some((&first, c)) = self.chunks.range_mut(..=id).next_back() else {
            return false;
        };
        let Some(off) = offset(first, id) else {
            return false;
        };
        let Ok(i) = c.binary_search(&off) else {
            return false;
        };
        c.remove(i);
        self.len -= 1;
        if c.is_empty() {
            self.chunks.remove(&first);
            return true;
        }
        if i != 0 && c.len() > CHUNK / 4 {
            return true;
        }
        let mut c = self.chunks.remove(&first).expect("chunk");
        let base = first + c[0] as u64;
        rebase(&mut c, first, base);
        if c.len() <= CHUNK / 4 {
            if let Some((&pf, prev)) = self.chunks.range_mut(..base).next_back() {
                let last = base + *c.last().expect("non-empty") as u64;
                if prev.len() + c.len() <= CHUNK && offset(pf, last).is_some() {
                    prev.extend(c.iter().map(|o| (base + *o as u64 - pf) as u32));
                    return true;
                }
            }
            if c.capacity() > 4 * c.len() {
                c.shrink_to(2 * c.len());
            }
        }
        self.chunks.insert(base, c);
        true
    }

    /// Ids from `start` on, in order.
    pub(crate) fn range_from(&self, start: u64) -> impl Iterator<Item = u64> + '_ {
        let from = self
            .chunks
            .range(..=start)
            .next_back()
            .map_or(0, |(f, _)| *f);
        self.chunks
            .range(from..)
            .flat_map(|(f, c)| c.iter().map(move |o| f + *o as u64))
            .skip_while(move |id| *id < start)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.range_from(0)
    }

    /// Checks the chunk invariants (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut prev: Option<u64> = None;
        for (first, c) in &self.chunks {
            assert!(!c.is_empty() && c.len() <= CHUNK);
            assert_eq!(c[0], 0, "chunk {first}");
            assert!(c.windows(2).all(|w| w[0] < w[1]));
            assert!(prev.is_none_or(|p| p < *first));
            prev = Some(first + *c.last().unwrap() as u64);
        }
        assert_eq!(
            self.len,
            self.chunks.values().map(|c| c.len()).sum::<usize>()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Seeded random inserts (mostly appends, as block ids come, with
    /// jumps wider than a chunk's span), removes and range scans agree
    /// with a `BTreeSet` throughout, and the chunk invariants hold.
    #[test]
    fn agrees_with_a_btreeset() {
        for seed in [3u64, 11, 99, 4096] {
            println!("seed {seed}");
            let mut rnd = super::super::table::seeded(seed);
            let mut s = IdSet::default();
            let mut m = BTreeSet::new();
            let mut next = 1u64 << 40;
            let mut keys = Vec::new();
            for step in 0..60_000u64 {
                let k = match rnd(20) {
                    0..=9 => {
                        next += 1 + rnd(3);
                        next
                    }
                    10 => {
                        next += 1 + (1 << 32) + rnd(1 << 33);
                        next
                    }
                    // Below or among what exists, far below too.
                    11..=13 => rnd(next + 10),
                    _ if keys.is_empty() => next,
                    _ => keys[rnd(keys.len() as u64) as usize],
                };
                if rnd(3) == 0 {
                    assert_eq!(s.remove(k), m.remove(&k), "step {step} remove {k}");
                } else {
                    assert_eq!(s.insert(k), m.insert(k), "step {step} insert {k}");
                    keys.push(k);
                }
                assert_eq!(s.len(), m.len());
                if step % 500 == 0 {
                    s.check();
                    let a: Vec<u64> = s.range_from(k).take(700).collect();
                    let b: Vec<u64> = m.range(k..).take(700).copied().collect();
                    assert_eq!(a, b, "range from {k}");
                }
            }
            s.check();
            assert!(s.iter().eq(m.iter().copied()));
            // Remove nearly everything: small chunks merge or shrink.
            let all: Vec<u64> = m.iter().copied().collect();
            for (i, k) in all.iter().enumerate() {
                if i % 50 != 0 {
                    assert_eq!(s.remove(*k), m.remove(k));
                }
            }
            s.check();
            assert!(s.iter().eq(m.iter().copied()));
            let cap: usize = s.chunks.values().map(|c| c.capacity()).sum();
            assert!(cap <= 4 * s.len() + 2 * s.chunks.len(), "{cap} slots");
        }
    }

    #[test]
    fn appends_fill_chunks_at_four_bytes_an_id() {
        let mut s = IdSet::default();
        for k in 0..10 * CHUNK as u64 {
            assert!(s.insert(1000 + 3 * k));
        }
        assert_eq!(s.chunks.len(), 10);
        assert!(s
            .chunks
            .values()
            .all(|c| c.len() == CHUNK && c.capacity() == CHUNK));
        assert_eq!(std::mem::size_of::<u32>() * CHUNK, 2048);
    }
}
