//! tdfs block access tokens in Hadoop's `TokenProto`, so a Hadoop client
//! carries them from the metadata node to the datanode unchanged (it never
//! looks inside): `identifier` holds the token's fields, `password` its
//! MAC, `kind` is HDFS's `HDFS_BLOCK_TOKEN`. A cluster without a key hands
//! out empty tokens, as an HDFS cluster without block tokens does.

use crate::proto::common::TokenProto;
use tdfs_proto::meta::{AccessMode, BlockToken};

/// `kind` of a block token, as HDFS names it.
pub const BLOCK_TOKEN_KIND: &str = "HDFS_BLOCK_TOKEN";
/// First bytes of a tdfs token identifier (format version 1).
const TAG: &[u8; 5] = b"tdfs1";
/// Longest user name a token carries (the metadata node's own limit).
const MAX_USER: usize = 255;

/// The empty token of a cluster without block tokens.
pub fn empty() -> TokenProto {
    TokenProto::default()
}

/// Encodes a tdfs block token: identifier =
/// `"tdfs1" | block u64 | gen u64 | mode u8 | expires_ms u64 | user`
/// (big-endian), password = the MAC.
pub fn encode(t: &BlockToken) -> TokenProto {
    let mut id = Vec::with_capacity(TAG.len() + 25 + t.user.len());
    id.extend_from_slice(TAG);
    id.extend_from_slice(&t.block.to_be_bytes());
    id.extend_from_slice(&t.gen.to_be_bytes());
    id.push(match t.mode {
        AccessMode::Read => 0,
        AccessMode::Write => 1,
    });
    id.extend_from_slice(&t.expires_ms.to_be_bytes());
    id.extend_from_slice(t.user.as_bytes());
    TokenProto {
        identifier: id,
        password: t.mac.to_vec(),
        kind: BLOCK_TOKEN_KIND.to_string(),
        service: String::new(),
    }
}

/// Decodes what [`encode`] wrote; `None` for an empty token or one that is
/// not a tdfs block token (the datanode then refuses the operation on a
/// keyed cluster).
pub fn decode(t: &TokenProto) -> Option<BlockToken> {
    let id = t.identifier.as_slice();
    let rest = id.strip_prefix(TAG.as_slice())?;
    if rest.len() < 25 || rest.len() > 25 + MAX_USER || t.kind != BLOCK_TOKEN_KIND {
        return None;
    }
    let u64_at = |i: usize| u64::from_be_bytes(rest[i..i + 8].try_into().expect("8 bytes"));
    let mode = match rest[16] {
        0 => AccessMode::Read,
        1 => AccessMode::Write,
        _ => return None,
    };
    Some(BlockToken {
        block: u64_at(0),
        gen: u64_at(8),
        mode,
        expires_ms: u64_at(17),
        user: String::from_utf8(rest[25..].to_vec()).ok()?,
        mac: t.password.as_slice().try_into().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> BlockToken {
        BlockToken {
            block: 7,
            gen: 1003,
            mode: AccessMode::Write,
            user: "alice".into(),
            expires_ms: 1_800_000_000_000,
            mac: [9; 32],
        }
    }

    #[test]
    fn round_trip() {
        let t = token();
        let p = encode(&t);
        assert_eq!(p.kind, BLOCK_TOKEN_KIND);
        assert_eq!(decode(&p), Some(t));
    }

    #[test]
    fn refuses_empty_foreign_and_damaged_tokens() {
        assert_eq!(decode(&empty()), None);
        let mut p = encode(&token());
        p.kind = "HDFS_DELEGATION_TOKEN".into();
        assert_eq!(decode(&p), None);
        let mut p = encode(&token());
        p.identifier.truncate(20);
        assert_eq!(decode(&p), None);
        let mut p = encode(&token());
        p.password.pop();
        assert_eq!(decode(&p), None);
        let mut p = encode(&token());
        p.identifier[5 + 16] = 7;
        assert_eq!(decode(&p), None);
    }
}
