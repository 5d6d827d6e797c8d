//! Deletions the leader asked for and has not seen done.
//!
//! A `Delete` command travels in the answer to a datanode's poll; if that
//! answer is lost (the connection died as it was written, the process was
//! killed after taking it) nothing reports the replica gone, and without a
//! deadline the deletion would stay "in flight" until the node's next full
//! report: the surplus replica kept, its bytes subtracted from the node's
//! predicted load. So each deletion has a deadline (`copy_ttl`, the time any
//! datanode command is given to show its effect): past it, the same
//! deletion (same node, block and generation) is sent again. Deleting is
//! idempotent on the datanode, so a resend is safe whatever happened to the
//! first one; it never chooses another replica.

use super::{ClusterState, NodeIx};
use std::time::Instant;
use tdfs_proto::meta::DatanodeCommand;
use tdfs_proto::BlockId;

/// One deletion in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deleting {
    /// Bytes it will free (subtracted from the node's predicted load).
    pub bytes: u64,
    /// The generation up to which the replica is to go.
    pub gen: u64,
    /// Tells this deletion from an earlier one of the same replica in the
    /// deadline queue.
    pub seq: u64,
}

/// A deletion's deadline: `(since, seq, node, block)`; `since` is `None`
/// when it was queued before the first round gave a time.
pub(crate) type Deadline = (Option<Instant>, u64, NodeIx, BlockId);

impl ClusterState {
    /// Records a deletion and queues its command (leader only).
    pub(crate) fn delete_replica(&mut self, n: NodeIx, block: BlockId, gen: u64, bytes: u64) {
        if !self.leader || self.deleting.contains_key(&(n, block)) {
            return;
        }
        self.delete_seq += 1;
        let seq = self.delete_seq;
        self.deleting
            .insert((n, block), Deleting { bytes, gen, seq });
        self.delete_deadlines
            .push_back((self.last_round, seq, n, block));
        self.nodes.get_mut(n).deleting += bytes;
        // Not in flight, so not queued: no need to look.
        self.queue_delete(n, block, gen, false);
    }

    /// Adds `(block, gen)` to `n`'s queued `Delete` command; with `dedup`,
    /// only if that command does not name `block` yet.
    fn queue_delete(&mut self, n: NodeIx, block: BlockId, gen: u64, dedup: bool) {
        let cmds = self.commands.entry(n).or_default();
        match cmds.iter_mut().find_map(|c| match c {
            DatanodeCommand::Delete { blocks } => Some(blocks),
            _ => None,
        }) {
            Some(blocks) => {
                if !dedup || !blocks.iter().any(|(b, _)| *b == block) {
                    blocks.push((block, gen));
                }
            }
            None => cmds.push(DatanodeCommand::Delete {
                blocks: vec![(block, gen)],
            }),
        }
    }

    /// A deletion seen done (or made moot): forgets it and its bytes.
    pub(crate) fn deletion_done(&mut self, n: NodeIx, block: BlockId) {
        if let Some(d) = self.deleting.remove(&(n, block)) {
            let node = self.nodes.get_mut(n);
            node.deleting = node.deleting.saturating_sub(d.bytes);
        }
    }

    /// Sends again every deletion past its deadline; returns how many.
    /// Costs the deletions that expire, not those in flight.
    pub(crate) fn resend_deletions(&mut self, now: Instant) -> usize {
        let ttl = self.cfg.copy_ttl;
        let mut resent = 0;
        while let Some(&(since, seq, n, block)) = self.delete_deadlines.front() {
            let live = self
                .deleting
                .get(&(n, block))
                .filter(|d| d.seq == seq)
                .copied();
            let Some(d) = live else {
                self.delete_deadlines.pop_front();
                continue;
            };
            match since {
                None => {
                    // Queued before any round: its clock starts now.
                    self.delete_deadlines.front_mut().expect("front").0 = Some(now);
                    break;
                }
                Some(s) if now.saturating_duration_since(s) < ttl => break,
                Some(_) => {}
            }
            self.delete_deadlines.pop_front();
            self.queue_delete(n, block, d.gen, true);
            self.delete_deadlines.push_back((Some(now), seq, n, block));
            resent += 1;
        }
        resent
    }
}
