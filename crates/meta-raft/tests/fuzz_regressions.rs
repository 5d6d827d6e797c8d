//! Inputs found by the fuzz targets in `fuzz/` (see docs/fuzzing.md), kept
//! so that they stay fixed: each must be refused with an error, without a
//! panic and without a large allocation.

#[global_allocator]
static A: tdfs_testkit::alloc::Watch = tdfs_testkit::alloc::Watch;

use tdfs_meta_raft::types::Entry;
use tdfs_proto::codec::decode_large;
use tdfs_testkit::alloc::largest_allocation;

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
