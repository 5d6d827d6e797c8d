//! The block map's ordered table: block id → entry, in sorted chunks.
//!
//! Block ids are handed out in increasing order, so nearly every insert
//! lands at the end. A `BTreeMap` split on append leaves its nodes a bit
//! over half full (about 105 bytes per 56-byte entry); here the last chunk
//! fills to [`CHUNK`] entries and a new one starts, so an entry costs its
//! own size. An insert in the middle of a full chunk splits it in two; a
//! chunk that falls under a quarter full merges into a neighbour or gives
//! back its spare capacity, so deletes cannot leave mostly-empty chunks.

use std::collections::BTreeMap;

/// Entries per chunk at most.
pub(crate) const CHUNK: usize = 512;

#[derive(Debug)]
pub(crate) struct Table<V> {
    /// Chunks by their first key; each sorted, non-empty, ≤ `CHUNK`.
    chunks: BTreeMap<u64, Vec<(u64, V)>>,
    len: usize,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Table {
            chunks: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V> Table<V> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first key of the chunk `k` would be in.
    fn chunk_of(&self, k: u64) -> Option<u64> {
        self.chunks.range(..=k).next_back().map(|(f, _)| *f)
    }

    pub(crate) fn get(&self, k: u64) -> Option<&V> {
        let c = self.chunks.range(..=k).next_back()?.1;
        let i = c.binary_search_by_key(&k, |(key, _)| *key).ok()?;
        Some(&c[i].1)
    }

    pub(crate) fn get_mut(&mut self, k: u64) -> Option<&mut V> {
        let c = self.chunks.range_mut(..=k).next_back()?.1;
        let i = c.binary_search_by_key(&k, |(key, _)| *key).ok()?;
        Some(&mut c[i].1)
    }

    pub(crate) fn contains_key(&self, k: u64) -> bool {
        self.get(k).is_some()
    }

    /// Inserts or replaces; the value replaced, if any.
    pub(crate) fn insert(&mut self, k: u64, v: V) -> Option<V> {
        let Some(first) = self.chunk_of(k) else {
            // Before every chunk (or none): the first chunk takes it, if
            // it has room, under a new first key.
            return self.insert_front(k, v);
        };
        let c = self.chunks.get_mut(&first).expect("chunk");
        match c.binary_search_by_key(&k, |(key, _)| *key) {
            Ok(i) => return Some(std::mem::replace(&mut c[i].1, v)),
            Err(i) if c.len() < CHUNK => c.insert(i, (k, v)),
            Err(i) if i == CHUNK => {
                // Past the end of a full chunk: a new one, which later
                // appends fill.
                let mut n = Vec::with_capacity(CHUNK);
                n.push((k, v));
                self.chunks.insert(k, n);
            }
            Err(i) => {
                let mut right = c.split_off(CHUNK / 2);
                if i <= CHUNK / 2 {
                    c.insert(i, (k, v));
                } else {
                    right.insert(i - CHUNK / 2, (k, v));
                }
                right.reserve_exact(CHUNK - right.len());
                self.chunks.insert(right[0].0, right);
            }
        }
        self.len += 1;
        None
    }

    fn insert_front(&mut self, k: u64, v: V) -> Option<V> {
        self.len += 1;
        match self.chunks.first_entry() {
            Some(e) if e.get().len() < CHUNK => {
                let mut c = e.remove();
                c.insert(0, (k, v));
                self.chunks.insert(k, c);
            }
            _ => {
                let mut n = Vec::with_capacity(CHUNK);
                n.push((k, v));
                self.chunks.insert(k, n);
            }
        }
        None
    }

    /// The value at `k`, inserting `V::default()` first if absent.
    pub(crate) fn get_or_default(&mut self, k: u64) -> &mut V
    where
        V: Default,
    {
        if !self.contains_key(k) {
            self.insert(k, V::default());
        }
        self.get_mut(k).expect("just inserted")
    }

    pub(crate) fn remove(&mut self, k: u64) -> Option<V> {
        let first = self.chunk_of(k)?;
        let c = self.chunks.get_mut(&first).expect("chunk");
        let i = c.binary_search_by_key(&k, |(key, _)| *key).ok()?;
        let (_, v) = c.remove(i);
        self.len -= 1;
        if c.is_empty() {
            self.chunks.remove(&first);
        } else if i == 0 || c.len() <= CHUNK / 4 {
            let mut c = self.chunks.remove(&first).expect("chunk");
            if c.len() <= CHUNK / 4 {
                // Merge into the previous chunk if it has room, else keep
                // it alone with its spare capacity returned.
                if let Some(prev) = self.chunks.range_mut(..first).next_back() {
                    if prev.1.len() + c.len() <= CHUNK {
                        prev.1.append(&mut c);
                        return Some(v);
                    }
                }
                if c.capacity() > 4 * c.len() {
                    c.shrink_to(2 * c.len());
                }
            }
            self.chunks.insert(c[0].0, c);
        }
        Some(v)
    }

    /// Entries with keys from `start` on, in key order.
    pub(crate) fn range_from(&self, start: u64) -> impl Iterator<Item = (u64, &V)> {
        let from = self.chunk_of(start).unwrap_or(0);
        self.chunks
            .range(from..)
            .flat_map(|(_, c)| c.iter())
            .skip_while(move |(k, _)| *k < start)
            .map(|(k, v)| (*k, v))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.range_from(0)
    }
}

/// A seeded xorshift: `rnd(n)` is in `0..n` (the chunked tables' tests).
#[cfg(test)]
pub(crate) fn seeded(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded random inserts (mostly appends, as block ids come), removes,
    /// replacements and range scans agree with a `BTreeMap` throughout, and
    /// the chunk invariants hold.
    #[test]
    fn agrees_with_a_btreemap() {
        for seed in [1u64, 7, 42, 2024] {
            println!("seed {seed}");
            let mut rnd = seeded(seed);
            let mut t = Table::default();
            let mut m = BTreeMap::new();
            let mut next = 1_000u64;
            for step in 0..60_000u64 {
                match rnd(10) {
                    0..=4 => {
                        next += 1 + rnd(3);
                        assert_eq!(t.insert(next, step), m.insert(next, step));
                    }
                    5 | 6 => {
                        let k = rnd(next + 10);
                        assert_eq!(t.insert(k, step), m.insert(k, step));
                    }
                    7 | 8 => {
                        let k = rnd(next + 10);
                        assert_eq!(t.remove(k), m.remove(&k));
                    }
                    _ => {
                        let k = rnd(next + 10);
                        assert_eq!(t.get(k), m.get(&k));
                        *t.get_or_default(k) += 1;
                        *m.entry(k).or_default() += 1;
                        let a: Vec<_> = t.range_from(k).take(600).collect();
                        let b: Vec<_> = m.range(k..).take(600).map(|(k, v)| (*k, v)).collect();
                        assert_eq!(a, b, "range from {k}");
                    }
                }
                assert_eq!(t.len(), m.len());
            }
            assert!(t
                .iter()
                .map(|(k, v)| (k, *v))
                .eq(m.iter().map(|(k, v)| (*k, *v))));
            let mut prev = None;
            for (first, c) in &t.chunks {
                assert!(!c.is_empty() && c.len() <= CHUNK);
                assert_eq!(c[0].0, *first);
                assert!(c.windows(2).all(|w| w[0].0 < w[1].0));
                assert!(prev.is_none_or(|p| p < *first));
                prev = c.last().map(|(k, _)| *k);
            }
            // Remove nearly everything: small chunks merge or shrink.
            let keys: Vec<u64> = m.keys().copied().collect();
            for k in keys.iter().filter(|k| *k % 50 != 0) {
                assert_eq!(t.remove(*k), m.remove(k));
            }
            let cap: usize = t.chunks.values().map(|c| c.capacity()).sum();
            assert!(
                cap <= 4 * t.len() + 2 * t.chunks.len(),
                "{cap} slots for {} entries",
                t.len()
            );
        }
    }

    #[test]
    fn appends_fill_chunks() {
        let mut t = Table::default();
        for k in 0..10 * CHUNK as u64 {
            t.insert(k, ());
        }
        assert_eq!(t.chunks.len(), 10);
        assert!(t
            .chunks
            .values()
            .all(|c| c.len() == CHUNK && c.capacity() == CHUNK));
    }
}
