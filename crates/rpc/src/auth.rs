//! The cluster key and the handshake's HMAC-SHA256 proofs.

use sha2::{Digest, Sha256};
use std::path::Path;
use tdfs_proto::meta::{AccessMode, BlockToken};
use tdfs_proto::{BlockId, DatanodeId, FsError};

/// A secret shared by every node of a cluster. Proving knowledge of it makes a
/// connection a trusted peer (Raft, datanode registration, block transfer).
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

impl ClusterKey {
    /// Wraps raw key bytes; at least 16 are required.
    pub fn new(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.len() < 16 {
            return Err(format!(
                "cluster key must be at least 16 bytes, got {}",
                bytes.len()
            ));
        }
        Ok(ClusterKey(bytes))
    }

    /// Reads a key file (surrounding white space is ignored).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let raw = std::fs::read(path)
            .map_err(|e| format!("cannot read cluster key file {}: {e}", path.display()))?;
        let trimmed: Vec<u8> = raw
            .iter()
            .copied()
            .skip_while(|b| b.is_ascii_whitespace())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .skip_while(|b| b.is_ascii_whitespace())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Self::new(trimmed).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Generates a random key as 64 hex characters.
    pub fn generate_hex() -> String {
        let bytes: [u8; 32] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA256 of `parts` (concatenated) under this key.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        hmac_sha256(&self.0, parts)
    }

    fn token_mac(&self, t: &BlockToken) -> [u8; 32] {
        let mode = [match t.mode {
            AccessMode::Read => b'r',
            AccessMode::Write => b'w',
        }];
        let mut pipeline = Vec::new();
        for n in &t.pipeline {
            pipeline.extend_from_slice(&(n.0.len() as u64).to_be_bytes());
            pipeline.extend_from_slice(n.0.as_bytes());
        }
        self.mac(&[
            b"blocktoken",
            &t.block.to_be_bytes(),
            &t.gen.to_be_bytes(),
            &mode,
            &t.expires_ms.to_be_bytes(),
            &(t.user.len() as u64).to_be_bytes(),
            t.user.as_bytes(),
            &(t.pipeline.len() as u64).to_be_bytes(),
            &pipeline,
        ])
    }

    /// Issues a block access token bound to no pipeline: a read token
    /// (a write token needs [`write_token`](Self::write_token)).
    pub fn block_token(
        &self,
        block: BlockId,
        gen: u64,
        mode: AccessMode,
        user: &str,
        expires_ms: u64,
    ) -> BlockToken {
        self.sign(BlockToken {
            block,
            gen,
            mode,
            user: user.to_string(),
            expires_ms,
            pipeline: Vec::new(),
            mac: [0; 32],
        })
    }

    /// Issues a write token for `block` at `gen` bound to `pipeline`, the
    /// datanodes the metadata node chose, in order.
    pub fn write_token(
        &self,
        block: BlockId,
        gen: u64,
        user: &str,
        expires_ms: u64,
        pipeline: Vec<DatanodeId>,
    ) -> BlockToken {
        self.sign(BlockToken {
            block,
            gen,
            mode: AccessMode::Write,
            user: user.to_string(),
            expires_ms,
            pipeline,
            mac: [0; 32],
        })
    }

    fn sign(&self, mut t: BlockToken) -> BlockToken {
        t.mac = self.token_mac(&t);
        t
    }

    /// Checks that `token` was issued under this key for `block` at `gen`
    /// with `mode`, and has not expired at `now_ms` (datanodes do).
    pub fn check_block_token(
        &self,
        token: Option<&BlockToken>,
        block: BlockId,
        gen: u64,
        mode: AccessMode,
        now_ms: u64,
    ) -> Result<(), FsError> {
        let refuse = |why: &str| Err(refused(block, why));
        let Some(t) = token else {
            return refuse("no token (a caller without the cluster key needs one)");
        };
        if !mac_eq(&self.token_mac(t), &t.mac) {
            return refuse("forged or damaged token");
        }
        if t.block != block || t.gen != gen {
            return refuse(&format!(
                "the token is for block {} generation {}",
                t.block, t.gen
            ));
        }
        if t.mode != mode {
            return refuse(&format!("the token allows {:?}, not {mode:?}", t.mode));
        }
        if t.expires_ms <= now_ms {
            return refuse("the token has expired");
        }
        Ok(())
    }

    /// Checks a write token at one hop of a pipeline: valid for `block` at
    /// `gen` (as [`check_block_token`](Self::check_block_token)), naming
    /// `me` in its pipeline, and with every node of `downstream` — where
    /// this node is asked to forward the block — after `me` there, in order.
    /// A token for pipeline `[A, B]` thus stores nothing on `C`, and no node
    /// can be made to forward the block to one the metadata node did not
    /// choose.
    pub fn check_write_hop(
        &self,
        token: Option<&BlockToken>,
        block: BlockId,
        gen: u64,
        me: &DatanodeId,
        downstream: &[DatanodeId],
        now_ms: u64,
    ) -> Result<(), FsError> {
        self.check_block_token(token, block, gen, AccessMode::Write, now_ms)?;
        let t = token.expect("checked above");
        check_pipeline(&t.pipeline, me, downstream).map_err(|why| refused(block, &why))
    }
}

fn refused(block: BlockId, why: &str) -> FsError {
    FsError::Unauthenticated(format!("block token refused for block {block}: {why}"))
}

/// Whether `me` is in `pipeline` and `downstream` follows it there as a
/// subsequence (a rebuilt pipeline may drop failed nodes, never add any).
pub fn check_pipeline(
    pipeline: &[DatanodeId],
    me: &DatanodeId,
    downstream: &[DatanodeId],
) -> Result<(), String> {
    let show = |p: &[DatanodeId]| {
        let v: Vec<&str> = p.iter().map(|d| d.0.as_str()).collect();
        format!("[{}]", v.join(", "))
    };
    let Some(at) = pipeline.iter().position(|n| n == me) else {
        return Err(format!(
            "the token's pipeline {} does not include this datanode {me}",
            show(pipeline)
        ));
    };
    let mut rest = pipeline[at + 1..].iter();
    for d in downstream {
        if !rest.any(|n| n == d) {
            return Err(format!(
                "forwarding to {d} is not allowed: the token's pipeline is {}",
                show(pipeline)
            ));
        }
    }
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    for p in parts {
        inner.update(p);
    }
    let ih = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(ih);
    outer.finalize().into()
}

/// Compares two MACs in constant time.
pub fn mac_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_tokens_check_block_gen_mode_expiry_and_key() {
        let k = ClusterKey::new(vec![1u8; 32]).unwrap();
        let other = ClusterKey::new(vec![2u8; 32]).unwrap();
        let t = k.block_token(7, 3, AccessMode::Read, "alice", 1_000);
        assert!(k
            .check_block_token(Some(&t), 7, 3, AccessMode::Read, 999)
            .is_ok());
        assert!(k
            .check_block_token(None, 7, 3, AccessMode::Read, 0)
            .is_err());
        assert!(k
            .check_block_token(Some(&t), 8, 3, AccessMode::Read, 0)
            .is_err());
        assert!(k
            .check_block_token(Some(&t), 7, 4, AccessMode::Read, 0)
            .is_err());
        assert!(k
            .check_block_token(Some(&t), 7, 3, AccessMode::Write, 0)
            .is_err());
        assert!(k
            .check_block_token(Some(&t), 7, 3, AccessMode::Read, 1_000)
            .is_err());
        assert!(other
            .check_block_token(Some(&t), 7, 3, AccessMode::Read, 0)
            .is_err());
        let mut forged = t.clone();
        forged.expires_ms = u64::MAX;
        assert!(k
            .check_block_token(Some(&forged), 7, 3, AccessMode::Read, 0)
            .is_err());
        let mut forged = t;
        forged.mode = AccessMode::Write;
        assert!(k
            .check_block_token(Some(&forged), 7, 3, AccessMode::Write, 0)
            .is_err());
    }

    fn ids(v: &[&str]) -> Vec<DatanodeId> {
        v.iter().map(|s| DatanodeId(s.to_string())).collect()
    }

    #[test]
    fn write_tokens_bind_the_pipeline() {
        let k = ClusterKey::new(vec![1u8; 32]).unwrap();
        let t = k.write_token(7, 3, "alice", 1_000, ids(&["a", "b", "c"]));
        let hop = |t: &BlockToken, me: &str, down: &[&str]| {
            k.check_write_hop(Some(t), 7, 3, &ids(&[me])[0], &ids(down), 0)
        };
        assert!(hop(&t, "a", &["b", "c"]).is_ok());
        assert!(hop(&t, "b", &["c"]).is_ok());
        assert!(hop(&t, "c", &[]).is_ok());
        // A rebuilt pipeline may drop a node, keeping the order.
        assert!(hop(&t, "a", &["c"]).is_ok());
        let e = hop(&t, "d", &[]).unwrap_err().to_string();
        assert!(e.contains("does not include this datanode d"), "{e}");
        let e = hop(&t, "a", &["b", "d"]).unwrap_err().to_string();
        assert!(e.contains("forwarding to d is not allowed"), "{e}");
        assert!(hop(&t, "b", &["a"]).is_err(), "not backwards");
        assert!(hop(&t, "a", &["b", "b"]).is_err(), "no node twice");
        // The pipeline is under the MAC.
        let mut forged = t.clone();
        forged.pipeline.push(DatanodeId("d".into()));
        let e = hop(&forged, "d", &[]).unwrap_err().to_string();
        assert!(e.contains("forged"), "{e}");
        // A read token or an unbound one writes nowhere.
        let r = k.block_token(7, 3, AccessMode::Read, "alice", 1_000);
        assert!(hop(&r, "a", &[]).is_err());
        let w = k.block_token(7, 3, AccessMode::Write, "alice", 1_000);
        assert!(hop(&w, "a", &[]).is_err());
    }

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
