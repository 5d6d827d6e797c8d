//! The cluster key and the handshake's HMAC-SHA256 proofs.

use sha2::{Digest, Sha256};
use std::path::Path;
use tdfs_proto::meta::{AccessMode, BlockToken};
use tdfs_proto::{BlockId, FsError};

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

    fn token_mac(
        &self,
        block: BlockId,
        gen: u64,
        mode: AccessMode,
        user: &str,
        expires_ms: u64,
    ) -> [u8; 32] {
        let mode = [match mode {
            AccessMode::Read => b'r',
            AccessMode::Write => b'w',
        }];
        self.mac(&[
            b"blocktoken",
            &block.to_be_bytes(),
            &gen.to_be_bytes(),
            &mode,
            &expires_ms.to_be_bytes(),
            &(user.len() as u64).to_be_bytes(),
            user.as_bytes(),
        ])
    }

    /// Issues a block access token (metadata nodes do).
    pub fn block_token(
        &self,
        block: BlockId,
        gen: u64,
        mode: AccessMode,
        user: &str,
        expires_ms: u64,
    ) -> BlockToken {
        BlockToken {
            block,
            gen,
            mode,
            user: user.to_string(),
            expires_ms,
            mac: self.token_mac(block, gen, mode, user, expires_ms),
        }
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
        let refuse = |why: &str| {
            Err(FsError::Unauthenticated(format!(
                "block token refused for block {block}: {why}"
            )))
        };
        let Some(t) = token else {
            return refuse("no token (a caller without the cluster key needs one)");
        };
        let want = self.token_mac(t.block, t.gen, t.mode, &t.user, t.expires_ms);
        if !mac_eq(&want, &t.mac) {
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
