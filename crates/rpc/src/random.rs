//! The randomness seam: every random decision a node makes (replica
//! placement, the order of read locations) draws from a `Random` that a
//! test seeds, so a run can be repeated from its printed seed.

use rand::{Rng, RngCore, SeedableRng};
use std::sync::{Arc, Mutex};

/// A shared, seedable random source (cheap to clone; clones share state).
#[derive(Clone)]
pub struct Random(Arc<Mutex<rand::rngs::StdRng>>);

impl Random {
    /// A source that repeats the same sequence for the same seed.
    pub fn seeded(seed: u64) -> Self {
        Random(Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(
            seed,
        ))))
    }

    pub fn next_u64(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).next_u64()
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&self) -> f64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).gen()
    }
}

/// The seed of a run: `TDFS_SEED` when set (to repeat a run), else a fresh
/// one; printed to stderr either way, so a failing test names its seed.
pub fn run_seed() -> u64 {
    let seed = env_seed();
    eprintln!("seed {seed} (TDFS_SEED={seed} repeats this run)");
    seed
}

/// `TDFS_SEED` when set, else a fresh seed (not printed).
pub fn env_seed() -> u64 {
    std::env::var("TDFS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random)
}

impl Default for Random {
    /// Seeded from the operating system (daemons).
    fn default() -> Self {
        Random(Arc::new(Mutex::new(rand::rngs::StdRng::from_entropy())))
    }
}

impl std::fmt::Debug for Random {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Random")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_seed_repeats_the_same_draws() {
        let (a, b) = (super::Random::seeded(7), super::Random::seeded(7));
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert!((0..100)
            .map(|_| a.next_f64())
            .all(|x| (0.0..1.0).contains(&x)));
    }
}
