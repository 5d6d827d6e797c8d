//! The client retry cache: (client id, call id) → the result of the first
//! attempt. A call retried after a failover (because its reply was lost) is
//! answered from here, so it is applied exactly once. Replicated with the
//! namespace, so a new leader has the same cache.
//!
//! Expiry runs on the log tick — the largest `Stamp::tick` any applied
//! operation carried — never on a wall clock: leaders advance the tick with
//! their monotonic clocks only, from the applied tick when they took office
//! (`tdfs_meta_raft::log_clock`). So a step of a leader's wall clock cannot
//! expire a client (a call retried after it would be applied twice), a new
//! leader whose clock is behind cannot resurrect or keep entries the old
//! one expired, and every replica expires the same entries at the same log
//! position. (Until format version 2 the stamps' wall time was used: see
//! `crate::compat` for how those times carry over.)

use crate::op::Outcome;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use tdfs_proto::ids::CallId;
use tdfs_proto::FsError;

/// Results kept per client; a client has at most this many calls whose
/// reply it may still be waiting for.
pub const PER_CLIENT: usize = 4096;
/// Results kept over all clients; the longest-silent clients go first.
pub const TOTAL: usize = 256 * 1024;
/// A client silent for this long (in log ticks) is forgotten.
pub const CLIENT_TTL_MS: u64 = 15 * 60 * 1000;
/// How often (in log ticks) expired clients are swept.
pub const SWEEP_MS: u64 = 60_000;

type Cached = Result<Outcome, FsError>;

/// The cache. Each client's calls sit behind an `Arc`, so a frozen copy
/// for a snapshot shares them until the client's next call.
#[derive(Clone, Debug, Default)]
pub struct RetryCache {
    clients: FxHashMap<u64, Arc<ClientCalls>>,
    /// Results held, over all clients.
    total: usize,
    /// Log tick of the last sweep.
    last_sweep: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClientCalls {
    last_seen: u64,
    calls: VecDeque<(u64, Cached)>,
    /// Derived, never stored (rebuilt on load): call seq → position of its
    /// newest result, counted from the first result this table ever held,
    /// so a lookup is one hash probe instead of a scan of up to
    /// [`PER_CLIENT`] results (the scan was 5–6 % of a leader's CPU).
    #[serde(skip)]
    index: FxHashMap<u64, u64>,
    /// Derived: results dropped from the front (position of `calls[0]`).
    #[serde(skip)]
    popped: u64,
}

impl ClientCalls {
    fn push(&mut self, seq: u64, result: Cached) {
        self.index
            .insert(seq, self.popped + self.calls.len() as u64);
        self.calls.push_back((seq, result));
    }

    fn pop_front(&mut self) {
        let Some((seq, _)) = self.calls.pop_front() else {
            return;
        };
        // A seq recorded twice points at its newer result: keep that.
        if self.index.get(&seq) == Some(&self.popped) {
            self.index.remove(&seq);
        }
        self.popped += 1;
    }

    fn get(&self, seq: u64) -> Option<&Cached> {
        let at = self.index.get(&seq)?.checked_sub(self.popped)?;
        self.calls.get(at as usize).map(|(_, r)| r)
    }

    /// Fills the derived index after a load.
    fn reindex(&mut self) {
        self.popped = 0;
        self.index.clear();
        self.index.reserve(self.calls.len());
        for (at, (seq, _)) in self.calls.iter().enumerate() {
            self.index.insert(*seq, at as u64);
        }
    }
}

/// The cache as snapshots store it: clients in id order, so that the
/// bytes (and their digest) are the same on every replica.
#[derive(Deserialize)]
pub(crate) struct RetryImage {
    clients: Vec<(u64, ClientCalls)>,
    last_sweep: u64,
}

/// [`RetryImage`] for writing, borrowing the calls (encodes the same).
#[derive(Serialize)]
pub(crate) struct RetryImageRef<'a> {
    clients: Vec<(u64, &'a ClientCalls)>,
    last_sweep: u64,
}

impl RetryCache {
    pub(crate) fn image(&self) -> RetryImageRef<'_> {
        let mut clients: Vec<(u64, &ClientCalls)> =
            self.clients.iter().map(|(id, c)| (*id, &**c)).collect();
        clients.sort_unstable_by_key(|(id, _)| *id);
        RetryImageRef {
            clients,
            last_sweep: self.last_sweep,
        }
    }

    pub(crate) fn from_image(img: RetryImage) -> Self {
        let total = img.clients.iter().map(|(_, c)| c.calls.len()).sum();
        RetryCache {
            clients: img
                .clients
                .into_iter()
                .map(|(id, mut c)| {
                    c.reindex();
                    (id, Arc::new(c))
                })
                .collect(),
            total,
            last_sweep: img.last_sweep,
        }
    }

    /// The recorded result of `call`, if any.
    pub fn get(&self, call: CallId) -> Option<Cached> {
        self.clients.get(&call.client)?.get(call.seq).cloned()
    }

    /// Records the result of `call`, applied when the log tick read `clock`.
    pub fn insert(&mut self, call: CallId, clock: u64, result: Cached) {
        let c = Arc::make_mut(self.clients.entry(call.client).or_default());
        c.last_seen = c.last_seen.max(clock);
        c.push(call.seq, result);
        self.total += 1;
        if c.calls.len() > PER_CLIENT {
            c.pop_front();
            self.total -= 1;
        }
        if clock >= self.last_sweep + SWEEP_MS {
            self.last_sweep = clock;
            self.expire(clock);
        }
        if self.total > TOTAL {
            self.shed();
        }
    }

    /// Forgets clients silent for longer than the TTL.
    fn expire(&mut self, clock: u64) {
        let mut dropped = 0;
        self.clients.retain(|_, c| {
            let keep = c.last_seen + CLIENT_TTL_MS >= clock;
            if !keep {
                dropped += c.calls.len();
            }
            keep
        });
        self.total -= dropped;
    }

    /// Drops the longest-silent clients until the total fits again. Ties
    /// are broken by client id so every replica drops the same ones.
    fn shed(&mut self) {
        let mut by_age: Vec<(u64, u64, usize)> = self
            .clients
            .iter()
            .map(|(id, c)| (c.last_seen, *id, c.calls.len()))
            .collect();
        by_age.sort_unstable();
        for (_, id, n) in by_age {
            if self.total <= TOTAL * 3 / 4 {
                break;
            }
            self.clients.remove(&id);
            self.total -= n;
        }
    }

    /// Results held.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(client: u64, seq: u64) -> CallId {
        CallId { client, seq }
    }

    #[test]
    fn answers_a_retry_and_forgets_old_calls() {
        let mut r = RetryCache::default();
        r.insert(call(1, 1), 10, Ok(Outcome::Bool(true)));
        assert_eq!(r.get(call(1, 1)), Some(Ok(Outcome::Bool(true))));
        assert_eq!(r.get(call(1, 2)), None);
        for s in 2..(PER_CLIENT as u64 + 10) {
            r.insert(call(1, s), 10, Ok(Outcome::Done));
        }
        assert_eq!(r.get(call(1, 1)), None);
        assert_eq!(r.len(), PER_CLIENT);
    }

    #[test]
    fn expiry_follows_the_log_clock_not_the_caller() {
        let mut r = RetryCache::default();
        r.insert(call(1, 1), 1_000, Ok(Outcome::Done));
        // A later entry stamped by a leader whose clock is behind: the
        // cache is swept by the log tick the caller passes, which the
        // namespace keeps monotonic.
        r.insert(
            call(2, 1),
            1_000 + CLIENT_TTL_MS + SWEEP_MS,
            Ok(Outcome::Done),
        );
        assert_eq!(r.get(call(1, 1)), None);
        assert!(r.get(call(2, 1)).is_some());
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn the_total_is_bounded() {
        let mut r = RetryCache::default();
        for c in 0..(TOTAL as u64 / 100 + 10) {
            for s in 0..100 {
                r.insert(call(c, s), c, Ok(Outcome::Done));
            }
        }
        assert!(r.len() <= TOTAL);
        // The most recent client survives.
        assert!(r.get(call(TOTAL as u64 / 100 + 9, 99)).is_some());
    }

    /// The answer by a scan of the stored results, newest first (what the
    /// index replaces).
    fn scanned(r: &RetryCache, call: CallId) -> Option<Cached> {
        let c = r.clients.get(&call.client)?;
        c.calls
            .iter()
            .rev()
            .find(|(seq, _)| *seq == call.seq)
            .map(|(_, r)| r.clone())
    }

    #[test]
    fn the_index_agrees_with_a_scan_also_after_a_reload() {
        use rand::{Rng, SeedableRng};
        let seed = tdfs_testkit::data::seed("TDFS_TEST_SEED", "retry index");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut r = RetryCache::default();
        let mut next = [0u64; 6];
        let mut clock = 0;
        let codec = bincode::config::standard();
        for step in 0..60_000u64 {
            let client = rng.gen_range(0..6u64);
            // Now and then a jump past the TTL, so sweeps drop clients.
            clock += match rng.gen_range(0..5000) {
                0 => CLIENT_TTL_MS + SWEEP_MS,
                _ => rng.gen_range(0..40),
            };
            // Mostly new calls, some out of order, some repeated seqs.
            let seq = match rng.gen_range(0..10) {
                0 => next[client as usize].saturating_sub(rng.gen_range(0..5000)),
                _ => {
                    next[client as usize] += rng.gen_range(1..3);
                    next[client as usize]
                }
            };
            r.insert(call(client, seq), clock, Ok(Outcome::Bool(step % 2 == 0)));
            for _ in 0..3 {
                let c = call(
                    rng.gen_range(0..7u64),
                    rng.gen_range(0..next[5].max(1) + 10),
                );
                assert_eq!(r.get(c), scanned(&r, c), "seed {seed} step {step} {c:?}");
            }
            if step % 20_000 == 19_999 {
                let bytes = bincode::serde::encode_to_vec(r.image(), codec).expect("encodes");
                let (img, _): (RetryImage, usize) =
                    bincode::serde::decode_from_slice(&bytes, codec).expect("decodes");
                let loaded = RetryCache::from_image(img);
                for (id, c) in &r.clients {
                    for (seq, _) in c.calls.iter() {
                        let k = call(*id, *seq);
                        assert_eq!(loaded.get(k), r.get(k), "seed {seed} after reload {k:?}");
                    }
                }
                assert_eq!(loaded.len(), r.len());
                r = loaded;
            }
        }
        assert_eq!(
            r.len(),
            r.clients.values().map(|c| c.calls.len()).sum::<usize>()
        );
    }
}
