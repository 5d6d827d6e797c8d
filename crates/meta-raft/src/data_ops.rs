//! The metadata node's side of the data path: placement of new blocks,
//! replica locations for readers, block health for fsck, the datanode
//! protocol (registration, heartbeats, block reports) and writers' leases.

use crate::cluster::Liveness;
use crate::command::OpKind;
use crate::namespace::Body;
use crate::node::MetaNode;
use crate::placement::{choose_targets, Candidate};
use crate::policy::leader_ready;
use rand::Rng;
use std::time::{Duration, Instant};
use tdfs_proto::meta::{
    ClusterReport, DatanodeAddr, DatanodeReport, DatanodeRequest, DatanodeResponse, FsckReport,
    LocatedBlocks,
};
use tdfs_proto::{path, BlockId, DatanodeId, FsError};

/// Files named in an fsck report at most.
const MAX_BAD_FILES: usize = 100;

impl MetaNode {
    /// Picks up to `n` datanodes for a new replica of `block_size` bytes:
    /// live, in normal admin state, not excluded, by available space net of
    /// what is already promised to them.
    pub fn place(&self, n: usize, block_size: u64, exclude: &[DatanodeId]) -> Vec<DatanodeAddr> {
        let now = Instant::now();
        let st = self.sm.state.read().unwrap();
        let v = self.view.lock().unwrap();
        let candidates: Vec<Candidate> = v
            .datanodes
            .iter()
            .filter(|(id, _)| !exclude.contains(id))
            .filter(|(id, _)| v.liveness(id, &self.liveness, now) == Liveness::Live)
            .filter(|(id, _)| {
                st.ns
                    .datanodes
                    .get(*id)
                    .is_some_and(|r| r.admin == crate::command::AdminState::Normal)
            })
            .map(|(id, d)| {
                let free = d
                    .usage
                    .capacity
                    .saturating_sub(d.usage.used + d.usage.pending);
                Candidate {
                    id: id.clone(),
                    available: free.saturating_sub(v.promised(id, now)),
                }
            })
            .collect();
        let mut rng = rand::thread_rng();
        let chosen = choose_targets(&candidates, n, block_size, &mut || rng.gen::<f64>());
        chosen
            .into_iter()
            .filter_map(|id| {
                let d = v.datanodes.get(&id)?;
                Some(DatanodeAddr {
                    addr: d.addr.clone(),
                    http: d.http.clone(),
                    id,
                })
            })
            .collect()
    }

    /// Addresses of known datanodes (for a pipeline's kept nodes).
    pub fn addrs_of(&self, ids: &[DatanodeId]) -> Vec<DatanodeAddr> {
        let v = self.view.lock().unwrap();
        ids.iter()
            .filter_map(|id| {
                let d = v.datanodes.get(id)?;
                Some(DatanodeAddr {
                    id: id.clone(),
                    addr: d.addr.clone(),
                    http: d.http.clone(),
                })
            })
            .collect()
    }

    /// Records placement intents for a freshly allocated block.
    pub fn note_intent(&self, block: BlockId, targets: &[DatanodeAddr], bytes: u64) {
        let ids: Vec<DatanodeId> = targets.iter().map(|t| t.id.clone()).collect();
        self.view
            .lock()
            .unwrap()
            .add_intent(block, &ids, bytes, Instant::now());
    }

    /// Fills each block's replicas, live ones first, shuffled among equals
    /// so readers spread over the replicas.
    pub fn fill_locations(&self, blocks: &mut LocatedBlocks) {
        let now = Instant::now();
        let v = self.view.lock().unwrap();
        let mut rng = rand::thread_rng();
        for lb in &mut blocks.blocks {
            let mut reps: Vec<(u8, u32, DatanodeAddr)> = v
                .good_replicas(lb.block.id, lb.block.gen, &self.liveness, now)
                .into_iter()
                .filter_map(|(id, _)| {
                    let d = v.datanodes.get(&id)?;
                    let rank = match v.liveness(&id, &self.liveness, now) {
                        Liveness::Live => 0,
                        _ => 1,
                    };
                    Some((
                        rank,
                        rng.gen::<u32>(),
                        DatanodeAddr {
                            id,
                            addr: d.addr.clone(),
                            http: d.http.clone(),
                        },
                    ))
                })
                .collect();
            reps.sort_by_key(|(r, k, _)| (*r, *k));
            lb.locations = reps.into_iter().map(|(_, _, a)| a).collect();
        }
    }

    /// Adds block health (under/over-replicated, missing) to a namespace fsck.
    pub fn fill_fsck(&self, user: &str, p: &str, report: &mut FsckReport) -> Result<(), FsError> {
        let now = Instant::now();
        let st = self.sm.state.read().unwrap();
        let v = self.view.lock().unwrap();
        let root = st.ns.lookup(user, p)?;
        let mut files = Vec::new();
        st.ns.walk(root, &mut |ino| {
            if let Body::File(_) = &ino.body {
                files.push(ino.id);
            }
        });
        for id in files {
            let Body::File(f) = &st.ns.inodes[&id].body else {
                continue;
            };
            let mut bad = false;
            for b in &f.blocks {
                if !b.committed {
                    continue;
                }
                let live = v.good_replicas(b.id, b.gen, &self.liveness, now).len();
                if live == 0 && v.corrupt.contains_key(&b.id) {
                    report.corrupt += 1;
                    bad = true;
                } else if live == 0 {
                    report.missing += 1;
                    bad = true;
                } else if live < f.replication as usize {
                    report.under_replicated += 1;
                } else if live > f.replication as usize {
                    report.over_replicated += 1;
                }
            }
            if bad && report.bad_files.len() < MAX_BAD_FILES {
                report.bad_files.push(st.ns.path_of(id));
            }
        }
        Ok(())
    }

    /// The datanode table for `dfsadmin -report`.
    pub fn report(&self) -> ClusterReport {
        let now = Instant::now();
        let st = self.sm.state.read().unwrap();
        let v = self.view.lock().unwrap();
        let datanodes = st
            .ns
            .datanodes
            .iter()
            .map(|(id, r)| {
                let soft = v.datanodes.get(id);
                let usage = soft.map(|d| d.usage).unwrap_or_default();
                DatanodeReport {
                    id: id.clone(),
                    addr: r.addr.clone(),
                    http: r.http.clone(),
                    hdfs: soft.and_then(|d| d.hdfs.clone()),
                    state: v.liveness(id, &self.liveness, now).as_str().into(),
                    admin_state: r.admin.as_str().into(),
                    capacity: usage.capacity,
                    used: usage.used,
                    remaining: usage.capacity.saturating_sub(usage.used + usage.pending),
                    blocks: usage.blocks,
                    last_contact_ms: soft
                        .map(|d| now.saturating_duration_since(d.last_contact).as_millis() as u64)
                        .unwrap_or(u64::MAX),
                }
            })
            .collect();
        ClusterReport {
            leader: self.raft.metrics().borrow().current_leader,
            datanodes,
        }
    }

    /// Asks a datanode to re-verify a replica at its next heartbeat.
    pub fn queue_verify(&self, node: &DatanodeId, block: BlockId) {
        let mut v = self.view.lock().unwrap();
        let cmds = v.commands.entry(node.clone()).or_default();
        match cmds.iter_mut().find_map(|c| match c {
            tdfs_proto::meta::DatanodeCommand::Verify { blocks } => Some(blocks),
            _ => None,
        }) {
            Some(blocks) if !blocks.contains(&block) => blocks.push(block),
            Some(_) => {}
            None => cmds.push(tdfs_proto::meta::DatanodeCommand::Verify {
                blocks: vec![block],
            }),
        }
    }

    /// Marks a writer's lease as renewed (leader soft state).
    pub fn renew_lease(&self, holder: u64) {
        self.view
            .lock()
            .unwrap()
            .leases
            .insert(holder, Instant::now());
    }

    /// Waits until some datanode has reported a finalized replica of `block`
    /// at `gen` (the pipeline's acks precede the reports by a moment).
    pub async fn wait_reported(&self, block: BlockId, gen: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let found = {
                let v = self.view.lock().unwrap();
                v.replicas
                    .get(&block)
                    .is_some_and(|r| r.values().any(|s| s.gen == gen))
            };
            if found {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Serves the datanode protocol. Every metadata node keeps the soft
    /// state; only the leader records registrations and hands out commands.
    pub async fn datanode_request(
        &self,
        req: DatanodeRequest,
    ) -> Result<DatanodeResponse, FsError> {
        let now = Instant::now();
        let id = match &req {
            DatanodeRequest::Register {
                id,
                addr,
                http,
                hdfs,
            } => {
                let addrs = (addr.clone(), http.clone(), hdfs.clone());
                self.view.lock().unwrap().register(id.clone(), addrs, now);
                if self.is_leader() {
                    let known = {
                        let st = self.sm.state.read().unwrap();
                        st.ns
                            .datanodes
                            .get(id)
                            .is_some_and(|r| r.addr == *addr && r.http == *http)
                    };
                    if !known {
                        let op = self.system_op(OpKind::RegisterDatanode {
                            id: id.clone(),
                            addr: addr.clone(),
                            http: http.clone(),
                        });
                        self.propose(op).await?;
                    }
                }
                return Ok(DatanodeResponse::Ok {
                    commands: Vec::new(),
                });
            }
            DatanodeRequest::Heartbeat { id, usage } => {
                if !self.view.lock().unwrap().heartbeat(id, *usage, now) {
                    return Ok(DatanodeResponse::Reregister);
                }
                id
            }
            DatanodeRequest::FullReport { id, usage, blocks } => {
                let mut v = self.view.lock().unwrap();
                if !v.heartbeat(id, *usage, now) {
                    return Ok(DatanodeResponse::Reregister);
                }
                v.full_report(id, blocks, now);
                id
            }
            DatanodeRequest::IncrementalReport {
                id,
                added,
                removed,
                corrupt,
            } => {
                let mut v = self.view.lock().unwrap();
                if !v.datanodes.contains_key(id) {
                    return Ok(DatanodeResponse::Reregister);
                }
                for b in added {
                    v.add_replica(id, b);
                }
                for b in removed.iter().chain(corrupt) {
                    v.remove_replica(id, *b);
                }
                for b in corrupt {
                    tracing::warn!("datanode {id} found its replica of block {b} corrupt");
                    v.corrupt.entry(*b).or_default().insert(id.clone());
                }
                if let Some(d) = v.datanodes.get_mut(id) {
                    d.last_contact = now;
                }
                id
            }
        };
        // A leader wants every datanode in its registry (a registration may
        // have reached it just before it became leader) and a full report
        // from each in its term before it deletes anything: ask for both.
        if self.is_leader() {
            let registered = self.sm.state.read().unwrap().ns.datanodes.contains_key(id);
            let reported = self
                .view
                .lock()
                .unwrap()
                .datanodes
                .get(id)
                .is_some_and(|d| d.reported_this_term);
            if !registered || !reported {
                return Ok(DatanodeResponse::Reregister);
            }
        }
        let commands = if leader_ready(self) {
            self.view
                .lock()
                .unwrap()
                .commands
                .remove(id)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(DatanodeResponse::Ok { commands })
    }
}

/// The replication and block size of the file at `p`.
pub fn file_params(node: &MetaNode, user: &str, p: &str) -> Result<(u16, u64), FsError> {
    let st = node.sm.state.read().unwrap();
    let id = st.ns.lookup(user, p)?;
    match &st.ns.inodes[&id].body {
        Body::File(f) => Ok((f.replication, f.block_size)),
        Body::Dir { .. } => Err(FsError::IsADirectory(path::normalize(p)?)),
    }
}
