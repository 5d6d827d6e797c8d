//! A small set of datanode indexes: inline for up to four replicas (the
//! common case), on the heap beyond. Ten million blocks keep their replica
//! lists in about 16 bytes each.

/// Index of a datanode in the node table.
pub type NodeIx = u16;

const INLINE: usize = 4;

/// The datanodes holding a good replica of one block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replicas {
    inline: [NodeIx; INLINE],
    len: u8,
    /// Beyond four; boxed so the common case costs one thin pointer.
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<NodeIx>>>,
}

impl Replicas {
    pub fn len(&self) -> usize {
        self.len as usize + self.more.as_ref().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, n: NodeIx) -> bool {
        self.iter().any(|x| x == n)
    }

    /// Adds `n`; false if it was there.
    pub fn insert(&mut self, n: NodeIx) -> bool {
        if self.contains(n) {
            return false;
        }
        if (self.len as usize) < INLINE {
            self.inline[self.len as usize] = n;
            self.len += 1;
        } else {
            self.more.get_or_insert_with(Default::default).push(n);
        }
        true
    }

    /// Removes `n`; false if it was not there.
    pub fn remove(&mut self, n: NodeIx) -> bool {
        if let Some(i) = self.inline[..self.len as usize]
            .iter()
            .position(|x| *x == n)
        {
            self.inline.copy_within(i + 1..self.len as usize, i);
            self.len -= 1;
            self.inline[self.len as usize] = 0;
            // Refill from the heap part so inline stays dense.
            if let Some(m) = self.more.as_mut() {
                if let Some(x) = m.pop() {
                    self.inline[self.len as usize] = x;
                    self.len += 1;
                }
                if m.is_empty() {
                    self.more = None;
                }
            }
            return true;
        }
        if let Some(m) = self.more.as_mut() {
            if let Some(i) = m.iter().position(|x| *x == n) {
                m.swap_remove(i);
                if m.is_empty() {
                    self.more = None;
                }
                return true;
            }
        }
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = NodeIx> + '_ {
        self.inline[..self.len as usize]
            .iter()
            .chain(self.more.iter().flat_map(|m| m.iter()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_heap() {
        let mut r = Replicas::default();
        for n in 0..7 {
            assert!(r.insert(n));
        }
        assert!(!r.insert(3));
        assert_eq!(r.len(), 7);
        assert!(r.remove(1));
        assert!(r.remove(6));
        assert!(!r.remove(6));
        let mut v: Vec<NodeIx> = r.iter().collect();
        v.sort();
        assert_eq!(v, vec![0, 2, 3, 4, 5]);
        for n in [0, 2, 3, 4, 5] {
            assert!(r.remove(n));
        }
        assert!(r.is_empty());
        assert_eq!(r, Replicas::default());
        assert!(std::mem::size_of::<Replicas>() <= 24);
    }
}
