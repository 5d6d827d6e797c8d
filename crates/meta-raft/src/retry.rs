//! The client retry cache: (client id, call id) → the result of the first
//! attempt. A call retried after a failover (because its reply was lost) is
//! answered from here, so it is applied exactly once. Replicated with the
//! namespace, so a new leader has the same cache.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::MetaResponse;
use tdfs_proto::FsError;

/// Results kept per client; a client has at most this many calls whose
/// reply it may still be waiting for.
pub const PER_CLIENT: usize = 4096;
/// A client silent for this long (in log time) is forgotten.
pub const CLIENT_TTL_MS: u64 = 15 * 60 * 1000;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RetryCache {
    clients: HashMap<u64, ClientCalls>,
    /// Log time of the last sweep of expired clients.
    last_sweep: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ClientCalls {
    last_seen: u64,
    calls: VecDeque<(u64, Result<MetaResponse, FsError>)>,
}

impl RetryCache {
    /// The recorded result of `call`, if any.
    pub fn get(&self, call: CallId) -> Option<Result<MetaResponse, FsError>> {
        let c = self.clients.get(&call.client)?;
        c.calls
            .iter()
            .rev()
            .find(|(seq, _)| *seq == call.seq)
            .map(|(_, r)| r.clone())
    }

    /// Records the result of `call`, applied at log time `now`.
    pub fn insert(&mut self, call: CallId, now: u64, result: Result<MetaResponse, FsError>) {
        let c = self.clients.entry(call.client).or_default();
        c.last_seen = c.last_seen.max(now);
        c.calls.push_back((call.seq, result));
        while c.calls.len() > PER_CLIENT {
            c.calls.pop_front();
        }
        if now >= self.last_sweep + 60_000 {
            self.last_sweep = now;
            self.clients
                .retain(|_, c| c.last_seen + CLIENT_TTL_MS >= now);
        }
    }

    pub fn len(&self) -> usize {
        self.clients.values().map(|c| c.calls.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}
