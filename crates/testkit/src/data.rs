//! Test data: deterministic bytes for a seed, so expected contents are
//! recomputed from (seed, offset), never stored, and digests.

use sha2::{Digest, Sha256};

/// `len` pseudo-random bytes for `seed` (xorshift64; the same bytes on
/// every run and machine).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A seeded test's seed: `var` from the environment if set (a replay),
/// else a fresh random one; printed with how to replay it.
pub fn seed(var: &str, what: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
    println!("{what}: seed {seed} (replay with {var}={seed})");
    seed
}

/// SHA-256 of `data`.
pub fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_depend_on_the_seed_only() {
        assert_eq!(bytes(7, 1000), bytes(7, 1000));
        assert_ne!(bytes(7, 1000), bytes(8, 1000));
        assert_eq!(&bytes(7, 1000)[..10], &bytes(7, 10)[..]);
        // Not degenerate: most byte values occur in 64 KiB.
        let mut seen = [false; 256];
        bytes(1, 1 << 16)
            .iter()
            .for_each(|b| seen[*b as usize] = true);
        assert!(seen.iter().filter(|s| **s).count() > 250);
    }
}
