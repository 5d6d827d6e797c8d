//! Writers' leases: renewals (leader soft state) and the recovery decision
//! for a file whose writer went away.

use crate::state::ClusterState;
use std::time::{Duration, Instant};
use tdfs_namespace::{InodeId, OpenFile};
use tdfs_proto::meta::BlockInfo;
use tdfs_proto::BlockId;

/// How to close a file whose lease expired; applied through the log as a
/// compare-and-set on the file's holder and open block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub path: String,
    pub holder: u64,
    /// The open block the decision saw (id, generation).
    pub expect: Option<(BlockId, u64)>,
    /// The length and digest its finalized replicas agree on.
    pub last: Option<BlockInfo>,
    /// No replica finished the open block: drop it.
    pub drop_last: bool,
}

impl ClusterState {
    /// A writer renewed its lease.
    pub fn renew(&mut self, holder: u64, now: Instant) {
        self.renewals.insert(holder, now);
    }

    /// Files of writers silent for longer than `timeout`.
    pub fn expired_leases(&self, now: Instant, timeout: Duration) -> Vec<(u64, InodeId)> {
        self.open_files
            .iter()
            .filter(|(h, _)| {
                self.renewals
                    .get(h)
                    .is_none_or(|t| now.saturating_duration_since(*t) >= timeout)
            })
            .copied()
            .collect()
    }

    /// Decides how to close `f`: the open block is kept at the (length,
    /// digest) most of its finalized replicas on live nodes agree on, or
    /// dropped when none finished it.
    pub fn recovery_for(&self, f: &OpenFile) -> Recovery {
        let Some(b) = f.open_block else {
            return Recovery {
                path: f.path.clone(),
                holder: f.holder,
                expect: None,
                last: None,
                drop_last: false,
            };
        };
        let mut votes: Vec<((u64, [u8; 32]), usize)> = Vec::new();
        for (n, len, sha) in self.blocks.open_replicas(b.id) {
            if !self.nodes.get(n).can_source() {
                continue;
            }
            // Only replicas at the block's generation are in `open_replicas`.
            match votes.iter_mut().find(|(k, _)| *k == (len, sha)) {
                Some((_, c)) => *c += 1,
                None => votes.push(((len, sha), 1)),
            }
        }
        votes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let best = votes.first().map(|((len, sha), _)| BlockInfo {
            id: b.id,
            gen: b.gen,
            len: *len,
            sha256: Some(*sha),
        });
        Recovery {
            path: f.path.clone(),
            holder: f.holder,
            expect: Some((b.id, b.gen)),
            drop_last: best.is_none(),
            last: best,
        }
    }
}
