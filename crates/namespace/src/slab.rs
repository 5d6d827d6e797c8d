//! The inode table: a slab of fixed-size pages shared copy-on-write.
//!
//! Inodes live in pages of [`PAGE`] slots, each page behind an `Arc`. Taking
//! a frozen copy of the whole table for a Raft snapshot clones the page list
//! (one reference count per page, microseconds for millions of inodes); the
//! first write to a page after that copies the page alone. So a snapshot is
//! serialized from a frozen version while applies go on, and memory grows
//! only by the pages written meanwhile.
//!
//! A slot's [`Inode::gen`] counts its reuses, so an [`InodeId`] (generation
//! and slot) names one inode forever even though slots are recycled.

use crate::inode::{Body, Inode};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

/// Slots per page. A page of inodes is about 100 KiB.
pub const PAGE: usize = 1024;
const PAGE_SHIFT: u32 = 10;

/// Index of an inode in the slab.
pub type Slot = u32;

/// The stable id of an inode: its slot's generation in the high 32 bits and
/// the slot in the low 32 bits. Shown to users as the file id.
pub type InodeId = u64;

/// Splits an inode id into generation and slot.
pub fn split_id(id: InodeId) -> (u32, Slot) {
    ((id >> 32) as u32, id as u32)
}

/// The inode table.
#[derive(Clone, Default)]
pub struct Slab {
    /// Pages of `PAGE` slots each (the last one may be shorter).
    pages: Vec<Arc<Vec<Inode>>>,
    /// Free slots, reused lowest first. The choice depends only on which
    /// slots are free, never on the order they were freed in: a member
    /// that loaded a snapshot (which records the free cells, not that
    /// order) must give the next inode the same id as a member that
    /// applied the whole log, since log operations and clients name inodes
    /// by id.
    free: BinaryHeap<Reverse<Slot>>,
    /// Slots holding an inode.
    live: u64,
}

impl Slab {
    /// The inode in `slot`, if the slot holds one.
    pub fn get(&self, slot: Slot) -> Option<&Inode> {
        let page = self.pages.get((slot >> PAGE_SHIFT) as usize)?;
        page.get(slot as usize & (PAGE - 1))
            .filter(|i| !matches!(i.body, Body::Free))
    }

    /// The inode in `slot`, which must hold one.
    ///
    /// # Panics
    /// If the slot is free or out of range: callers only pass slots they
    /// found in the tree, so that is a broken invariant.
    pub fn at(&self, slot: Slot) -> &Inode {
        self.get(slot)
            .unwrap_or_else(|| panic!("inode slot {slot} is not live"))
    }

    /// The inode in `slot` for writing; copies its page if a frozen copy
    /// still shares it.
    ///
    /// # Panics
    /// As [`at`](Self::at).
    pub fn at_mut(&mut self, slot: Slot) -> &mut Inode {
        let page = &mut self.pages[(slot >> PAGE_SHIFT) as usize];
        let ino = &mut Arc::make_mut(page)[slot as usize & (PAGE - 1)];
        assert!(
            !matches!(ino.body, Body::Free),
            "inode slot {slot} is not live"
        );
        ino
    }

    /// The id of the inode in `slot`.
    pub fn id_of(&self, slot: Slot) -> InodeId {
        ((self.at(slot).gen as u64) << 32) | slot as u64
    }

    /// The slot an id names, if that inode is still live.
    pub fn resolve_id(&self, id: InodeId) -> Option<Slot> {
        let (gen, slot) = split_id(id);
        self.get(slot).filter(|i| i.gen == gen).map(|_| slot)
    }

    /// Stores `ino` in a free slot (or a new one) and returns the slot. The
    /// slot's generation is bumped past the one of its previous occupant.
    pub fn alloc(&mut self, mut ino: Inode) -> Slot {
        self.live += 1;
        if let Some(Reverse(slot)) = self.free.pop() {
            let page = &mut self.pages[(slot >> PAGE_SHIFT) as usize];
            let cell = &mut Arc::make_mut(page)[slot as usize & (PAGE - 1)];
            ino.gen = cell.gen.wrapping_add(1);
            *cell = ino;
            return slot;
        }
        let last_full = self.pages.last().is_none_or(|p| p.len() == PAGE);
        if last_full {
            self.pages.push(Arc::new(Vec::with_capacity(PAGE)));
        }
        let n = self.pages.len() - 1;
        let page = Arc::make_mut(&mut self.pages[n]);
        ino.gen = 1;
        page.push(ino);
        ((n << PAGE_SHIFT) + page.len() - 1) as Slot
    }

    /// Frees `slot` and returns the inode it held.
    pub fn free(&mut self, slot: Slot) -> Inode {
        let page = &mut self.pages[(slot >> PAGE_SHIFT) as usize];
        let cell = &mut Arc::make_mut(page)[slot as usize & (PAGE - 1)];
        let gen = cell.gen;
        let old = std::mem::replace(cell, Inode::free(gen));
        assert!(!matches!(old.body, Body::Free), "slot {slot} freed twice");
        self.free.push(Reverse(slot));
        self.live -= 1;
        old
    }

    /// Live inodes.
    pub fn live(&self) -> u64 {
        self.live
    }

    /// One past the highest slot ever used.
    pub fn end(&self) -> Slot {
        match self.pages.last() {
            None => 0,
            Some(p) => (((self.pages.len() - 1) << PAGE_SHIFT) + p.len()) as Slot,
        }
    }

    /// Every slot with its cell, free ones included, in slot order.
    pub fn cells(&self) -> impl Iterator<Item = (Slot, &Inode)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .enumerate()
            .map(|(i, ino)| (i as Slot, ino))
    }

    /// Live inodes with their slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Slot, &Inode)> {
        self.cells().filter(|(_, i)| !matches!(i.body, Body::Free))
    }

    /// Places a cell loaded from a snapshot at `slot` (slots arrive in
    /// increasing order; gaps are free slots of generation 0).
    pub fn load_cell(&mut self, slot: Slot, ino: Inode) {
        while self.end() < slot {
            let s = self.end();
            self.push_cell(Inode::free(0));
            self.free.push(Reverse(s));
        }
        assert_eq!(self.end(), slot, "snapshot slots must increase");
        if matches!(ino.body, Body::Free) {
            self.free.push(Reverse(slot));
        } else {
            self.live += 1;
        }
        self.push_cell(ino);
    }

    fn push_cell(&mut self, ino: Inode) {
        if self.pages.last().is_none_or(|p| p.len() == PAGE) {
            self.pages.push(Arc::new(Vec::with_capacity(PAGE)));
        }
        let n = self.pages.len() - 1;
        Arc::make_mut(&mut self.pages[n]).push(ino);
    }

    /// Finishes a load (free slots are already ordered, lowest first).
    pub fn finish_load(&mut self) {}

    /// Approximate heap bytes held by the page arrays (not by names, block
    /// lists or child lists), for memory accounting.
    pub fn page_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<Inode>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inode::Inode;

    fn file(name: &str) -> Inode {
        Inode::new_file(name, 0, 0, 0, 0o644, 0, 3, 1 << 20)
    }

    #[test]
    fn slots_are_reused_with_a_new_generation() {
        let mut s = Slab::default();
        let a = s.alloc(file("a"));
        let b = s.alloc(file("b"));
        assert_eq!((a, b), (0, 1));
        let id_a = s.id_of(a);
        s.free(a);
        assert_eq!(s.resolve_id(id_a), None);
        let c = s.alloc(file("c"));
        assert_eq!(c, a);
        assert_ne!(s.id_of(c), id_a);
        assert_eq!(s.resolve_id(s.id_of(c)), Some(c));
        assert_eq!(s.live(), 2);
    }

    #[test]
    fn a_frozen_copy_keeps_its_pages_while_the_original_changes() {
        let mut s = Slab::default();
        for i in 0..(PAGE * 2 + 5) {
            s.alloc(file(&format!("f{i}")));
        }
        let frozen = s.clone();
        s.at_mut(3).name = "changed".into();
        s.free(PAGE as Slot + 1);
        assert_eq!(frozen.at(3).name, "f3");
        assert_eq!(s.at(3).name, "changed");
        assert!(frozen.get(PAGE as Slot + 1).is_some());
        assert!(s.get(PAGE as Slot + 1).is_none());
        // Untouched pages are still shared.
        assert!(Arc::ptr_eq(&frozen.pages[2], &s.pages[2]));
    }

    #[test]
    fn loading_cells_rebuilds_free_slots() {
        let mut s = Slab::default();
        s.load_cell(0, file("a"));
        s.load_cell(3, file("d"));
        s.finish_load();
        assert_eq!(s.live(), 2);
        assert_eq!(s.end(), 4);
        assert_eq!(s.alloc(file("x")), 1);
        assert_eq!(s.alloc(file("y")), 2);
        assert_eq!(s.alloc(file("z")), 4);
    }
}
