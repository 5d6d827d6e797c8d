//! Inputs found by the fuzz targets in `fuzz/` (see docs/fuzzing.md), kept
//! so that they stay fixed: each must be refused with an error, without a
//! panic and without a large allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use tdfs_meta_raft::types::Entry;
use tdfs_proto::codec::decode_large;

/// Records the largest single allocation made by a thread while it is
/// armed (other tests run on other threads meanwhile).
struct Watch;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static LARGEST: AtomicUsize = AtomicUsize::new(0);

fn armed() -> bool {
    ARMED.try_with(|a| a.get()).unwrap_or(false)
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if armed() {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Runs `f` on this thread and returns the largest single allocation it
/// made. Calls are serialized by the lock, so the count is theirs.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    LARGEST.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    (r, LARGEST.load(Ordering::SeqCst))
}

/// `requests` target, oom (artifact minimized to 11 bytes; the first byte
/// picked "decode a Raft log entry", the rest is below): a log entry whose
/// first operation's user name claims 0x3f9a0a01 bytes, about 1 GB. The log
/// store decodes entries read back from disk with `decode_large`, whose
/// 64 GiB bincode limit let it allocate the claimed string before finding
/// the input too short; now the limit follows the input's length.
#[test]
fn a_log_entry_claiming_a_gigabyte_string_is_refused_without_allocating_it() {
    let entry = b"\x00\x00\x01\x01\x01\xfc\x01\x0a\x9a\x3f";
    let (r, largest) = largest_allocation(|| decode_large::<Entry>(entry));
    assert!(r.is_err());
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
}
