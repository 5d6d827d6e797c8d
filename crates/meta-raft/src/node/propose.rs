//! The group-commit proposer and the batched read-index gate.

use super::{MetaNode, Reply};
use crate::config::defaults;
use crate::types::{BatchResult, NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::BasicNode;
use std::sync::Arc;
use tdfs_namespace::{Batch, Stamped};
use tdfs_proto::FsError;
use tdfs_rpc::Shutdown;
use tokio::sync::{mpsc, oneshot, Semaphore};

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

/// Group commit: drains whatever proposals are queued into one Raft entry,
/// keeping up to `MAX_INFLIGHT_BATCHES` entries in flight; while they are,
/// new proposals pile up and go out together in the next entry.
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
    let inflight = Arc::new(Semaphore::new(defaults::MAX_INFLIGHT_BATCHES));
    let mut held: Option<(Stamped, Reply)> = None;
    loop {
        let first = match held.take() {
            Some(p) => p,
            None => tokio::select! {
                _ = shutdown.wait() => return,
                p = rx.recv() => match p { Some(p) => p, None => return },
            },
        };
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let mut bytes = op_bytes(&first.0);
        let mut batch = vec![first];
        while batch.len() < defaults::MAX_BATCH {
            let Ok(p) = rx.try_recv() else { break };
            let b = op_bytes(&p.0);
            if bytes + b > defaults::MAX_BATCH_BYTES {
                held = Some(p);
                break;
            }
            bytes += b;
            batch.push(p);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (ops, replies): (Vec<Stamped>, Vec<Reply>) = batch.into_iter().unzip();
            match raft.client_write(Batch { ops }).await {
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
        });
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
