//! Global allocators for the memory figures and tests (a binary has one
//! global allocator, so each test binary installs the one it needs):
//!
//! - [`Counting`]: live heap bytes and their peak since the last
//!   [`reset_peak`]. A binary installs it with `#[global_allocator] static
//!   A: tdfs_testkit::alloc::Counting = tdfs_testkit::alloc::Counting;`.
//! - [`Watch`]: the largest single allocation a thread makes while armed
//!   ([`largest_allocation`]), for tests that must show an input is refused
//!   without a large allocation (the `fuzz_regressions` tests). Installed
//!   with `#[global_allocator] static A: tdfs_testkit::alloc::Watch =
//!   tdfs_testkit::alloc::Watch;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; only counters move.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        grew(n);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

/// Heap bytes live now.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The most heap bytes live at once since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak at what is live now; returns that.
pub fn reset_peak() -> usize {
    let now = live();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// Records the largest single allocation made by a thread while it is
/// armed (other tests run on other threads meanwhile).
pub struct Watch;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn armed() -> bool {
    ARMED.try_with(|a| a.get()).unwrap_or(false)
}

// SAFETY: every call is forwarded to `System` unchanged; only a counter moves.
unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` on this thread and returns the largest single allocation it
/// made (counted only where [`Watch`] is the global allocator). Calls are
/// serialized by the lock, so the count is theirs.
pub fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, LARGEST.load(Ordering::SeqCst))
}

#[cfg(test)]
mod tests {
    use super::*;

    // This crate's unit tests run under `Watch`.
    #[global_allocator]
    static A: Watch = Watch;

    #[test]
    fn the_watch_sees_an_armed_threads_largest_allocation_only() {
        let (v, largest) = largest_allocation(|| vec![1u8; 3 << 20]);
        assert!(largest >= 3 << 20, "saw {largest} bytes");
        let (_, largest) = largest_allocation(|| drop(v));
        assert!(largest < 1 << 20, "saw {largest} bytes for a free");
    }
}
