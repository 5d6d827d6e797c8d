//! A directory's children: inode slots sorted by name, in chunks.
//!
//! Names are not stored here, only the slots (4 bytes per child); ordering
//! and lookups read names through the caller's `name_of`. Chunks hold at
//! most [`CHUNK`] children, so an insertion moves at most that many slots
//! however large the directory grows, and a listing page starting after a
//! name costs a binary search plus the page.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Children per chunk at most.
pub const CHUNK: usize = 512;
/// A chunk this small is merged into a neighbour when they fit together.
const MERGE_BELOW: usize = CHUNK / 8;

/// Where a name is, or would be inserted: chunk and index within it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pos {
    pub chunk: usize,
    pub index: usize,
}

/// Sorted child slots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Children {
    chunks: Vec<Vec<u32>>,
    len: u32,
}

impl Children {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Finds `name`: `Ok(pos)` where it is, `Err(pos)` where it would go.
    pub fn find<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> Result<Pos, Pos> {
        if self.chunks.is_empty() {
            return Err(Pos { chunk: 0, index: 0 });
        }
        // The first chunk whose last name is >= name.
        let c = self.chunks.partition_point(|ch| {
            let last = *ch.last().expect("chunks are never empty");
            name_of(last) < name
        });
        let chunk = c.min(self.chunks.len() - 1);
        let ch = &self.chunks[chunk];
        match ch.binary_search_by(|s| name_of(*s).cmp(name)) {
            Ok(index) => Ok(Pos { chunk, index }),
            Err(index) => Err(Pos { chunk, index }),
        }
    }

    /// The slot of child `name`.
    pub fn get<'a>(&self, name: &str, name_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        self.find(name, name_of)
            .ok()
            .map(|p| self.chunks[p.chunk][p.index])
    }

    /// Inserts `slot` at `pos` (from a failed [`find`](Self::find)).
    pub fn insert_at(&mut self, pos: Pos, slot: u32) {
        if self.chunks.is_empty() {
            self.chunks.push(vec![slot]);
            self.len = 1;
            return;
        }
        let ch = &mut self.chunks[pos.chunk];
        ch.insert(pos.index, slot);
        if ch.len() > CHUNK {
            let tail = ch.split_off(ch.len() / 2);
            self.chunks.insert(pos.chunk + 1, tail);
        }
        self.len += 1;
    }

    /// Removes and returns the child at `pos` (from a successful find).
    pub fn remove_at(&mut self, pos: Pos) -> u32 {
        let ch = &mut self.chunks[pos.chunk];
        let slot = ch.remove(pos.index);
        self.len -= 1;
        if ch.is_empty() {
            self.chunks.remove(pos.chunk);
        } else if ch.len() < MERGE_BELOW {
            self.merge_around(pos.chunk);
        }
        slot
    }

    fn merge_around(&mut self, c: usize) {
        let fits = |a: usize, b: usize, s: &Self| s.chunks[a].len() + s.chunks[b].len() <= CHUNK;
        if c + 1 < self.chunks.len() && fits(c, c + 1, self) {
            let next = self.chunks.remove(c + 1);
            self.chunks[c].extend(next);
        } else if c > 0 && fits(c - 1, c, self) {
            let cur = self.chunks.remove(c);
            self.chunks[c - 1].extend(cur);
        }
    }

    /// Children in name order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.chunks.iter().flatten().copied()
    }

    /// Children in name order starting at `pos`.
    pub fn iter_from(&self, pos: Pos) -> impl Iterator<Item = u32> + '_ {
        let first = self
            .chunks
            .get(pos.chunk)
            .map(|c| &c[pos.index.min(c.len())..])
            .unwrap_or(&[]);
        first
            .iter()
            .chain(self.chunks.iter().skip(pos.chunk + 1).flatten())
            .copied()
    }

    /// Children in name order after `name` (all of them for `None`).
    pub fn iter_after<'s, 'a>(
        &'s self,
        name: Option<&str>,
        name_of: impl Fn(u32) -> &'a str,
    ) -> impl Iterator<Item = u32> + 's {
        let pos = match name {
            None => Pos { chunk: 0, index: 0 },
            Some(n) => match self.find(n, name_of) {
                Ok(p) => Pos {
                    index: p.index + 1,
                    ..p
                },
                Err(p) => p,
            },
        };
        self.iter_from(pos)
    }

    /// How many children sort before `pos`.
    pub fn rank(&self, pos: Pos) -> usize {
        self.chunks[..pos.chunk.min(self.chunks.len())]
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            + pos.index
    }

    /// How many children sort after `name` (all for `None`).
    pub fn count_after<'a>(&self, name: Option<&str>, name_of: impl Fn(u32) -> &'a str) -> usize {
        let Some(n) = name else {
            return self.len();
        };
        let before = match self.find(n, name_of) {
            Ok(p) => self.rank(p) + 1,
            Err(p) => self.rank(p),
        };
        self.len() - before
    }

    /// Bytes of heap this list holds (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<u32>>()
            + self.chunks.iter().map(|c| c.capacity() * 4).sum::<usize>()
    }

    /// Compares two names as listings order them (bytewise).
    pub fn order(a: &str, b: &str) -> Ordering {
        a.cmp(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    struct Names(Vec<String>);
    impl Names {
        fn of<'a>(&'a self) -> impl Fn(u32) -> &'a str + 'a {
            |s| self.0[s as usize].as_str()
        }
    }

    #[test]
    fn stays_sorted_through_random_inserts_and_removes() {
        let seed: u64 = rand::random();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let names = Names((0..5000).map(|i| format!("n{:05}", i * 7 % 5000)).collect());
        let mut order: Vec<u32> = (0..5000).collect();
        order.shuffle(&mut rng);
        let mut c = Children::default();
        for &s in &order {
            let pos = c.find(&names.0[s as usize], names.of()).unwrap_err();
            c.insert_at(pos, s);
        }
        assert_eq!(c.len(), 5000);
        let listed: Vec<&str> = c.iter().map(|s| names.0[s as usize].as_str()).collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        assert!(c.chunks.iter().all(|ch| ch.len() <= CHUNK));
        // Remove a random half.
        let mut gone = std::collections::BTreeSet::new();
        for &s in order.iter().take(2500) {
            let name = &names.0[s as usize];
            let pos = c.find(name, names.of()).unwrap();
            assert_eq!(c.remove_at(pos), s);
            gone.insert(name.clone());
        }
        assert_eq!(c.len(), 2500);
        for (i, n) in names.0.iter().enumerate() {
            assert_eq!(c.get(n, names.of()).is_some(), !gone.contains(n), "{n}");
            if !gone.contains(n) {
                assert_eq!(c.get(n, names.of()), Some(i as u32));
            }
        }
        let after = rng.gen_range(0..5000usize);
        let start = format!("n{after:05}");
        let expect = sorted_remaining(&names, &gone, &start);
        let got: Vec<&str> = c
            .iter_after(Some(&start), names.of())
            .map(|s| names.0[s as usize].as_str())
            .collect();
        assert_eq!(got, expect);
        assert_eq!(c.count_after(Some(&start), names.of()), expect.len());
    }

    fn sorted_remaining<'a>(
        names: &'a Names,
        gone: &std::collections::BTreeSet<String>,
        after: &str,
    ) -> Vec<&'a str> {
        let mut v: Vec<&str> = names
            .0
            .iter()
            .filter(|n| !gone.contains(*n) && n.as_str() > after)
            .map(String::as_str)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn empty_and_single() {
        let names = Names(vec!["b".into(), "a".into()]);
        let mut c = Children::default();
        assert_eq!(c.get("a", names.of()), None);
        assert_eq!(c.iter_after(Some("a"), names.of()).count(), 0);
        c.insert_at(c.find("b", names.of()).unwrap_err(), 0);
        c.insert_at(c.find("a", names.of()).unwrap_err(), 1);
        assert_eq!(c.iter().collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(c.count_after(Some("a"), names.of()), 1);
        let p = c.find("a", names.of()).unwrap();
        c.remove_at(p);
        let p = c.find("b", names.of()).unwrap();
        c.remove_at(p);
        assert!(c.is_empty());
        assert!(c.chunks.is_empty());
    }
}
