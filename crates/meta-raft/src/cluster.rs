//! Soft state every metadata node keeps warm: where replicas are (from block
//! reports), which datanodes are alive and how full (from heartbeats), and,
//! on the leader, placement intents, leases and queued datanode commands.
//! None of it is replicated; it is rebuilt from reports after a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tdfs_proto::meta::{DatanodeCommand, DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, DatanodeId};

/// Liveness of a datanode as the metadata node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Live,
    /// Not heard from recently: no new blocks go to it.
    Stale,
    /// Gone for longer than the grace period: its replicas do not count.
    Dead,
}

impl Liveness {
    pub fn as_str(&self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Stale => "stale",
            Liveness::Dead => "dead",
        }
    }
}

/// Timing of liveness decisions.
#[derive(Clone, Copy, Debug)]
pub struct LivenessConfig {
    /// Silence after which a datanode is stale.
    pub stale_after: Duration,
    /// Silence after which a datanode is dead (the grace period).
    pub dead_after: Duration,
}

/// What the metadata node knows about one datanode.
#[derive(Clone, Debug)]
pub struct DnSoft {
    pub addr: String,
    pub http: Option<String>,
    /// HDFS DataTransferProtocol address, from registration.
    pub hdfs: Option<String>,
    pub usage: DatanodeUsage,
    pub last_contact: Instant,
    /// Whether a full block report arrived since this node last became leader.
    pub reported_this_term: bool,
    /// When gossip declared the node down (cleared when it is back up).
    pub gossip_down: Option<Instant>,
}

/// One replica's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaState {
    pub gen: u64,
    pub len: u64,
    pub sha256: [u8; 32],
}

/// The soft state of a metadata node.
#[derive(Debug, Default)]
pub struct ClusterView {
    pub datanodes: BTreeMap<DatanodeId, DnSoft>,
    /// Block → datanode → replica.
    pub replicas: HashMap<BlockId, BTreeMap<DatanodeId, ReplicaState>>,
    /// Bytes promised to each datanode by placements not yet reported:
    /// block → (node, bytes, when).
    pub intents: HashMap<BlockId, Vec<(DatanodeId, u64, Instant)>>,
    /// Writers' last lease renewal, by client id (leader only).
    pub leases: HashMap<u64, Instant>,
    /// Commands waiting for each datanode's next heartbeat (leader only).
    pub commands: HashMap<DatanodeId, Vec<DatanodeCommand>>,
    /// Deletions already sent, so they are not queued twice: (node, block).
    pub deleting: HashSet<(DatanodeId, BlockId)>,
    /// Copies in flight (re-replication and balancer moves), by block.
    pub replicating: HashMap<BlockId, Copy>,
    /// Replicas found corrupt (and deleted by their datanode), by block.
    pub corrupt: HashMap<BlockId, HashSet<DatanodeId>>,
}

/// A copy the leader asked for.
#[derive(Clone, Debug)]
pub struct Copy {
    pub source: DatanodeId,
    pub targets: Vec<DatanodeId>,
    pub since: Instant,
    /// A balancer move: the source's replica is expected to go.
    pub is_move: bool,
}

/// A copy not done by then is planned again.
pub const COPY_TTL: Duration = Duration::from_secs(20);

/// How long a placement intent is counted if the replica never shows up.
pub const INTENT_TTL: Duration = Duration::from_secs(600);

impl ClusterView {
    pub fn liveness(&self, id: &DatanodeId, cfg: &LivenessConfig, now: Instant) -> Liveness {
        match self.datanodes.get(id) {
            None => Liveness::Dead,
            // Gossip saw it go: stale at once, dead after the grace period.
            Some(DnSoft {
                gossip_down: Some(since),
                ..
            }) => {
                if now.saturating_duration_since(*since) >= cfg.dead_after {
                    Liveness::Dead
                } else {
                    Liveness::Stale
                }
            }
            Some(d) => {
                let quiet = now.saturating_duration_since(d.last_contact);
                if quiet >= cfg.dead_after {
                    Liveness::Dead
                } else if quiet >= cfg.stale_after {
                    Liveness::Stale
                } else {
                    Liveness::Live
                }
            }
        }
    }

    /// Gossip says `id` is down (`true`) or up again (`false`).
    pub fn gossip(&mut self, id: &DatanodeId, down: bool, now: Instant) {
        if let Some(d) = self.datanodes.get_mut(id) {
            if down {
                d.gossip_down.get_or_insert(now);
            } else {
                d.gossip_down = None;
                d.last_contact = now;
            }
        }
    }

    /// Usage spread by gossip.
    pub fn gossip_usage(&mut self, id: &DatanodeId, usage: DatanodeUsage) {
        if let Some(d) = self.datanodes.get_mut(id) {
            d.usage = usage;
        }
    }

    /// Records a heartbeat; returns false if the datanode is unknown here.
    pub fn heartbeat(&mut self, id: &DatanodeId, usage: DatanodeUsage, now: Instant) -> bool {
        match self.datanodes.get_mut(id) {
            Some(d) => {
                d.usage = usage;
                d.last_contact = now;
                true
            }
            None => false,
        }
    }

    pub fn register(
        &mut self,
        id: DatanodeId,
        (addr, http, hdfs): (String, Option<String>, Option<String>),
        now: Instant,
    ) {
        let d = self.datanodes.entry(id).or_insert_with(|| DnSoft {
            addr: addr.clone(),
            http: http.clone(),
            hdfs: hdfs.clone(),
            usage: DatanodeUsage::default(),
            last_contact: now,
            reported_this_term: false,
            gossip_down: None,
        });
        d.addr = addr;
        d.http = http;
        d.hdfs = hdfs;
        d.last_contact = now;
        // A datanode that registers is up, whatever gossip last said.
        d.gossip_down = None;
    }

    /// Replaces everything known about a datanode's replicas.
    pub fn full_report(&mut self, id: &DatanodeId, blocks: &[ReplicaReport], now: Instant) {
        for reps in self.replicas.values_mut() {
            reps.remove(id);
        }
        self.replicas.retain(|_, r| !r.is_empty());
        for b in blocks {
            self.add_replica(id, b);
        }
        if let Some(d) = self.datanodes.get_mut(id) {
            d.reported_this_term = true;
            d.last_contact = now;
        }
        self.deleting.retain(|(n, _)| n != id);
    }

    pub fn add_replica(&mut self, id: &DatanodeId, b: &ReplicaReport) {
        // A replica reported anew makes an earlier deletion order moot (the
        // policies order one again if this copy is also surplus or stale).
        self.deleting.remove(&(id.clone(), b.id));
        self.replicas.entry(b.id).or_default().insert(
            id.clone(),
            ReplicaState {
                gen: b.gen,
                len: b.len,
                sha256: b.sha256,
            },
        );
        if let Some(v) = self.intents.get_mut(&b.id) {
            v.retain(|(n, _, _)| n != id);
            if v.is_empty() {
                self.intents.remove(&b.id);
            }
        }
        if let Some(c) = self.replicating.get_mut(&b.id) {
            c.targets.retain(|t| t != id);
            if c.targets.is_empty() {
                self.replicating.remove(&b.id);
            }
        }
    }

    /// Replication streams each node takes part in now.
    pub fn streams(&self) -> HashMap<DatanodeId, usize> {
        let mut m = HashMap::new();
        for c in self.replicating.values() {
            *m.entry(c.source.clone()).or_default() += 1;
            for t in &c.targets {
                *m.entry(t.clone()).or_default() += 1;
            }
        }
        m
    }

    /// Forgets copies that did not finish in time.
    pub fn expire_copies(&mut self, now: Instant) {
        self.replicating
            .retain(|_, c| now.saturating_duration_since(c.since) < COPY_TTL);
    }

    pub fn remove_replica(&mut self, id: &DatanodeId, block: BlockId) {
        if let Some(r) = self.replicas.get_mut(&block) {
            r.remove(id);
            if r.is_empty() {
                self.replicas.remove(&block);
            }
        }
        self.deleting.remove(&(id.clone(), block));
    }

    /// Bytes promised to `id` and not yet reported.
    pub fn promised(&self, id: &DatanodeId, now: Instant) -> u64 {
        self.intents
            .values()
            .flatten()
            .filter(|(n, _, t)| n == id && now.saturating_duration_since(*t) < INTENT_TTL)
            .map(|(_, b, _)| *b)
            .sum()
    }

    pub fn add_intent(&mut self, block: BlockId, nodes: &[DatanodeId], bytes: u64, now: Instant) {
        let v = self.intents.entry(block).or_default();
        for n in nodes {
            v.push((n.clone(), bytes, now));
        }
    }

    /// Drops expired intents.
    pub fn expire_intents(&mut self, now: Instant) {
        for v in self.intents.values_mut() {
            v.retain(|(_, _, t)| now.saturating_duration_since(*t) < INTENT_TTL);
        }
        self.intents.retain(|_, v| !v.is_empty());
    }

    /// Replicas of `block` at generation `gen` on nodes that are not dead.
    pub fn good_replicas(
        &self,
        block: BlockId,
        gen: u64,
        cfg: &LivenessConfig,
        now: Instant,
    ) -> Vec<(DatanodeId, &ReplicaState)> {
        self.replicas
            .get(&block)
            .map(|r| {
                r.iter()
                    .filter(|(n, s)| s.gen == gen && self.liveness(n, cfg, now) != Liveness::Dead)
                    .map(|(n, s)| (n.clone(), s))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Queues deletion of `node`'s replica of `block` if its generation is
    /// at most `gen`, unless a deletion is already on its way.
    pub fn queue_delete(&mut self, node: &DatanodeId, block: BlockId, gen: u64) {
        if self.deleting.insert((node.clone(), block)) {
            let cmds = self.commands.entry(node.clone()).or_default();
            match cmds.iter_mut().find_map(|c| match c {
                DatanodeCommand::Delete { blocks } => Some(blocks),
                _ => None,
            }) {
                Some(blocks) => blocks.push((block, gen)),
                None => cmds.push(DatanodeCommand::Delete {
                    blocks: vec![(block, gen)],
                }),
            }
        }
    }

    /// Forgets per-term leader state when this node becomes leader.
    pub fn new_term(&mut self) {
        for d in self.datanodes.values_mut() {
            d.reported_this_term = false;
        }
        self.commands.clear();
        self.deleting.clear();
        self.leases.clear();
        self.replicating.clear();
    }
}
