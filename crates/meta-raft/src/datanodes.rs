//! The datanode protocol on a metadata node: registration, paged full
//! reports, incremental reports, and the long poll through which the
//! leader hands out commands — fenced by its term, and sent only after it
//! confirmed with a quorum that it still leads when they destroy or move
//! data.

use crate::node::MetaNode;
use std::time::Duration;
use tdfs_namespace::LogOp;
use tdfs_policy::ClusterState;
use tdfs_proto::meta::{DatanodeRequest, DatanodeResponse};
use tdfs_proto::{DatanodeId, FsError};

/// Longest a poll is held.
pub const MAX_POLL: Duration = Duration::from_secs(30);
/// The user named in the leader's tokens for replication and balancer copies.
pub const COPY_USER: &str = "tdfs-replication";

impl MetaNode {
    /// Serves one datanode request.
    pub async fn datanode_request(
        &self,
        req: DatanodeRequest,
    ) -> Result<DatanodeResponse, FsError> {
        let core = self.core();
        let now = core.now();
        match req {
            DatanodeRequest::Register {
                id,
                addr,
                http,
                hdfs,
            } => {
                // A process registering anew: polls its predecessor left
                // behind must not take its commands.
                core.renew_poll(&id);
                core.view(|v| v.register(&id, &addr, http.as_deref(), hdfs.as_deref(), now));
                if self.is_leader() {
                    let known = core.ns(|r| {
                        r.ns.datanodes()
                            .get(&id)
                            .is_some_and(|d| d.addr == addr && d.http == http && d.hdfs == hdfs)
                    });
                    if !known {
                        let op = LogOp::RegisterDatanode {
                            id,
                            addr,
                            http,
                            hdfs,
                        };
                        self.propose_system(op).await?;
                    }
                }
                Ok(DatanodeResponse::Ok)
            }
            DatanodeRequest::FullReport {
                id,
                usage,
                report,
                page,
                hi,
                last,
                blocks,
                quarantined,
            } => {
                let next = core.ns(|r| r.ns.next_block_id());
                let ok = core.view(|v| {
                    v.next_block = v.next_block.max(next);
                    v.usage(&id, usage);
                    v.report_page(&id, report, page, hi, &blocks, &quarantined, last, now)
                });
                core.reported.notify_waiters();
                Ok(if ok {
                    DatanodeResponse::Ok
                } else {
                    DatanodeResponse::Reregister
                })
            }
            DatanodeRequest::IncrementalReport {
                id,
                added,
                removed,
                corrupt,
            } => {
                for (b, g) in &corrupt {
                    tracing::warn!(fault = "peer", peer = %id, "datanode quarantined its replica of block {b} (generation {g})");
                }
                let ok = core.view(|v| v.incremental(&id, &added, &removed, &corrupt, now));
                core.reported.notify_waiters();
                Ok(if ok {
                    DatanodeResponse::Ok
                } else {
                    DatanodeResponse::Reregister
                })
            }
            DatanodeRequest::Poll { id, usage, wait_ms } => {
                let known = core.view(|v| {
                    v.usage(&id, usage);
                    v.contact(&id, now)
                });
                if !known {
                    return Ok(DatanodeResponse::Reregister);
                }
                self.poll(&id, Duration::from_millis(wait_ms as u64).min(MAX_POLL))
                    .await
            }
        }
    }

    /// Holds a datanode's poll until this node, ready to lead, has commands
    /// for it, or `wait` runs out.
    async fn poll(&self, id: &DatanodeId, wait: Duration) -> Result<DatanodeResponse, FsError> {
        let core = self.core();
        let deadline = tokio::time::Instant::now() + wait;
        let mine = core.renew_poll(id);
        loop {
            let notified = core.commands.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !core.current_poll(id, mine) {
                // Superseded: a newer poll or registration of this datanode
                // takes what is queued for it.
                return Ok(DatanodeResponse::Ok);
            }
            if self.leader_ready() {
                // A leader wants every datanode in its registry and a full
                // report from each in its term before it deletes anything.
                let registered = core.ns(|r| r.ns.datanodes().contains_key(id));
                let reported =
                    core.view(|v| v.nodes.by_id(id).is_some_and(|n| n.reported_this_term));
                if !registered || !reported {
                    return Ok(DatanodeResponse::Reregister);
                }
                let cmds = core.view(|v| v.take_commands(id));
                if !cmds.is_empty() {
                    return self.send_commands(id, cmds).await;
                }
                if let Some(term) = self.announce_term(id) {
                    return Ok(DatanodeResponse::Commands {
                        term,
                        commands: Vec::new(),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(DatanodeResponse::Ok);
            }
        }
    }

    /// This leader's term, if `id` has not been told of it yet: an empty
    /// command batch raises the datanode's fence, so that a deposed leader
    /// is refused by every datanode, not only by those given work since.
    fn announce_term(&self, id: &DatanodeId) -> Option<u64> {
        let term = *self.ready_term().borrow();
        let mut told = self
            .core()
            .announced
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let last = told.entry(id.clone()).or_default();
        (*last < term).then(|| {
            *last = term;
            term
        })
    }

    /// Confirms leadership when the commands destroy or move data, then
    /// answers them with the confirmed term. On failure they go back to
    /// the queue (if this node still leads) and the poll answers nothing.
    async fn send_commands(
        &self,
        id: &DatanodeId,
        cmds: Vec<tdfs_proto::meta::DatanodeCommand>,
    ) -> Result<DatanodeResponse, FsError> {
        let term = if ClusterState::commands_are_destructive(&cmds) {
            match self.confirm_leadership().await {
                Ok((_, term)) => term,
                Err(e) => {
                    tracing::info!("not sending commands to {id}: leadership unconfirmed ({e})");
                    self.core().view(|v| v.requeue_commands(id, cmds));
                    return Ok(DatanodeResponse::Ok);
                }
            }
        } else {
            self.raft().metrics().borrow().current_term
        };
        if *self.ready_term().borrow() != term {
            // Leadership changed while confirming: these were decided in
            // another term.
            return Ok(DatanodeResponse::Ok);
        }
        Ok(DatanodeResponse::Commands {
            term,
            commands: self.with_copy_tokens(cmds),
        })
    }

    /// On a keyed cluster, gives every `Replicate` the leader's write token
    /// for its targets: the receiving datanodes check it as they check a
    /// client's, so a datanode copies a block only where the leader said.
    fn with_copy_tokens(
        &self,
        mut cmds: Vec<tdfs_proto::meta::DatanodeCommand>,
    ) -> Vec<tdfs_proto::meta::DatanodeCommand> {
        let Some(key) = self.config().key.as_ref() else {
            return cmds;
        };
        let expires = self.core().wall_ms() + crate::ops::BLOCK_TOKEN_LIFETIME.as_millis() as u64;
        for c in &mut cmds {
            if let tdfs_proto::meta::DatanodeCommand::Replicate {
                block,
                targets,
                token,
            } = c
            {
                let pipeline = targets.iter().map(|a| a.id.clone()).collect();
                *token = Some(key.write_token(block.id, block.gen, COPY_USER, expires, pipeline));
            }
        }
        cmds
    }

    /// The leader's confirmation through a read index. The failpoint
    /// `meta::skip-leader-confirm` skips it, as a leader that confirmed just
    /// before it was cut off would: tests use it to show that the
    /// datanodes' term fence alone stops a deposed leader.
    async fn confirm_leadership(&self) -> Result<(u64, u64), FsError> {
        fail::fail_point!("meta::skip-leader-confirm", |_| {
            Ok((0, *self.ready_term().borrow()))
        });
        self.leader_read_index().await
    }

    /// Waits until some datanode has reported a finalized replica of
    /// `block` at `gen` (the pipeline's acks precede the reports by a
    /// moment).
    pub async fn wait_reported(&self, block: u64, gen: u64, timeout: Duration) -> bool {
        let core = self.core();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = core.reported.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if core.view(|v| v.reported(block, gen)) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }
}
