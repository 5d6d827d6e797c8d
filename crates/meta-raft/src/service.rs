//! The RPC handler of a metadata node: namespace operations for clients,
//! administration, Raft traffic between peers and read-index requests.

use crate::command::{AdminState, Op, OpKind};
use crate::data_ops::file_params;
use crate::network::serve_raft;
use crate::node::{now_ms, MetaNode};
use openraft::{BasicNode, ServerState};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_proto::ids::CallId;
use tdfs_proto::meta::{
    AccessMode, AdminRequest, AdminResponse, LocatedBlock, MetaRequest, MetaResponse, NodeState,
    Request, Response,
};
use tdfs_proto::FsError;
use tdfs_rpc::{Handler, Peer};

/// How long a block access token is valid: longer than a lease renewal
/// interval and than writing or reading one block takes; a reader whose
/// token expired asks for the block's locations again.
pub const BLOCK_TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Serves one metadata node's RPC port.
pub struct MetaService {
    node: Arc<MetaNode>,
}

impl MetaService {
    pub fn new(node: Arc<MetaNode>) -> Self {
        MetaService { node }
    }
}

fn require_peer(peer: &Peer) -> Result<(), FsError> {
    if peer.authenticated {
        Ok(())
    } else {
        Err(FsError::Unauthenticated(
            "this call needs the cluster key".into(),
        ))
    }
}

/// Executes a namespace operation on behalf of `user` exactly as tdfs's own
/// protocol does — leader check, read barrier, placement, leases, retry
/// cache, block tokens, metrics — so every protocol front end (tdfs RPC,
/// Hadoop IPC) is one mechanism with its own encoding.
pub async fn execute(
    node: &Arc<MetaNode>,
    user: String,
    call: Option<CallId>,
    op: MetaRequest,
) -> Result<MetaResponse, FsError> {
    let svc = MetaService::new(node.clone());
    let (name, t0) = (op.name(), Instant::now());
    let r = svc.meta(user.clone(), call, op).await;
    node.metrics.observe(name, t0.elapsed(), r.is_ok());
    let mut r = r?;
    svc.add_tokens(&user, &mut r);
    Ok(r)
}

impl Handler<Request, Response> for MetaService {
    async fn handle(&self, peer: &Peer, req: Request) -> Result<Response, FsError> {
        match req {
            Request::Ping => Ok(Response::Pong {
                id: self.node.config.id,
            }),
            Request::Meta { user, call, op } => execute(&self.node, user, call, op)
                .await
                .map(Response::Meta),
            Request::Admin(a) => {
                if !matches!(a, AdminRequest::NodeState | AdminRequest::Report) {
                    require_peer(peer)?;
                }
                self.admin(a).await.map(Response::Admin)
            }
            Request::Raft { kind, payload } => {
                require_peer(peer)?;
                serve_raft(&self.node.raft, kind, &payload)
                    .await
                    .map(Response::Raft)
            }
            Request::ReadIndex => {
                require_peer(peer)?;
                if !self.node.is_leader() {
                    return Err(FsError::NotLeader {
                        leader: self.node.leader_hint(),
                    });
                }
                self.node
                    .batched_read_index()
                    .await
                    .map(Response::ReadIndex)
            }
            Request::Datanode(d) => {
                require_peer(peer)?;
                self.node.datanode_request(d).await.map(Response::Datanode)
            }
        }
    }
}

impl MetaService {
    /// On a keyed cluster, gives every located block in `r` an access token
    /// for `user`: read tokens with block locations, write tokens with a new
    /// block or pipeline. The datanodes accept a caller without the key only
    /// with one.
    fn add_tokens(&self, user: &str, r: &mut MetaResponse) {
        let Some(key) = self.node.config.key.as_ref() else {
            return;
        };
        let expires = now_ms() + BLOCK_TOKEN_LIFETIME.as_millis() as u64;
        let token = |lb: &mut LocatedBlock, mode: AccessMode| {
            lb.token = Some(key.block_token(lb.block.id, lb.block.gen, mode, user, expires));
        };
        match r {
            MetaResponse::Blocks(bs) => {
                for lb in &mut bs.blocks {
                    token(lb, AccessMode::Read);
                }
            }
            MetaResponse::Block(lb) => token(lb, AccessMode::Write),
            MetaResponse::Appended { last: Some(lb), .. } => token(lb, AccessMode::Write),
            _ => {}
        }
    }

    async fn meta(
        &self,
        user: String,
        call: Option<CallId>,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        if user.is_empty() || user.len() > 255 {
            return Err(FsError::InvalidArgument(
                "user name must be 1..255 bytes".into(),
            ));
        }
        if op.is_mutation() {
            if !self.node.is_leader() {
                return Err(FsError::NotLeader {
                    leader: self.node.leader_hint(),
                });
            }
            self.mutate(user, call, op).await
        } else {
            self.node.read_barrier().await?;
            let mut r = {
                let st = self.node.sm.state.read().unwrap();
                st.ns.read(&user, &op)?
            };
            match (&op, &mut r) {
                (MetaRequest::GetBlockLocations { .. }, MetaResponse::Blocks(b)) => {
                    self.node.fill_locations(b)
                }
                (MetaRequest::Fsck { path }, MetaResponse::Fsck(f)) => {
                    self.node.fill_fsck(&user, path, f)?
                }
                _ => {}
            }
            Ok(r)
        }
    }

    /// A mutation on the leader: leases renewed, targets placed for new
    /// blocks, the last block known to be stored before a file closes.
    async fn mutate(
        &self,
        user: String,
        call: Option<CallId>,
        op: MetaRequest,
    ) -> Result<MetaResponse, FsError> {
        let node = &self.node;
        if let Some(c) = call {
            node.renew_lease(c.client);
        }
        let mut targets = Vec::new();
        let mut block_size = 0;
        match &op {
            MetaRequest::RenewLease => return Ok(MetaResponse::Done),
            MetaRequest::ReportBadReplica { block, node: dn } => {
                node.queue_verify(dn, *block);
                return Ok(MetaResponse::Done);
            }
            MetaRequest::AddBlock {
                path,
                previous,
                excluded,
            } => {
                let (repl, bs) = file_params(node, &user, path)?;
                if let Some(p) = previous {
                    self.require_reported(p.id, p.gen).await?;
                }
                targets = node.place(repl as usize, bs, excluded);
                if targets.is_empty() {
                    return Err(FsError::NoDatanodes(format!(
                        "no live datanode can take a block of {bs} bytes"
                    )));
                }
                block_size = bs;
            }
            MetaRequest::UpdatePipeline {
                path,
                keep,
                excluded,
                ..
            } => {
                let (repl, bs) = file_params(node, &user, path)?;
                targets = node.addrs_of(keep);
                let mut exclude = excluded.clone();
                exclude.extend(keep.iter().cloned());
                let more = (repl as usize).saturating_sub(targets.len());
                targets.extend(node.place(more, bs, &exclude));
                if targets.is_empty() {
                    return Err(FsError::NoDatanodes(format!(
                        "no live datanode can take a block of {bs} bytes"
                    )));
                }
                block_size = bs;
            }
            MetaRequest::Complete { last: Some(b), .. } => {
                self.require_reported(b.id, b.gen).await?;
            }
            _ => {}
        }
        let op = Op {
            user,
            call,
            now: now_ms(),
            kind: OpKind::Meta {
                req: op,
                targets: targets.clone(),
            },
        };
        let r = node.propose(op).await?;
        if let MetaResponse::Block(lb) = &r {
            node.note_intent(lb.block.id, &lb.locations, block_size);
        }
        Ok(r)
    }

    async fn require_reported(&self, block: u64, gen: u64) -> Result<(), FsError> {
        if self
            .node
            .wait_reported(block, gen, Duration::from_secs(5))
            .await
        {
            Ok(())
        } else {
            Err(FsError::Unavailable(format!(
                "no datanode has reported block {block} yet"
            )))
        }
    }

    async fn admin(&self, req: AdminRequest) -> Result<AdminResponse, FsError> {
        let node = &self.node;
        let decommission = matches!(req, AdminRequest::Decommission { .. });
        match req {
            AdminRequest::NodeState => Ok(AdminResponse::NodeState(self.node_state())),
            AdminRequest::AddMeta { id, addr } => {
                self.require_leader()?;
                node.raft
                    .add_learner(id, BasicNode::new(addr), true)
                    .await
                    .map_err(|e| FsError::Unavailable(format!("add learner {id}: {e}")))?;
                let mut voters = self.voters();
                voters.insert(id);
                node.raft
                    .change_membership(voters, false)
                    .await
                    .map_err(|e| FsError::Unavailable(format!("change membership: {e}")))?;
                Ok(AdminResponse::Done)
            }
            AdminRequest::RemoveMeta { id } => {
                self.require_leader()?;
                let mut voters = self.voters();
                if !voters.remove(&id) {
                    return Err(FsError::InvalidArgument(format!(
                        "metadata node {id} is not a voter"
                    )));
                }
                if voters.is_empty() {
                    return Err(FsError::InvalidArgument(
                        "cannot remove the last metadata node".into(),
                    ));
                }
                node.raft
                    .change_membership(voters, false)
                    .await
                    .map_err(|e| FsError::Unavailable(format!("change membership: {e}")))?;
                Ok(AdminResponse::Done)
            }
            AdminRequest::TransferLeader { id } => self.transfer_leader(id).await,
            AdminRequest::StartElection => {
                node.raft
                    .trigger()
                    .elect()
                    .await
                    .map_err(|e| FsError::Unavailable(e.to_string()))?;
                Ok(AdminResponse::Done)
            }
            AdminRequest::Report => {
                node.read_barrier().await?;
                Ok(AdminResponse::Report(node.report()))
            }
            AdminRequest::Balance {
                threshold_bp,
                wait_secs,
            } => {
                self.require_leader()?;
                let t = threshold_bp as f64 / 100.0;
                *node.balance_override.lock().unwrap() = Some(t);
                let deadline = Instant::now() + Duration::from_secs(wait_secs as u64);
                let mut moves = 0u64;
                let result = loop {
                    let (nodes, _) = crate::policy::snapshot(node, Instant::now());
                    let in_flight = node
                        .view
                        .lock()
                        .unwrap()
                        .replicating
                        .values()
                        .filter(|c| c.is_move)
                        .count() as u64;
                    moves = moves.max(in_flight);
                    if crate::balancer::balanced(&nodes, t / 100.0) && in_flight == 0 {
                        break true;
                    }
                    if Instant::now() >= deadline || !node.is_leader() {
                        break false;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                };
                *node.balance_override.lock().unwrap() = None;
                Ok(AdminResponse::Balanced {
                    balanced: result,
                    moves,
                })
            }
            AdminRequest::Decommission { id } | AdminRequest::Recommission { id } => {
                self.require_leader()?;
                let state = if decommission {
                    AdminState::Decommissioning
                } else {
                    AdminState::Normal
                };
                let op = node.system_op(OpKind::SetAdminState { id, state });
                node.propose(op).await?;
                Ok(AdminResponse::Done)
            }
        }
    }

    fn require_leader(&self) -> Result<(), FsError> {
        if self.node.is_leader() {
            Ok(())
        } else {
            Err(FsError::NotLeader {
                leader: self.node.leader_hint(),
            })
        }
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    fn node_state(&self) -> NodeState {
        let m = self.node.raft.metrics().borrow().clone();
        let mem = m.membership_config.membership();
        let addr_of = |id: &u64| mem.get_node(id).map(|n| n.addr.clone()).unwrap_or_default();
        let voters: Vec<(u64, String)> = mem.voter_ids().map(|id| (id, addr_of(&id))).collect();
        let learners: Vec<(u64, String)> = mem.learner_ids().map(|id| (id, addr_of(&id))).collect();
        let role = match m.state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Follower => "follower",
            ServerState::Shutdown => "shutdown",
        };
        NodeState {
            id: self.node.config.id,
            addr: self.node.config.addr.clone(),
            http: self.node.config.http.clone(),
            role: role.into(),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map(|l| l.index).unwrap_or(0),
            voters,
            learners,
        }
    }

    /// Hands leadership to `target`: stop heartbeats so the followers' leader
    /// lease runs out, then have the target start an election. Retried a few
    /// times, since another follower may time out first.
    async fn transfer_leader(&self, target: u64) -> Result<AdminResponse, FsError> {
        let node = &self.node;
        self.require_leader()?;
        if target == node.config.id {
            return Ok(AdminResponse::Done);
        }
        if !self.voters().contains(&target) {
            return Err(FsError::InvalidArgument(format!(
                "metadata node {target} is not a voter"
            )));
        }
        let addr = node
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&target)
            .map(|n| n.addr.clone())
            .ok_or_else(|| FsError::InvalidArgument(format!("no address for {target}")))?;
        let lease = Duration::from_millis(node.config.election_max_ms + 50);
        let deadline = Instant::now() + Duration::from_secs(10);
        node.raft.runtime_config().heartbeat(false);
        let result = async {
            while Instant::now() < deadline {
                tokio::time::sleep(lease).await;
                let conn = crate::network::pooled(
                    &node.pool,
                    &addr,
                    node.config.key.as_ref(),
                    Duration::from_secs(1),
                )
                .await
                .map_err(|e| e.into_fs())?;
                let _ = conn
                    .call(
                        Request::Admin(AdminRequest::StartElection),
                        Duration::from_secs(2),
                    )
                    .await;
                let wait_until = Instant::now() + Duration::from_millis(1500);
                while Instant::now() < wait_until {
                    let leader = node.raft.metrics().borrow().current_leader;
                    if leader == Some(target) {
                        return Ok(AdminResponse::Done);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if node.raft.metrics().borrow().current_leader == Some(node.config.id) {
                    continue;
                }
            }
            Err(FsError::Unavailable(format!(
                "leadership did not move to {target} in time"
            )))
        }
        .await;
        node.raft.runtime_config().heartbeat(true);
        result
    }
}
