//! The nemesis: a fault (or two at once) at a time, injected, held for a
//! seeded while, healed, and followed by a wait (with a deadline) for the
//! cluster to settle. Each fault's start returns what undoes it
//! ([`Undo`]), so two faults can be started together and healed together.
//! The network, clock, pause and admin faults are in `faults.rs`.

use super::cluster::{Cluster, Who};
use super::workload::{fill, DataFile, Shared, BLOCK, DATA_DIR};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;
use tdfs_client::MetaClient;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillLeader,
    KillFollower,
    KillDatanode,
    KillTwoDatanodes,
    PartitionLeader,
    PartitionDatanodesFromLeader,
    PauseLeader,
    CorruptBlock,
    TruncateBlock,
    DiskFull,
    KillClientMidWrite,
    /// The leader's packets to both followers dropped; theirs arrive.
    OneWayFromLeader,
    /// Both followers' packets to the leader dropped; the leader's arrive.
    OneWayToLeader,
    /// One datanode cut from the other datanodes (not from the metas).
    PartitionDatanode,
    /// The workload's clients cut from the leader / from one datanode.
    PartitionClientsFromLeader,
    PartitionClientsFromDatanode,
    /// Two metadata nodes cut from each other; the third reaches both.
    MetaBridge,
    /// One follower cut from the leader only: it still reaches the other
    /// follower and the clients, and falls behind (a lagging follower).
    PartitionFollowerFromLeader,
    PauseFollower,
    PauseDatanode,
    /// The leader's wall clock stepped forward / back by minutes.
    ClockJumpForward,
    ClockJumpBack,
    /// A follower's or a datanode's wall clock off by seconds.
    ClockSkew,
    /// Every metadata node and datanode killed -9 at once, all restarted.
    KillAll,
    // Admin operations, each overlapping another fault (see `pair`).
    RemoveMetaWhileDatanodeKilled,
    DecommissionWhileDatanodeKilled,
    BalanceWhileDatanodePaused,
    SetrepWhileDatanodePartitioned,
    // Two faults at once.
    KillLeaderAndPartitionDatanodes,
    KillDatanodeAndCorrupt,
    PauseFollowerAndKillLeader,
    /// The workload cut from the leader, whose wall clock then steps past
    /// the retry cache's 15-minute client expiry: calls whose replies the
    /// cut lost are retried after the step.
    ClockJumpWhileClientsCut,
    /// A follower killed, a record in the middle of its Raft log damaged:
    /// it must refuse to start; then wiped and restarted empty.
    DamageMetaLog,
    /// A leader (restarted with its read-index confirmation skipped, as
    /// one that confirmed just before the cut) cut from the other metas
    /// only; a nemesis file's replication raised through the new leader;
    /// no replica of it may be lost while the old leader still reaches the
    /// datanodes (see `safety.rs`).
    DeposedLeaderSetrep,
    /// Every replica of a nemesis file's block corrupted on disk: all must
    /// stay (quarantined) while fsck lists the block corrupt.
    CorruptEveryReplica,
    /// Every daemon's disk forgets what was not fsync'd, then all are
    /// killed -9 at once and restarted: a power loss (power.rs).
    PowerLoss,
    // Parts of the pairs above, never scheduled alone.
    ClockJumpFar,
    RemoveMeta,
    Decommission,
    Balance,
    Setrep,
}

/// Every fault the schedule draws from (the parts of pairs excluded).
pub const ALL: [Fault; 36] = [
    Fault::KillLeader,
    Fault::KillFollower,
    Fault::KillDatanode,
    Fault::KillTwoDatanodes,
    Fault::PartitionLeader,
    Fault::PartitionDatanodesFromLeader,
    Fault::PauseLeader,
    Fault::CorruptBlock,
    Fault::TruncateBlock,
    Fault::DiskFull,
    Fault::KillClientMidWrite,
    Fault::OneWayFromLeader,
    Fault::OneWayToLeader,
    Fault::PartitionDatanode,
    Fault::PartitionClientsFromLeader,
    Fault::PartitionClientsFromDatanode,
    Fault::MetaBridge,
    Fault::PartitionFollowerFromLeader,
    Fault::PauseFollower,
    Fault::PauseDatanode,
    Fault::ClockJumpForward,
    Fault::ClockJumpBack,
    Fault::ClockSkew,
    Fault::KillAll,
    Fault::RemoveMetaWhileDatanodeKilled,
    Fault::DecommissionWhileDatanodeKilled,
    Fault::BalanceWhileDatanodePaused,
    Fault::SetrepWhileDatanodePartitioned,
    Fault::KillLeaderAndPartitionDatanodes,
    Fault::KillDatanodeAndCorrupt,
    Fault::PauseFollowerAndKillLeader,
    Fault::ClockJumpWhileClientsCut,
    Fault::DamageMetaLog,
    Fault::DeposedLeaderSetrep,
    Fault::CorruptEveryReplica,
    Fault::PowerLoss,
];

impl Fault {
    /// The two faults a combined entry starts together, in order.
    pub fn pair(self) -> Option<(Fault, Fault)> {
        use Fault::*;
        Some(match self {
            RemoveMetaWhileDatanodeKilled => (RemoveMeta, KillDatanode),
            DecommissionWhileDatanodeKilled => (Decommission, KillDatanode),
            BalanceWhileDatanodePaused => (PauseDatanode, Balance),
            SetrepWhileDatanodePartitioned => (PartitionDatanode, Setrep),
            KillLeaderAndPartitionDatanodes => (PartitionDatanodesFromLeader, KillLeader),
            KillDatanodeAndCorrupt => (CorruptBlock, KillDatanode),
            PauseFollowerAndKillLeader => (PauseFollower, KillLeader),
            ClockJumpWhileClientsCut => (PartitionClientsFromLeader, ClockJumpFar),
            _ => return None,
        })
    }

    /// The longest a schedule entry is held: a cut that lets the clients'
    /// retries (3 s call deadline) reach the leader again after the heal.
    pub fn max_hold(self) -> Duration {
        match self {
            Fault::ClockJumpWhileClientsCut => Duration::from_millis(1500),
            _ => Duration::MAX,
        }
    }
}

/// Every fault once, in a seeded order (short profile), or `n` faults drawn
/// at random (long profile).
///
/// `TDFS_CHAOS_ONLY=KillLeader,PartitionLeader` restricts the faults to
/// those kinds (to chase one bug); without it, `kinds` (a profile's own
/// restriction) does, when given.
pub fn schedule(rng: &mut StdRng, n: Option<usize>, kinds: Option<&[Fault]>) -> Vec<Fault> {
    let only = std::env::var("TDFS_CHAOS_ONLY").unwrap_or_default();
    let kinds: Vec<Fault> = ALL
        .iter()
        .copied()
        .filter(|f| {
            if only.is_empty() {
                kinds.is_none_or(|k| k.contains(f))
            } else {
                only.split(',').any(|o| o.trim() == format!("{f:?}"))
            }
        })
        .collect();
    assert!(!kinds.is_empty(), "TDFS_CHAOS_ONLY={only} names no fault");
    match n {
        None => {
            // The short profile (in `cargo test`): every kind once.
            let mut v = kinds;
            v.shuffle(rng);
            v
        }
        Some(n) => (0..n)
            .map(|_| kinds[rng.gen_range(0..kinds.len())])
            .collect(),
    }
}

/// What heals one started fault.
pub enum Undo {
    /// Start the killed processes again on their data directories.
    Restart(Vec<Who>),
    /// Remove every blackhole route.
    HealNet,
    Resume(Who),
    /// Set the process's wall-clock offset back to 0.
    ClockBack(Who),
    RemoveFile(std::path::PathBuf),
    /// Add metadata node index `i` back as a voter.
    ReAddMeta(usize),
    Recommission(tdfs_proto::DatanodeId),
    /// Move metadata node `i`'s data directory aside and start it empty
    /// (docs/operations.md's recovery of a damaged node).
    WipeMeta(usize),
    /// A background admin operation (the balancer) to wait for.
    Join(tokio::task::JoinHandle<String>),
    /// Restart metadata node `i` without its extra environment (the
    /// failpoint the deposed-leader fault gave it).
    RestartMetaPlain(usize),
    /// Delete a nemesis-owned file (retried until acknowledged).
    DeleteOwn(String),
}

/// A started fault: what was done, how long to hold it, how to heal it.
#[derive(Default)]
pub struct Active {
    pub what: Vec<String>,
    pub hold: Duration,
    pub undo: Vec<Undo>,
}

impl Active {
    pub fn new(what: String, hold: Duration, undo: Vec<Undo>) -> Active {
        Active {
            what: vec![what],
            hold,
            undo,
        }
    }
}

/// The nemesis's own view and bookkeeping.
pub struct Nemesis {
    pub rng: StdRng,
    /// Admin client (long deadline).
    pub ctl: std::sync::Arc<MetaClient>,
    /// Replicas damaged on disk: (datanode, block id, gen).
    pub damaged: Vec<(usize, u64, u64)>,
    killed_clients: usize,
    /// What happened, one line per fault.
    pub log: Vec<String>,
    /// Violations the nemesis itself saw (a heal that could not be done).
    pub violations: Vec<String>,
}

pub fn hold(rng: &mut StdRng, lo_ms: u64, hi_ms: u64) -> Duration {
    Duration::from_millis(rng.gen_range(lo_ms..=hi_ms))
}

impl Nemesis {
    pub fn new(rng: StdRng, ctl: std::sync::Arc<MetaClient>) -> Nemesis {
        Nemesis {
            rng,
            ctl,
            damaged: Vec::new(),
            killed_clients: 0,
            log: Vec::new(),
            violations: Vec::new(),
        }
    }

    /// Injects `f` (both halves of a pair together), holds it, heals it,
    /// and waits for the cluster to settle.
    pub async fn run(&mut self, cl: &mut Cluster, sh: &Shared, f: Fault) {
        let t = std::time::Instant::now();
        let mut a = Active::default();
        for part in f.pair().map_or(vec![f], |(x, y)| vec![x, y]) {
            let b = self.start(cl, sh, part).await;
            a.what.extend(b.what);
            a.hold = a.hold.max(b.hold);
            a.undo.extend(b.undo);
        }
        a.hold = a.hold.min(f.max_hold());
        tokio::time::sleep(a.hold).await;
        let mut healed = Vec::new();
        for u in a.undo {
            if let Some(h) = self.heal(cl, u).await {
                healed.push(h);
            }
        }
        cl.wait_settled(&self.ctl, Duration::from_secs(60)).await;
        let mut line = format!("{f:?}: {}", a.what.join(" + "));
        if !a.hold.is_zero() {
            line.push_str(&format!(", held {:?}", a.hold));
        }
        if !healed.is_empty() {
            line.push_str(&format!("; {}", healed.join("; ")));
        }
        line.push_str(&format!(" (settled after {:.1?})", t.elapsed()));
        println!("nemesis: {line}");
        self.log.push(line);
    }

    /// Starts one fault; returns what undoes it.
    async fn start(&mut self, cl: &mut Cluster, sh: &Shared, f: Fault) -> Active {
        let dn_count = cl.dns.len();
        match f {
            Fault::KillLeader
            | Fault::KillFollower
            | Fault::KillDatanode
            | Fault::KillTwoDatanodes
            | Fault::KillAll => self.start_kill(cl, f).await,
            Fault::PartitionLeader => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let others: Vec<usize> = (0..3)
                    .filter(|&i| i != l)
                    .map(|i| cl.metas[i].net)
                    .collect();
                cl.net.partition(&[cl.metas[l].net], &others);
                let d = hold(&mut self.rng, 1500, 5000);
                let what = format!("meta {} cut from the other meta nodes", l + 1);
                Active::new(what, d, vec![Undo::HealNet])
            }
            Fault::PartitionDatanodesFromLeader => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let dns: Vec<usize> = cl.dns.iter().map(|d| d.net).collect();
                cl.net.partition(&[cl.metas[l].net], &dns);
                let d = hold(&mut self.rng, 1500, 5000);
                let what = format!("every datanode cut from leader meta {}", l + 1);
                Active::new(what, d, vec![Undo::HealNet])
            }
            Fault::PauseLeader => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                cl.metas[l].pause();
                // Well past the election timeout (150–300 ms) and the lease.
                let d = hold(&mut self.rng, 1000, 3000);
                let what = format!("SIGSTOP leader meta {}", l + 1);
                Active::new(what, d, vec![Undo::Resume(Who::Meta(l))])
            }
            Fault::CorruptBlock | Fault::TruncateBlock => {
                let what = self.damage(cl, f == Fault::TruncateBlock);
                Active::new(what, Duration::ZERO, vec![])
            }
            Fault::DiskFull => {
                let j = self.rng.gen_range(0..dn_count);
                let ballast = cl.dns[j].data_dir.join("ballast");
                let filled = fill_disk(&ballast);
                let d = hold(&mut self.rng, 2000, 5000);
                let what = format!("datanode {j}'s disk filled ({} MiB ballast)", filled >> 20);
                Active::new(what, d, vec![Undo::RemoveFile(ballast)])
            }
            Fault::KillClientMidWrite => {
                let what = self.kill_client(cl, sh).await;
                Active::new(what, Duration::ZERO, vec![])
            }
            Fault::DamageMetaLog => self.damage_meta_log(cl, sh).await,
            Fault::DeposedLeaderSetrep => self.deposed_leader_setrep(cl).await,
            Fault::CorruptEveryReplica => self.corrupt_every_replica(cl).await,
            Fault::PowerLoss => super::power::start(self, cl).await,
            _ => self.start_more(cl, sh, f).await,
        }
    }

    /// The kill -9 faults.
    async fn start_kill(&mut self, cl: &mut Cluster, f: Fault) -> Active {
        let dn_count = cl.dns.len();
        match f {
            Fault::KillLeader | Fault::KillFollower => {
                let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
                let victim = if f == Fault::KillLeader {
                    l
                } else {
                    let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
                    others[self.rng.gen_range(0..2)]
                };
                cl.metas[victim].kill();
                let d = hold(&mut self.rng, 500, 3000);
                let what = format!("kill -9 meta {}", victim + 1);
                Active::new(what, d, vec![Undo::Restart(vec![Who::Meta(victim)])])
            }
            Fault::KillDatanode | Fault::KillTwoDatanodes => {
                let mut idx: Vec<usize> =
                    (0..dn_count).filter(|&j| cl.dns[j].is_running()).collect();
                idx.shuffle(&mut self.rng);
                let k = if f == Fault::KillDatanode { 1 } else { 2 };
                let victims = idx[..k].to_vec();
                for &j in &victims {
                    cl.dns[j].kill();
                }
                let d = hold(&mut self.rng, 500, 4000);
                let what = format!("kill -9 datanodes {victims:?}");
                let who = victims.into_iter().map(Who::Dn).collect();
                Active::new(what, d, vec![Undo::Restart(who)])
            }
            Fault::KillAll => {
                let mut who: Vec<Who> = (0..3).map(Who::Meta).collect();
                who.extend((0..dn_count).map(Who::Dn));
                for &w in &who {
                    cl.proc_mut(w).kill();
                }
                let d = hold(&mut self.rng, 300, 2000);
                let what = "kill -9 every meta and datanode at once".to_string();
                Active::new(what, d, vec![Undo::Restart(who)])
            }
            _ => unreachable!("{f:?} is not a kill fault"),
        }
    }

    /// Heals one started fault; returns a note for the log, if any.
    async fn heal(&mut self, cl: &mut Cluster, u: Undo) -> Option<String> {
        match u {
            Undo::Restart(who) => {
                for w in who {
                    match w {
                        Who::Meta(i) => cl.spawn_meta(i),
                        Who::Dn(j) => cl.spawn_dn(j),
                    }
                }
                Some("restarted".into())
            }
            Undo::HealNet => {
                cl.net.heal();
                None
            }
            Undo::Resume(w) => {
                cl.proc_mut(w).resume();
                Some("SIGCONT".into())
            }
            Undo::ClockBack(w) => {
                cl.proc_mut(w).set_clock(0).await;
                Some("clock offset back to 0".into())
            }
            Undo::RemoveFile(p) => {
                let _ = std::fs::remove_file(p);
                None
            }
            Undo::ReAddMeta(i) => Some(self.re_add_meta(cl, i).await),
            Undo::WipeMeta(i) => Some(self.wipe_and_rejoin(cl, i).await),
            Undo::Recommission(id) => Some(self.recommission(id).await),
            Undo::RestartMetaPlain(i) => {
                cl.meta_env.remove(&i);
                cl.metas[i].kill();
                cl.spawn_meta(i);
                Some(format!("meta {} restarted without the failpoint", i + 1))
            }
            Undo::DeleteOwn(p) => Some(self.delete_own(&p).await),
            Undo::Join(h) => Some(
                match tokio::time::timeout(Duration::from_secs(60), h).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => panic!("the nemesis's admin task failed: {e}"),
                    Err(_) => panic!("the nemesis's admin task did not end within 60 s"),
                },
            ),
        }
    }

    /// Corrupts or truncates one finalized replica of a block that has at
    /// least one other intact replica on disk.
    fn damage(&mut self, cl: &Cluster, truncate: bool) -> String {
        let on_disk: Vec<_> = (0..cl.dns.len()).map(|j| cl.replicas_on_disk(j)).collect();
        let mut choices = Vec::new();
        for (j, reps) in on_disk.iter().enumerate() {
            for (&(id, gen), path) in reps {
                let hit = |d: &(usize, u64, u64)| d.1 == id;
                let intact_elsewhere = on_disk
                    .iter()
                    .enumerate()
                    .filter(|(k, r)| *k != j && r.contains_key(&(id, gen)))
                    .count();
                let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                if intact_elsewhere >= 1 && len > 1024 && !self.damaged.iter().any(hit) {
                    choices.push((j, id, gen, path.clone(), len));
                }
            }
        }
        let Some((j, id, gen, path, len)) = choices.choose(&mut self.rng).cloned() else {
            return "no replica to damage yet".into();
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let what = if truncate {
            f.set_len(len / 2).unwrap();
            format!("truncated to {} bytes", len / 2)
        } else {
            let at = self.rng.gen_range(0..len - 64);
            let mut b = [0u8; 64];
            f.seek(SeekFrom::Start(at)).unwrap();
            f.read_exact(&mut b).unwrap();
            for x in &mut b {
                *x ^= 0x5a;
            }
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&b).unwrap();
            format!("64 bytes flipped at {at}")
        };
        f.sync_all().unwrap();
        self.damaged.push((j, id, gen));
        format!("replica of block {id} gen {gen} on datanode {j}: {what}")
    }

    /// Runs `tdfs dfs -put - PATH` fed from a pipe and kills it with -9
    /// partway through its second or third block.
    async fn kill_client(&mut self, cl: &Cluster, sh: &Shared) -> String {
        self.killed_clients += 1;
        let dst = format!("{DATA_DIR}/cli-{}", self.killed_clients);
        let seed: u64 = self.rng.gen();
        let len = BLOCK + self.rng.gen_range(BLOCK / 4..BLOCK * 3 / 2);
        let mut child = Command::new(tdfs_testkit::procs::tdfs_bin())
            .args(["dfs", "--meta", &cl.meta_list, "--user", "root"])
            .args(["-put", "-blocksize", &BLOCK.to_string(), "-", &dst])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tdfs dfs -put");
        sh.add_file(DataFile {
            path: format!("{dst}._COPYING_"),
            seed,
            failed: Some((0, len)),
            killed_cli: true,
            ..Default::default()
        });
        let mut stdin = child.stdin.take().unwrap();
        let fed = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 64 << 10];
            let mut off = 0u64;
            while off < len {
                let n = (len - off).min(buf.len() as u64) as usize;
                fill(seed, off, &mut buf[..n]);
                if stdin.write_all(&buf[..n]).is_err() {
                    break;
                }
                off += n as u64;
            }
            // Keep the pipe open: the client must be killed, not finish.
            (off, stdin)
        })
        .await
        .unwrap();
        let d = hold(&mut self.rng, 100, 800);
        tokio::time::sleep(d).await;
        let _ = child.kill();
        let _ = child.wait();
        drop(fed.1);
        format!("tdfs dfs -put to {dst} killed -9 after {} bytes fed", fed.0)
    }
}

/// Fills the filesystem holding `path` with a file there; returns its size.
fn fill_disk(path: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match f.write(&buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n as u64,
        }
    }
    let _ = f.sync_all();
    total
}
