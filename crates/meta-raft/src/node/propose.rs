//! The group-commit proposer and the batched read-index gate.

use super::{MetaNode, Reply};
use crate::config::defaults;
use crate::types::{BatchResult, NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use std::collections::VecDeque;
use std::sync::Arc;
use tdfs_namespace::{Batch, Stamped};
use tdfs_proto::FsError;
use tdfs_rpc::Shutdown;
use tokio::sync::{mpsc, oneshot};

/// Maps a failed `client_write` to a wire error.
pub fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> FsError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => FsError::NotLeader {
            leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => {
            FsError::InvalidArgument(c.to_string())
        }
        RaftError::Fatal(f) => FsError::Unavailable(format!("raft stopped: {f}")),
    }
}

/// Group commit at the leader: concurrent proposals are coalesced into one
/// Raft entry (a [`Batch`], applied as its parts, each with its own retry
/// cache entry and result).
///
/// How many entries may be in flight at once is what sets the write rate.
/// openraft 0.9's core appends an entry and *waits for the log's fsync*
/// before it does anything else (`RaftCore::append_to_log`), and it starts
/// replicating the entry only after that; each `client_write` waiting in
/// its queue therefore costs one fsync of the leader in series. With eight
/// entries in flight, 64 concurrent writers became eight entries of about
/// eight operations, each behind the others' fsyncs: mkdir waited about
/// four fsyncs (3,500/s with fdatasync at 4 ms). So one entry is in flight:
/// everything that arrives while it is fsynced, replicated and applied
/// goes out together in the next (measured in docs/benchmarks.md,
/// "Metadata service"). A further entry (up to
/// [`defaults::MAX_INFLIGHT_BATCHES`]) is only sent when the queue already
/// holds a full one (more writers than one entry carries), so it never
/// leaves the next entry half empty.
/// Proposals waiting for an entry, with their encoded sizes.
#[derive(Default)]
struct Queue {
    items: VecDeque<(Stamped, Reply, usize)>,
    bytes: usize,
}

impl Queue {
    fn push(&mut self, p: (Stamped, Reply)) {
        let b = op_bytes(&p.0);
        self.bytes += b;
        self.items.push_back((p.0, p.1, b));
    }

    /// Whether the next entry would be cut by a cap (count or bytes).
    fn holds_a_full_entry(&self) -> bool {
        self.items.len() >= defaults::MAX_BATCH || self.bytes >= defaults::MAX_BATCH_BYTES
    }

    /// The next entry: proposals in arrival order up to the caps (at least
    /// one, however large: an operation over the byte cap goes alone).
    fn take_entry(&mut self) -> Vec<(Stamped, Reply)> {
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some((_, _, b)) = self.items.front() {
            if !out.is_empty()
                && (out.len() >= defaults::MAX_BATCH || bytes + b > defaults::MAX_BATCH_BYTES)
            {
                break;
            }
            let (s, r, b) = self.items.pop_front().expect("front exists");
            bytes += b;
            self.bytes -= b;
            out.push((s, r));
        }
        out
    }
}

/// Whether another entry may go out now, with `in_flight` entries not yet
/// answered.
fn may_send(q: &Queue, in_flight: usize) -> bool {
    !q.items.is_empty()
        && (in_flight == 0
            || (in_flight < defaults::MAX_INFLIGHT_BATCHES && q.holds_a_full_entry()))
}

/// Runs the proposer until shutdown or until every sender is gone.
///
/// An entry is capped by count (`MAX_BATCH`) and by its operations' encoded
/// bytes (`MAX_BATCH_BYTES`), so that `max_payload_entries` of them always
/// fit in one AppendEntries frame: a follower that lags behind large
/// entries (long names, xattr values) can always catch up.
pub(super) async fn proposer(
    raft: Raft,
    mut rx: mpsc::Receiver<(Stamped, Reply)>,
    mut shutdown: Shutdown,
) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let mut queue = Queue::default();
    let mut in_flight = 0usize;
    let mut open = true;
    loop {
        while may_send(&queue, in_flight) {
            let entry = queue.take_entry();
            in_flight += 1;
            tokio::spawn(commit(raft.clone(), entry, done_tx.clone()));
        }
        if !open && queue.items.is_empty() {
            return;
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            p = rx.recv(), if open => match p {
                Some(p) => {
                    queue.push(p);
                    // Take everything already queued before deciding.
                    while let Ok(p) = rx.try_recv() {
                        queue.push(p);
                    }
                }
                None => open = false,
            },
            Some(()) = done_rx.recv() => in_flight -= 1,
        }
    }
}

/// Writes one entry through Raft and answers each of its proposals.
async fn commit(raft: Raft, entry: Vec<(Stamped, Reply)>, done: mpsc::UnboundedSender<()>) {
    let (ops, replies): (Vec<Stamped>, Vec<Reply>) = entry.into_iter().unzip();
    let r = raft.client_write(Batch { ops }).await;
    // The next entry may go before the replies are sent.
    let _ = done.send(());
    match r {
        Ok(resp) => {
            let results: BatchResult = resp.data;
            for (tx, r) in replies.into_iter().zip(results) {
                let _ = tx.send(r);
            }
        }
        Err(e) => {
            let e = write_error(e);
            for tx in replies {
                let _ = tx.send(Err(e.clone()));
            }
        }
    }
}

/// The encoded size of one operation in a log entry.
fn op_bytes(op: &Stamped) -> usize {
    let mut w = bincode::enc::write::SizeWriter::default();
    match bincode::serde::encode_into_writer(op, &mut w, bincode::config::standard()) {
        Ok(()) => w.bytes_written,
        // Cannot be encoded: it fails alone, in an entry of its own.
        Err(_) => defaults::MAX_BATCH_BYTES,
    }
}

/// Batches read-index requests: one leadership confirmation serves every
/// reader that arrived before it started.
pub(super) async fn read_gate(
    node: Arc<MetaNode>,
    mut rx: mpsc::Receiver<oneshot::Sender<Result<u64, FsError>>>,
    mut shutdown: Shutdown,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.wait() => return,
            w = rx.recv() => match w { Some(w) => w, None => return },
        };
        let mut waiters = vec![first];
        while let Ok(w) = rx.try_recv() {
            waiters.push(w);
        }
        let r = node.obtain_read_index().await;
        for w in waiters {
            let _ = w.send(r.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_namespace::{LogOp, Stamp};

    fn queue_of(sizes: &[usize]) -> Queue {
        let mut q = Queue::default();
        for &n in sizes {
            let op = LogOp::Mkdirs {
                path: format!("/{}", "x".repeat(n)),
                mode: 0o755,
                parents: false,
            };
            let stamp = Stamp {
                user: "u".into(),
                call: None,
                now: 0,
                tick: 0,
            };
            q.push((Stamped { stamp, op }, oneshot::channel().0));
        }
        q
    }

    #[test]
    fn one_entry_in_flight_unless_a_full_one_waits() {
        let small = queue_of(&[10; 64]);
        assert!(may_send(&small, 0));
        assert!(
            !may_send(&small, 1),
            "64 small ops wait for the entry in flight"
        );
        let many = queue_of(&[10; defaults::MAX_BATCH + 1]);
        assert!(may_send(&many, 1));
        assert!(may_send(&many, defaults::MAX_INFLIGHT_BATCHES - 1));
        assert!(!may_send(&many, defaults::MAX_INFLIGHT_BATCHES));
        assert!(!may_send(&Queue::default(), 0));
    }

    #[test]
    fn entries_are_cut_by_count_and_bytes_and_a_huge_op_goes_alone() {
        let mut q = queue_of(&[10; defaults::MAX_BATCH + 3]);
        assert_eq!(q.take_entry().len(), defaults::MAX_BATCH);
        assert_eq!(q.take_entry().len(), 3);
        assert_eq!(q.bytes, 0);
        let big = defaults::MAX_BATCH_BYTES / 3;
        let mut q = queue_of(&[big, big, big, 10]);
        assert_eq!(q.take_entry().len(), 2);
        assert_eq!(q.take_entry().len(), 2);
        let mut q = queue_of(&[defaults::MAX_BATCH_BYTES * 2, 10]);
        assert_eq!(q.take_entry().len(), 1);
        assert_eq!(q.take_entry().len(), 1);
        assert!(q.items.is_empty());
    }
}
