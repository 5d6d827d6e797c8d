//! Inputs found by the fuzz targets in `fuzz/` (see docs/fuzzing.md), kept
//! so that they stay fixed: each must be refused with an error, without a
//! panic and without a large allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use tdfs_proto::codec::{decode, decode_large};
use tdfs_proto::meta::{MetaRequest, Request};

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

/// `requests` target, oom: a log entry whose first operation's user name
/// claims 0x3f9a0a01 bytes (about 1 GB) in a 10-byte body. Under the old
/// 64 GiB limit of `decode_large` bincode allocated the claimed string
/// before finding the input too short. The same claim inside a request.
#[test]
fn a_string_claiming_a_gigabyte_allocates_nothing_like_it() {
    // Request::Meta { user: <0x3f9a0a01 bytes> .. }
    let request = b"\x01\xfc\x01\x0a\x9a\x3f";
    let (r, largest) = largest_allocation(|| decode_large::<Request>(request));
    assert!(r.is_err());
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
    let (r, largest) = largest_allocation(|| decode::<Request>(request));
    assert!(r.is_err());
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
    // MetaRequest::Mkdirs { path: <32 MiB - 1 bytes> .. }: under the frame
    // limit, so the old decoder allocated it for a 6-byte body.
    let mkdirs = b"\x00\xfc\xff\xff\xff\x01";
    let (r, largest) = largest_allocation(|| decode::<MetaRequest>(mkdirs));
    assert!(r.is_err());
    assert!(largest < 1 << 20, "allocated {largest} bytes at once");
}

/// The same claim at the end of a frame a few MiB long (the bound follows
/// the body's length, capped at the frame limit the decoder always had).
#[test]
fn a_large_frame_cannot_claim_more_than_the_frame_limit() {
    // Request::Meta { user: <60 MiB>, .. } with 2 MiB of the user name
    // present: within 32 times the body, but over the frame limit.
    let mut body = b"\x01\xfc\x00\x00\xc0\x03".to_vec();
    body.resize(body.len() + (2 << 20), 0);
    let (r, largest) = largest_allocation(|| decode::<Request>(&body));
    assert!(r.is_err());
    assert!(largest < 32 << 20, "allocated {largest} bytes at once");
}

/// Valid values of every size class still decode (the bound follows the
/// body length, and a valid value never claims more than its own length).
#[test]
fn long_strings_still_decode() {
    for n in [0usize, 1, 4000, 4096, 5000, 70_000, 1 << 20, (1 << 20) + 1] {
        let req = MetaRequest::GetFileInfo {
            path: "x".repeat(n),
        };
        let body = tdfs_proto::codec::encode(&req).unwrap();
        assert_eq!(decode::<MetaRequest>(&body).unwrap(), req, "length {n}");
        assert_eq!(decode_large::<MetaRequest>(&body).unwrap(), req);
    }
}
