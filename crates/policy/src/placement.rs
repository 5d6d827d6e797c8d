//! Block placement: a pure function from candidate datanodes to targets.

use tdfs_proto::DatanodeId;

/// A datanode that may receive a new replica.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub id: DatanodeId,
    /// Free bytes minus bytes already promised (pending blocks, replication
    /// and move intents).
    pub available: u64,
}

/// Picks up to `n` distinct targets for a block of `block_size` bytes.
///
/// Nodes that cannot hold the block are skipped. Among the rest, each pick
/// is random with probability proportional to the available space, so new
/// blocks go mostly to the emptiest nodes without all writers piling onto
/// the same one. `rand01` supplies uniform numbers in `[0, 1)` (seeded in
/// tests). Never returns the same node twice.
pub fn choose_targets(
    candidates: &[Candidate],
    n: usize,
    block_size: u64,
    rand01: &mut dyn FnMut() -> f64,
) -> Vec<DatanodeId> {
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.available >= block_size)
        .collect();
    pool.sort_by(|a, b| a.id.cmp(&b.id));
    pool.dedup_by(|a, b| a.id == b.id);
    let mut out = Vec::with_capacity(n);
    while out.len() < n && !pool.is_empty() {
        let total: f64 = pool.iter().map(|c| c.available as f64).sum();
        let mut x = rand01() * total;
        let mut pick = pool.len() - 1;
        for (i, c) in pool.iter().enumerate() {
            if x < c.available as f64 {
                pick = i;
                break;
            }
            x -= c.available as f64;
        }
        out.push(pool.remove(pick).id.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, gb: u64) -> Candidate {
        Candidate {
            id: DatanodeId(id.into()),
            available: gb << 30,
        }
    }

    fn lcg(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn table() {
        // (candidates, n, block size, expected count of targets)
        let cases: Vec<(Vec<Candidate>, usize, u64, usize)> = vec![
            (
                vec![c("a", 10), c("b", 10), c("c", 10), c("d", 10)],
                3,
                1 << 26,
                3,
            ),
            (vec![c("a", 10), c("b", 10)], 3, 1 << 26, 2),
            (vec![], 3, 1 << 26, 0),
            (vec![c("a", 0), c("b", 10)], 2, 1 << 26, 1),
            (vec![c("a", 10), c("a", 10)], 2, 1 << 26, 1),
        ];
        let seed = 42;
        let mut r = lcg(seed);
        for (i, (cands, n, bs, want)) in cases.into_iter().enumerate() {
            let got = choose_targets(&cands, n, bs, &mut r);
            assert_eq!(got.len(), want, "case {i} (seed {seed}): {got:?}");
            let mut uniq = got.clone();
            uniq.sort();
            uniq.dedup();
            assert_eq!(uniq.len(), got.len(), "case {i}: duplicate target");
        }
    }

    #[test]
    fn favors_free_space() {
        let seed = 7;
        println!("seed {seed}");
        let mut r = lcg(seed);
        let cands = vec![c("empty", 100), c("full", 1), c("mid", 10)];
        let mut firsts = std::collections::HashMap::new();
        for _ in 0..1000 {
            let t = choose_targets(&cands, 1, 1 << 20, &mut r);
            *firsts.entry(t[0].0.clone()).or_insert(0) += 1;
        }
        assert!(firsts["empty"] > 800, "{firsts:?}");
        assert!(firsts.get("full").copied().unwrap_or(0) < 50, "{firsts:?}");
    }
}
