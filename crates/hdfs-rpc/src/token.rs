//! tdfs block access tokens in Hadoop's `TokenProto`, so a Hadoop client
//! carries them from the metadata node to the datanode unchanged (it never
//! looks inside): `identifier` holds the token's fields, `password` its
//! MAC, `kind` is HDFS's `HDFS_BLOCK_TOKEN`. A cluster without a key hands
//! out empty tokens, as an HDFS cluster without block tokens does.

use crate::proto::common::TokenProto;
use tdfs_proto::meta::{AccessMode, BlockToken};
use tdfs_proto::DatanodeId;

/// `kind` of a block token, as HDFS names it.
pub const BLOCK_TOKEN_KIND: &str = "HDFS_BLOCK_TOKEN";
/// First bytes of a tdfs token identifier (format version 2: with the
/// pipeline).
const TAG: &[u8; 5] = b"tdfs2";
/// Longest user name a token carries (the metadata node's own limit).
const MAX_USER: usize = 255;
/// Most datanodes a token's pipeline names.
const MAX_PIPELINE: usize = 64;
/// Longest datanode id in a token's pipeline.
const MAX_ID: usize = 1024;

/// The empty token of a cluster without block tokens.
pub fn empty() -> TokenProto {
    TokenProto::default()
}

/// Encodes a tdfs block token: identifier =
/// `"tdfs2" | block u64 | gen u64 | mode u8 | expires_ms u64 | user_len u8 |
/// user | n u8 | n × (id_len u16 | datanode id)` (big-endian), password =
/// the MAC. The pipeline binding rides inside the identifier, which a Hadoop
/// client treats as opaque and its datanodes forward down the pipeline
/// unchanged, so every tdfs datanode of a Hadoop pipeline checks it.
pub fn encode(t: &BlockToken) -> TokenProto {
    let mut id = Vec::with_capacity(TAG.len() + 27 + t.user.len());
    id.extend_from_slice(TAG);
    id.extend_from_slice(&t.block.to_be_bytes());
    id.extend_from_slice(&t.gen.to_be_bytes());
    id.push(match t.mode {
        AccessMode::Read => 0,
        AccessMode::Write => 1,
    });
    id.extend_from_slice(&t.expires_ms.to_be_bytes());
    let user = &t.user.as_bytes()[..t.user.len().min(MAX_USER)];
    id.push(user.len() as u8);
    id.extend_from_slice(user);
    let nodes = &t.pipeline[..t.pipeline.len().min(MAX_PIPELINE)];
    id.push(nodes.len() as u8);
    for n in nodes {
        let b = &n.0.as_bytes()[..n.0.len().min(MAX_ID)];
        id.extend_from_slice(&(b.len() as u16).to_be_bytes());
        id.extend_from_slice(b);
    }
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
    if t.kind != BLOCK_TOKEN_KIND {
        return None;
    }
    let mut r = t.identifier.as_slice().strip_prefix(TAG.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = (r.get(..n)?, r.get(n..)?);
        r = b;
        Some(a)
    };
    let u64_of = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
    let block = u64_of(take(8)?);
    let gen = u64_of(take(8)?);
    let mode = match take(1)?[0] {
        0 => AccessMode::Read,
        1 => AccessMode::Write,
        _ => return None,
    };
    let expires_ms = u64_of(take(8)?);
    let ulen = take(1)?[0] as usize;
    let user = String::from_utf8(take(ulen)?.to_vec()).ok()?;
    let n = take(1)?[0] as usize;
    if n > MAX_PIPELINE {
        return None;
    }
    let mut pipeline = Vec::with_capacity(n);
    for _ in 0..n {
        let l = take(2)?;
        let len = u16::from_be_bytes([l[0], l[1]]) as usize;
        pipeline.push(DatanodeId(String::from_utf8(take(len)?.to_vec()).ok()?));
    }
    if !r.is_empty() {
        return None;
    }
    Some(BlockToken {
        block,
        gen,
        mode,
        expires_ms,
        user,
        pipeline,
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
            pipeline: vec![DatanodeId("dn-a".into()), DatanodeId("dn-b".into())],
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
        // Every prefix of a good identifier, and one with trailing bytes.
        let good = encode(&token());
        for n in 0..good.identifier.len() {
            let mut p = good.clone();
            p.identifier.truncate(n);
            assert_eq!(decode(&p), None, "prefix of {n} bytes");
        }
        let mut p = good;
        p.identifier.push(0);
        assert_eq!(decode(&p), None);
    }
}
