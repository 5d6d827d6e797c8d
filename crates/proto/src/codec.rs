//! Frame codec: a frame is a 4-byte big-endian length followed by that many
//! bytes of bincode. Lengths are checked against a cap before anything is
//! allocated, and decoding is bounded by the same cap, so a hostile peer
//! cannot make a node allocate more than the frame it actually sent.

use crate::FsError;
use serde::{de::DeserializeOwned, Serialize};

/// Largest control frame accepted by default (requests, responses, Raft
/// messages). Bulk block data never travels as one frame.
pub const MAX_FRAME_LEN: usize = 32 << 20;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Parses a frame header and checks the announced length against `max`.
pub fn frame_len(header: [u8; HEADER_LEN], max: usize) -> Result<usize, FsError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FsError::Protocol(format!(
            "frame of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    Ok(len)
}

/// Encodes `value` into a complete frame (header included).
pub fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, FsError> {
    let mut buf = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(value, &mut buf, bincode::config::standard())
        .map_err(|e| FsError::Internal(format!("encode: {e}")))?;
    let len = buf.len() - HEADER_LEN;
    if len > u32::MAX as usize {
        return Err(FsError::Internal(format!(
            "frame of {len} bytes is too large"
        )));
    }
    buf[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Encodes a value without a frame header.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FsError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| FsError::Internal(format!("encode: {e}")))
}

/// Decodes a frame body (at most [`MAX_FRAME_LEN`] bytes); trailing bytes are
/// an error. A hostile length inside cannot make us allocate much: see
/// [`decode_bounded`].
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FsError> {
    if body.len() > MAX_FRAME_LEN {
        return Err(FsError::Protocol(format!(
            "message of {} bytes exceeds the limit of {MAX_FRAME_LEN} bytes",
            body.len()
        )));
    }
    decode_bounded(body, MAX_FRAME_LEN)
}

/// Decodes a large trusted-format value (a snapshot read from disk or from a
/// peer, a log entry); allocations are bounded as in [`decode`].
pub fn decode_large<T: DeserializeOwned>(body: &[u8]) -> Result<T, FsError> {
    decode_bounded(body, 1 << 36)
}

/// Decodes `body` with bincode's allocation limit set to the smallest of a
/// few bounds that is at least 32 times `body.len()` (at most 4 times that).
///
/// Over serde, bincode claims against its limit the in-memory size of every
/// primitive it decodes (at most 16 times its encoded size) and the bytes of
/// strings and byte vectors, which it allocates up front; a valid value
/// carries all of them in `body`, so it never claims more than 16 times
/// `body.len()`. A claimed
/// length beyond that fails before the allocation instead of allocating it
/// and then failing with "unexpected end": without this a 20-byte body could
/// make the decoder allocate the whole limit (once found by fuzzing: a log
/// entry announcing a 400 MB string). Other containers only reserve what
/// serde's cautious size hint allows (1 MiB each).
///
/// The limit never exceeds `cap`: [`decode`] passes [`MAX_FRAME_LEN`], the
/// limit it always had, so a large frame cannot claim more than before (a
/// 32 MiB frame claiming a 1 GiB string would otherwise get it allocated).
fn decode_bounded<T: DeserializeOwned>(body: &[u8], cap: usize) -> Result<T, FsError> {
    macro_rules! with_limit {
        ($limit:expr) => {
            finish(
                bincode::serde::decode_from_slice::<T, _>(
                    body,
                    bincode::config::standard().with_limit::<{ $limit }>(),
                ),
                body.len(),
            )
        };
    }
    // Bincode claims a primitive's in-memory size however it was encoded:
    // a varint `u64` of one byte claims 8, a `u128` 16. So a valid body
    // claims at most 16 times its length; allow 32.
    match body.len().saturating_mul(32).min(cap) {
        n if n <= 1 << 12 => with_limit!(1 << 12),
        n if n <= 1 << 14 => with_limit!(1 << 14),
        n if n <= 1 << 16 => with_limit!(1 << 16),
        n if n <= 1 << 18 => with_limit!(1 << 18),
        n if n <= 1 << 20 => with_limit!(1 << 20),
        n if n <= 1 << 22 => with_limit!(1 << 22),
        n if n <= 1 << 24 => with_limit!(1 << 24),
        n if n <= MAX_FRAME_LEN => with_limit!(MAX_FRAME_LEN),
        n if n <= 1 << 26 => with_limit!(1 << 26),
        n if n <= 1 << 28 => with_limit!(1 << 28),
        n if n <= 1 << 30 => with_limit!(1 << 30),
        n if n <= 1 << 32 => with_limit!(1 << 32),
        n if n <= 1 << 34 => with_limit!(1 << 34),
        _ => with_limit!(1 << 36),
    }
}

fn finish<T>(r: Result<(T, usize), bincode::error::DecodeError>, len: usize) -> Result<T, FsError> {
    let (value, used) = r.map_err(|e| FsError::Protocol(format!("malformed message: {e}")))?;
    let body_len = len;
    if used != body_len {
        return Err(FsError::Protocol(format!(
            "malformed message: {} trailing bytes",
            body_len - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaRequest, Request};

    #[test]
    fn round_trips_a_request() {
        let req = Request::Ping;
        let frame = encode_frame(&req).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap(), MAX_FRAME_LEN).unwrap();
        assert_eq!(len, frame.len() - 4);
        let back: Request = decode(&frame[4..]).unwrap();
        assert!(matches!(back, Request::Ping));
        let op = MetaRequest::GetFileInfo { path: "/a".into() };
        let b = encode(&op).unwrap();
        let back: MetaRequest = decode(&b).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn rejects_oversized_and_garbage() {
        assert!(frame_len([0xff, 0xff, 0xff, 0xff], MAX_FRAME_LEN).is_err());
        // Garbage must be an error, never a panic or a huge allocation.
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for n in 0..2000 {
            let len = (n % 64) + 1;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = decode::<Request>(&bytes);
        }
        // A vector announcing 2^60 elements in a few bytes.
        let evil = [4u8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode::<Request>(&evil).is_err());
    }

    /// Small integers encode in one byte but claim their full size against
    /// the decode limit: a message made mostly of them must still decode
    /// (once broke every read of a file of more than a few blocks).
    #[test]
    fn decodes_messages_dense_in_small_integers() {
        use crate::meta::{BlockInfo, DatanodeAddr, LocatedBlock, LocatedBlocks};
        use crate::DatanodeId;
        for n in [1usize, 16, 300, 5000] {
            let lbs = LocatedBlocks {
                file_length: 1,
                under_construction: false,
                blocks: (0..n)
                    .map(|i| LocatedBlock {
                        block: BlockInfo {
                            id: i as u64,
                            gen: 1,
                            len: 1,
                            sha256: None,
                        },
                        offset: i as u64,
                        locations: vec![
                            DatanodeAddr {
                                id: DatanodeId("a".into()),
                                addr: "b".into(),
                                http: None,
                            };
                            3
                        ],
                        token: None,
                    })
                    .collect(),
            };
            let b = encode(&lbs).unwrap();
            let back: LocatedBlocks = decode(&b).unwrap();
            assert_eq!(back, lbs, "{n} blocks");
        }
    }
}
