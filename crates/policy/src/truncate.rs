//! Block recovery after a truncate, on the leader: the datanodes holding
//! the old replica are asked to cut it (`DatanodeCommand::Truncate`), and
//! once enough of them report the new replica at the truncation's
//! generation and length, the file can be closed (`CommitTruncate`).
//!
//! Everything it needs is in the namespace (the pending truncation) and in
//! the replica map, so a new leader resumes where the old one stopped; the
//! command is idempotent on the datanodes.

use crate::replicas::NodeIx;
use crate::state::ClusterState;
use std::time::Instant;
use tdfs_namespace::Truncation;
use tdfs_proto::meta::{BlockInfo, DatanodeCommand};

/// Where a truncation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TruncateStep {
    /// Commands are out (or no holder of the old replica is known yet).
    Waiting { asked: usize, done: usize },
    /// Enough replicas hold the cut block: commit it with this digest.
    Commit(BlockInfo),
}

impl ClusterState {
    /// Advances one truncation (leader only): `replication` is the file's
    /// factor. Asks each live holder of the source replica that has not
    /// reported the target to cut it (again after the copy TTL), and
    /// answers `Commit` once the target is held at `(gen, len)` by as many
    /// nodes as could produce it, up to the factor (or by one, once the
    /// others have had two copy TTLs).
    pub fn drive_truncate(
        &mut self,
        t: &Truncation,
        replication: u16,
        now: Instant,
    ) -> TruncateStep {
        let done = self.truncated_replicas(t);
        let sources: Vec<NodeIx> = self
            .blocks
            .holders_at(t.source.id, t.source.gen)
            .into_iter()
            .filter(|n| self.nodes.get(*n).can_source() && !done.iter().any(|(d, _)| d == n))
            .collect();
        let since = *self.truncate_since.entry(t.target).or_insert(now);
        let want = (replication as usize)
            .min(done.len() + sources.len())
            .max(1);
        // A holder that keeps failing (a full disk) is not waited for
        // forever: after two command lifetimes one cut replica will do,
        // re-replication makes up the rest.
        let overdue = now.saturating_duration_since(since) >= 2 * self.cfg.copy_ttl;
        if done.len() >= want || (overdue && !done.is_empty()) {
            return TruncateStep::Commit(BlockInfo {
                id: t.target,
                gen: t.gen,
                len: t.len,
                sha256: Some(majority(&done)),
            });
        }
        if !self.leader {
            return TruncateStep::Waiting {
                asked: 0,
                done: done.len(),
            };
        }
        let ttl = self.cfg.copy_ttl;
        let mut asked = 0;
        for n in sources {
            let key = (t.target, n);
            let fresh = self
                .truncating
                .get(&key)
                .is_some_and(|at| now.saturating_duration_since(*at) < ttl);
            asked += 1;
            if fresh {
                continue;
            }
            self.truncating.insert(key, now);
            self.commands
                .entry(n)
                .or_default()
                .push(DatanodeCommand::Truncate {
                    source: t.source.clone(),
                    target: t.target,
                    gen: t.gen,
                    len: t.len,
                });
        }
        TruncateStep::Waiting {
            asked,
            done: done.len(),
        }
    }

    /// Forgets the commands sent for a truncation that was committed.
    pub fn truncate_done(&mut self, t: &Truncation) {
        self.truncating.retain(|(b, _), _| *b != t.target);
        self.truncate_since.remove(&t.target);
    }

    /// Nodes holding the cut block at the truncation's generation and
    /// length, with their digests.
    fn truncated_replicas(&self, t: &Truncation) -> Vec<(NodeIx, [u8; 32])> {
        let Some(e) = self.blocks.get(t.target).filter(|e| e.gen == t.gen) else {
            return Vec::new();
        };
        e.replicas
            .iter()
            .filter(|n| self.nodes.get(*n).can_source())
            .filter_map(|n| match self.blocks.open_replica(t.target, n) {
                Some((len, sha)) if len == t.len => Some((n, sha)),
                _ => None,
            })
            .collect()
    }
}

/// The digest most replicas agree on (they all cut the same bytes, so
/// they agree unless a disk lied; then the majority wins).
fn majority(done: &[(NodeIx, [u8; 32])]) -> [u8; 32] {
    let mut best = (0, [0u8; 32]);
    for (_, sha) in done {
        let n = done.iter().filter(|(_, s)| s == sha).count();
        if n > best.0 {
            best = (n, *sha);
        }
    }
    best.1
}
