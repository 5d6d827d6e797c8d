//! Configuration of a metadata node, with defaults in one place.

use std::collections::BTreeMap;
use std::path::PathBuf;
use tdfs_rpc::ClusterKey;

/// Named defaults shared by the daemon's flags, its config file and tests.
pub mod defaults {
    /// Raft heartbeat interval.
    pub const HEARTBEAT_MS: u64 = 50;
    /// Election timeout range. A follower refuses to vote while its leader
    /// lease (the max timeout) runs, so a killed leader is replaced after
    /// the lease plus one timeout: 300-400 ms with these values.
    pub const ELECTION_MIN_MS: u64 = 100;
    pub const ELECTION_MAX_MS: u64 = 200;
    /// Take a snapshot (and compact the log) after this many entries.
    pub const SNAPSHOT_LOGS: u64 = 5000;
    /// Take a snapshot once the log after the last one holds this many
    /// bytes (whichever of the two limits comes first).
    pub const SNAPSHOT_LOG_BYTES: u64 = 64 << 20;
    /// How long one `InstallSnapshot` chunk may take to be answered. The
    /// answer to the last one waits for the follower to check, decode and
    /// install the whole snapshot (about 7 s for 10 million files), so
    /// this is far above a 4 MiB chunk's transfer time.
    pub const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 60_000;
    /// Operations per Raft entry at most (group commit).
    pub const MAX_BATCH: usize = 512;
    /// Encoded bytes of operations in one log entry (an operation larger
    /// than this goes alone).
    pub const MAX_BATCH_BYTES: usize = 64 << 10;
    /// Entries in one AppendEntries: 16 x 64 KiB = 1 MiB at most (plus one
    /// operation per entry past the cap), far below the RPC frame limit.
    /// openraft 0.9 gives an AppendEntries one heartbeat interval to be
    /// encoded, sent, made durable and answered; a message of many MiB
    /// misses that every time and a lagging follower never catches up.
    pub const MAX_PAYLOAD_ENTRIES: u64 = 16;
    /// Raft entries being committed at once, at most: one, and more only
    /// while full entries wait (see `node::propose`: openraft 0.9 fsyncs
    /// queued entries in series, so a second half-empty entry only waits).
    pub const MAX_INFLIGHT_BATCHES: usize = 4;
    pub const REPLICATION: u16 = 3;
    /// A writer that has not renewed its lease for this long loses the file
    /// to lease recovery.
    pub const LEASE_TIMEOUT_MS: u64 = 60_000;
    /// A datanode silent for this long is stale (no new blocks go to it).
    pub const STALE_AFTER_MS: u64 = 3_000;
    /// A datanode silent for this long is dead (grace period before its
    /// replicas stop counting and are re-replicated).
    pub const DEAD_AFTER_MS: u64 = 30_000;
    /// How often the leader runs its block policies.
    pub const POLICY_INTERVAL_MS: u64 = 500;
    /// Replication streams a datanode takes part in at once.
    pub const STREAMS_PER_NODE: usize = 4;
    /// Balancer moves per datanode per policy round.
    pub const MOVES_PER_NODE: usize = 2;
    /// Continuous balancing threshold (percent of capacity from the average).
    pub const BALANCE_THRESHOLD_PCT: f64 = 10.0;
    pub const BLOCK_SIZE: u64 = 64 << 20;
    /// The smallest block size a create may ask for (HDFS's
    /// `dfs.namenode.fs-limits.min-block-size`). HDFS's default is 1 MiB;
    /// tdfs defaults to the namespace's own floor (1 KiB) so tests and small
    /// clusters can use small blocks, and an operator raises it with
    /// `--min-block-size 1m`.
    pub const MIN_BLOCK_SIZE: u64 = tdfs_namespace::MIN_BLOCK_SIZE;
    /// The largest block size a create may ask for (HDFS's
    /// `dfs.namenode.fs-limits.max-block-size`): the namespace's own ceiling,
    /// 1 GiB (HDFS allows 32 GiB; a tdfs block is written and resent whole
    /// by its writer, so a smaller ceiling bounds what a gateway holds).
    pub const MAX_BLOCK_SIZE: u64 = tdfs_namespace::MAX_BLOCK_SIZE;
    /// Every this many applied entries, each metadata node hashes its
    /// namespace and the leader compares the hashes.
    pub const HASH_EVERY: u64 = 50_000;
    /// Inodes freed per `Reclaim` step: a few milliseconds of apply.
    pub const RECLAIM_BUDGET: u32 = 20_000;
}

/// Cluster-wide defaults for new files (stamped into each create by the
/// leader, so every replica applies the same).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    pub replication: u16,
    pub block_size: u64,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            replication: defaults::REPLICATION,
            block_size: defaults::BLOCK_SIZE,
        }
    }
}

/// Policy settings with this node's defaults (tests of the state machine).
pub fn policy_config_default() -> tdfs_policy::PolicyConfig {
    tdfs_policy::PolicyConfig::new(tdfs_policy::LivenessConfig {
        stale_after: std::time::Duration::from_millis(defaults::STALE_AFTER_MS),
        dead_after: std::time::Duration::from_millis(defaults::DEAD_AFTER_MS),
        gossip: true,
    })
}

/// Everything a metadata node needs to start.
#[derive(Clone, Debug)]
pub struct MetaConfig {
    /// This node's Raft id.
    pub id: u64,
    /// Address other nodes and clients use to reach this node.
    pub addr: String,
    /// HTTP address (status page, metrics, WebHDFS), if served.
    pub http: Option<String>,
    /// Holds the Raft log, vote and snapshots.
    pub data_dir: PathBuf,
    /// The initial Raft group (id → address). A fresh node that is in this
    /// map initializes the group with it; a fresh node that is not waits to
    /// be added with `haadmin -addMeta`.
    pub peers: BTreeMap<u64, String>,
    /// Proves cluster membership to peers; `None` trusts every connection.
    pub key: Option<ClusterKey>,
    /// fsync the Raft log before acknowledging (off only for tests).
    pub fsync: bool,
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    pub snapshot_logs: u64,
    /// Bytes of log after the last snapshot that trigger one (0: entries only).
    pub snapshot_log_bytes: u64,
    /// Defaults for new files.
    pub defaults: Defaults,
    /// The user who owns `/` and bypasses permission checks.
    pub superuser: String,
    pub lease_timeout_ms: u64,
    pub stale_after_ms: u64,
    pub dead_after_ms: u64,
    /// Continuous balancing threshold in percent; `None` turns it off.
    pub balance_threshold_pct: Option<f64>,
    /// Join the gossip cluster (UDP on the port of `addr`).
    pub gossip: bool,
    /// The consistency check's period, in applied entries.
    pub hash_every: u64,
    /// How long trashed files are kept, in ms (0: trash off); the flag is
    /// `--trash-interval MINUTES`, as HDFS's `fs.trash.interval`. The
    /// leader checkpoints and expires every user's trash this often.
    pub trash_interval_ms: u64,
    /// Inodes a huge delete's `Reclaim` step frees at most (one per policy
    /// round), so its work never stalls applies; tests lower it.
    pub reclaim_budget: u32,
    /// Block sizes a create may ask for, inclusive (`--min-block-size`,
    /// `--max-block-size`); within the namespace's own bounds.
    pub min_block_size: u64,
    pub max_block_size: u64,
}

impl MetaConfig {
    /// Refuses a block size outside this node's limits, as HDFS's namenode
    /// does (an `IOException` with HDFS's wording): every gateway's create
    /// (tdfs RPC, WebHDFS `blocksize=`, Hadoop RPC) comes through here.
    pub fn check_block_size(&self, block_size: u64) -> Result<(), tdfs_proto::FsError> {
        if block_size < self.min_block_size {
            return Err(tdfs_proto::FsError::Io(format!(
                "Specified block size is less than configured minimum value \
                 (dfs.namenode.fs-limits.min-block-size): {block_size} < {}",
                self.min_block_size
            )));
        }
        if block_size > self.max_block_size {
            return Err(tdfs_proto::FsError::Io(format!(
                "Specified block size is greater than configured maximum value \
                 (dfs.namenode.fs-limits.max-block-size): {block_size} > {}",
                self.max_block_size
            )));
        }
        Ok(())
    }

    /// The policies' settings.
    pub fn policy(&self) -> tdfs_policy::PolicyConfig {
        let mut p = tdfs_policy::PolicyConfig::new(tdfs_policy::LivenessConfig {
            stale_after: std::time::Duration::from_millis(self.stale_after_ms),
            dead_after: std::time::Duration::from_millis(self.dead_after_ms),
            gossip: self.gossip,
        });
        p.streams_per_node = defaults::STREAMS_PER_NODE;
        p.moves_per_node = defaults::MOVES_PER_NODE;
        p.bug_delete_last_corrupt = crate::bugs::on(crate::bugs::Bug::DeleteLastCorrupt);
        p
    }
}

impl MetaConfig {
    /// A config with defaults for everything but identity and location.
    pub fn new(id: u64, addr: String, data_dir: PathBuf, peers: BTreeMap<u64, String>) -> Self {
        MetaConfig {
            id,
            addr,
            http: None,
            data_dir,
            peers,
            key: None,
            fsync: true,
            heartbeat_ms: defaults::HEARTBEAT_MS,
            election_min_ms: defaults::ELECTION_MIN_MS,
            election_max_ms: defaults::ELECTION_MAX_MS,
            snapshot_logs: defaults::SNAPSHOT_LOGS,
            snapshot_log_bytes: defaults::SNAPSHOT_LOG_BYTES,
            defaults: Defaults::default(),
            superuser: current_user(),
            lease_timeout_ms: defaults::LEASE_TIMEOUT_MS,
            stale_after_ms: defaults::STALE_AFTER_MS,
            dead_after_ms: defaults::DEAD_AFTER_MS,
            balance_threshold_pct: Some(defaults::BALANCE_THRESHOLD_PCT),
            gossip: true,
            hash_every: defaults::HASH_EVERY,
            trash_interval_ms: 0,
            reclaim_budget: defaults::RECLAIM_BUDGET,
            min_block_size: defaults::MIN_BLOCK_SIZE,
            max_block_size: defaults::MAX_BLOCK_SIZE,
        }
    }

    /// Checks the values, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= self.election_min_ms {
            return Err(format!(
                "heartbeat ({}) must be > 0 and < election timeout min ({})",
                self.heartbeat_ms, self.election_min_ms
            ));
        }
        if self.election_min_ms >= self.election_max_ms {
            return Err(format!(
                "election timeout: min({}) must be < max({})",
                self.election_min_ms, self.election_max_ms
            ));
        }
        if let Some(a) = self.peers.get(&self.id) {
            if *a != self.addr {
                return Err(format!(
                    "--peers gives node {} the address {a}, but --addr is {}",
                    self.id, self.addr
                ));
            }
        }
        if self.stale_after_ms == 0 || self.stale_after_ms > self.dead_after_ms {
            return Err(format!(
                "stale after ({} ms) must be > 0 and <= dead after ({} ms)",
                self.stale_after_ms, self.dead_after_ms
            ));
        }
        if self.defaults.replication == 0 {
            return Err("replication must be at least 1".into());
        }
        tdfs_namespace::check_file_params(self.defaults.replication, self.defaults.block_size)
            .map_err(|e| e.to_string())?;
        let (lo, hi) = (defaults::MIN_BLOCK_SIZE, defaults::MAX_BLOCK_SIZE);
        if self.min_block_size < lo
            || self.max_block_size > hi
            || self.min_block_size > self.max_block_size
        {
            return Err(format!(
                "block size limits {}..={} must lie within {lo}..={hi}, min <= max",
                self.min_block_size, self.max_block_size
            ));
        }
        self.check_block_size(self.defaults.block_size)
            .map_err(|e| format!("--block-size: {e}"))?;
        Ok(())
    }
}

/// The OS user running this process.
pub fn current_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| {
            // Without the environment, ask the system (uid 0 is root).
            use std::os::unix::fs::MetadataExt;
            if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
                "root".to_string()
            } else {
                "tdfs".to_string()
            }
        })
}

/// Parses `1=host:port,2=host:port`.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("bad peer {part:?}: expected ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("bad peer id {id:?} in {part:?}"))?;
        if addr.trim().is_empty() {
            return Err(format!("peer {id} has no address"));
        }
        if out.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("peer {id} is listed twice"));
        }
    }
    if out.is_empty() {
        return Err("--peers names no node".into());
    }
    Ok(out)
}
