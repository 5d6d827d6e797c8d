//! Inputs found by the fuzz targets in `fuzz/` (see docs/fuzzing.md), kept
//! so that they stay fixed: each must be refused with an error, without a
//! panic and without a large allocation.

#[global_allocator]
static A: tdfs_testkit::alloc::Watch = tdfs_testkit::alloc::Watch;

use tdfs_proto::codec::{decode, decode_large};
use tdfs_proto::meta::{MetaRequest, Request};
use tdfs_testkit::alloc::largest_allocation;

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
