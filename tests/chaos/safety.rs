//! The data-safety faults, each with its own check (docs/chaos.md):
//!
//! - `DeposedLeaderSetrep`: both followers are restarted with the
//!   failpoint `meta::skip-leader-confirm` (the read-index confirmation
//!   before destructive commands skipped, as in a leader that confirmed
//!   just before the cut) and the leader is killed, so one of them leads;
//!   it is then cut from the other
//!   metadata nodes only, so it still reaches every datanode and keeps
//!   believing it leads. The new leader raises the replication of a
//!   nemesis file; the deposed one, seeing a surplus in its stale log,
//!   sends deletions, which the datanodes' term fence must refuse. A
//!   replica of that file lost meanwhile is a violation.
//! - `CorruptEveryReplica`: every replica of a nemesis file's block
//!   damaged on disk and reported; all must be quarantined and kept
//!   (no good copy exists) while `tdfs fsck -list-corruptfileblocks`
//!   lists the block.
//!
//! Their files live under [`NEMESIS_DIR`], outside the workload's data
//! check, and are deleted at the heal (the damage is registered with the
//! scrub's list all the same).

use super::cluster::Cluster;
use super::nemesis::{hold, Active, Nemesis, Undo};
use super::verify::{datanode_id, poll};
use super::workload::{fill, BLOCK};
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_client::{read_range, CreateOptions, FileWriter, MetaClient};
use tdfs_proto::meta::MetaRequest;

/// Where the nemesis's own files live.
pub const NEMESIS_DIR: &str = "/nemesis";
/// The failpoint of the deposed-leader fault.
const SKIP_CONFIRM: &str = "meta::skip-leader-confirm=return";
/// The policy's grace for a new block (`PolicyConfig::young_grace`).
const YOUNG_GRACE_MS: u64 = 10_000;

/// Writes a nemesis file; returns its blocks (id, gen).
async fn write_own(
    c: &Arc<MetaClient>,
    path: &str,
    seed: u64,
    len: u64,
    replication: u16,
) -> Result<Vec<(u64, u64)>, String> {
    poll(
        Duration::from_secs(30),
        Duration::from_millis(300),
        || async {
            let opts = CreateOptions {
                overwrite: true,
                replication: Some(replication),
                block_size: Some(BLOCK),
                create_parents: true,
                ..Default::default()
            };
            let mut w = FileWriter::create(c.clone(), path, opts)
                .await
                .map_err(|e| format!("create {path}: {e}"))?;
            let mut buf = vec![0u8; len as usize];
            fill(seed, 0, &mut buf);
            w.write(&buf)
                .await
                .map_err(|e| format!("write {path}: {e}"))?;
            w.close().await.map_err(|e| format!("close {path}: {e}"))?;
            let lbs = c
                .block_locations(path, 0, u64::MAX)
                .await
                .map_err(|e| format!("locations of {path}: {e}"))?;
            Ok(lbs
                .blocks
                .iter()
                .map(|b| (b.block.id, b.block.gen))
                .collect())
        },
    )
    .await
}

/// Datanodes holding a finalized replica of each block, from their disks.
fn holders(cl: &Cluster, blocks: &[(u64, u64)]) -> BTreeMap<(u64, u64), Vec<usize>> {
    let disks: Vec<_> = (0..cl.dns.len()).map(|j| cl.replicas_on_disk(j)).collect();
    blocks
        .iter()
        .map(|b| {
            let on: Vec<usize> = (0..disks.len())
                .filter(|&j| disks[j].contains_key(b))
                .collect();
            (*b, on)
        })
        .collect()
}

/// Waits until every block has at least `n` replicas on disk.
async fn wait_on_disk(
    cl: &Cluster,
    blocks: &[(u64, u64)],
    n: usize,
    within: Duration,
) -> Result<BTreeMap<(u64, u64), Vec<usize>>, String> {
    poll(within, Duration::from_millis(50), || async {
        let h = holders(cl, blocks);
        if h.values().all(|v| v.len() >= n) {
            Ok(h)
        } else {
            Err(format!("replicas on disk {h:?}, want {n} each"))
        }
    })
    .await
}

/// The term in datanode `j`'s durable fence file.
fn fence_term(cl: &Cluster, j: usize) -> u64 {
    std::fs::read_to_string(cl.dns[j].data_dir.join("fence"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Lines of the datanodes' logs that refused a batch of commands of `term`.
fn refusals(cl: &Cluster, term: u64) -> usize {
    let needle = format!("refusing commands of term {term}:");
    cl.dns
        .iter()
        .filter_map(|d| std::fs::read_to_string(&d.log).ok())
        .map(|s| s.lines().filter(|l| l.contains(&needle)).count())
        .sum()
}

/// Where a quarantined replica of `block` lies on datanode `j`.
fn quarantined_file(cl: &Cluster, j: usize, (id, gen): (u64, u64)) -> PathBuf {
    cl.dns[j]
        .data_dir
        .join("quarantine")
        .join(format!("blk_{id}_{gen}.data"))
}

/// `tdfs fsck PATH -list-corruptfileblocks --json`: the blocks listed.
async fn listed_corrupt(cl: &Cluster, path: &str) -> Result<Vec<u64>, String> {
    let out = tokio::process::Command::new(tdfs_testkit::procs::tdfs_bin())
        .args(["fsck", path, "-list-corruptfileblocks", "--json"])
        .args(["--meta", &cl.meta_list, "--user", "root"])
        .env("TDFS_CLIENT_DEADLINE_MS", "10000")
        .output()
        .await
        .map_err(|e| format!("run tdfs fsck: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let doc: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "tdfs fsck -list-corruptfileblocks --json: {e}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(doc["corrupt_files"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|f| f["path"] == path)
                .filter_map(|f| f["block"].as_u64())
                .collect()
        })
        .unwrap_or_default())
}

impl Nemesis {
    /// A distinct path under [`NEMESIS_DIR`].
    fn own_path(&mut self, what: &str) -> String {
        format!(
            "{NEMESIS_DIR}/{what}-{}-{}",
            self.log.len(),
            self.rng.gen::<u32>()
        )
    }

    /// Deletes a nemesis file, retried until acknowledged.
    pub(super) async fn delete_own(&mut self, path: &str) -> String {
        let ctl = self.ctl.clone();
        let r = poll(Duration::from_secs(60), Duration::from_millis(300), || {
            let ctl = ctl.clone();
            async move {
                match ctl.delete(path, false).await {
                    // Gone already: an earlier attempt of this call did it.
                    Ok(()) | Err(tdfs_proto::FsError::FileNotFound(_)) => Ok(()),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        match r {
            Ok(()) => format!("{path} deleted"),
            Err(e) => {
                let v = format!("deleting the nemesis file {path} failed for 60 s: {e}");
                self.violations.push(v.clone());
                v
            }
        }
    }

    /// Writes a file at replication 2, restarts both followers with the
    /// confirmation skipped and kills the leader, cuts the new leader from
    /// the other metas only once every datanode has reported to it, raises the
    /// file's replication to every datanode through the new leader and
    /// watches its replicas on disk.
    pub(super) async fn deposed_leader_setrep(&mut self, cl: &mut Cluster) -> Active {
        let t0 = Instant::now();
        // Written first: its blocks are past the young grace (10 s, when
        // copies of a new block wait for the pipeline's reports) sooner.
        let path = self.own_path("deposed");
        let seed = self.rng.gen();
        let blocks = match write_own(&self.ctl, &path, seed, BLOCK + BLOCK / 2, 2).await {
            Ok(b) => b,
            Err(e) => {
                let what = format!("nemesis file {path} not written: {e}");
                return Active::new(what, Duration::ZERO, vec![]);
            }
        };
        let written = Instant::now();
        if let Err(e) = wait_on_disk(cl, &blocks, 2, Duration::from_secs(20)).await {
            let what = format!("{path} not on disk twice in 20 s: {e}");
            return Active::new(what, Duration::ZERO, vec![Undo::DeleteOwn(path)]);
        }
        // Both followers restarted with the failpoint, then the leader
        // killed: the next leader is one of them (a leadership transfer to
        // a chosen node failed for 45 s in some runs under load).
        let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
        let pointed: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        for &x in &pointed {
            cl.metas[x].kill();
            cl.meta_env
                .insert(x, vec![("FAILPOINTS".into(), SKIP_CONFIRM.into())]);
            cl.spawn_meta(x);
            cl.wait_settled(&self.ctl, Duration::from_secs(60)).await;
        }
        let plain =
            || -> Vec<Undo> { pointed.iter().map(|&x| Undo::RestartMetaPlain(x)).collect() };
        let early = |path: &str| {
            let mut u = plain();
            u.push(Undo::DeleteOwn(path.into()));
            u
        };
        cl.metas[l].kill();
        let f = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
        cl.spawn_meta(l);
        cl.wait_settled(&self.ctl, Duration::from_secs(60)).await;
        if cl.agreed_leader(&self.ctl).await != Some(f) {
            let what = format!(
                "meta {} lost the lead it took after meta {} was killed",
                f + 1,
                l + 1
            );
            return Active::new(what, Duration::ZERO, early(&path));
        }
        let old_term = match self.ctl.node_state(&cl.metas[f].addr).await {
            Ok(s) if s.role == "leader" => s.term,
            other => {
                let what = format!("meta {} no longer leads before the cut: {other:?}", f + 1);
                return Active::new(what, Duration::ZERO, early(&path));
            }
        };
        // A leader announces its term to a datanode (its fence file) only
        // once that datanode sent it a full report; it deletes nothing
        // before every live datanode did. So once every fence holds this
        // term, the leader to be deposed is ready to delete a surplus.
        let reported = poll(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                let low: Vec<(usize, u64)> = (0..cl.dns.len())
                    .map(|j| (j, fence_term(cl, j)))
                    .filter(|&(_, t)| t < old_term)
                    .collect();
                if low.is_empty() {
                    Ok(())
                } else {
                    Err(format!("fences below term {old_term}: {low:?}"))
                }
            },
        )
        .await;
        if let Err(e) = reported {
            let what = format!("meta {} not reported to in 20 s: {e}", f + 1);
            return Active::new(what, Duration::ZERO, early(&path));
        }
        // The policy's young grace (10 s from the commit, `young_grace`):
        // until it ends the new leader makes no copy of these blocks. The
        // deposed leader acts on a surplus only in the first seconds after
        // the cut (seen: a surplus that appeared 11 s after it was never
        // acted on, one at 3 s was within 0.5 s), so the surplus must come
        // at once: the cut waits for the grace to pass.
        let grace = Duration::from_millis(YOUNG_GRACE_MS + 500);
        tokio::time::sleep(grace.saturating_sub(written.elapsed())).await;
        let mut undo = vec![Undo::HealNet];
        undo.extend(early(&path));
        let refused_before = refusals(cl, old_term);
        let rest: Vec<usize> = (0..3).filter(|&i| i != f).collect();
        let rest_nets: Vec<usize> = rest.iter().map(|&i| cl.metas[i].net).collect();
        cl.net.partition(&[cl.metas[f].net], &rest_nets);
        let cut = Instant::now();
        let cl: &Cluster = cl;
        let c2 = cl.client_of(
            rest.iter().map(|&i| cl.metas[i].addr.clone()).collect(),
            Duration::from_secs(10),
        );
        // A new leader among the other two, at a higher term.
        let new = poll(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                for &i in &rest {
                    if let Ok(s) = c2.node_state(&cl.metas[i].addr).await {
                        if s.role == "leader" && s.term > old_term {
                            return Ok((i, s.term));
                        }
                    }
                }
                Err("no new leader among the other metas".to_string())
            },
        )
        .await;
        let (nl, new_term) = match new {
            Ok(x) => x,
            Err(e) => {
                let v = format!(
                    "meta {} (leader, term {old_term}) cut from the other metas: {e} in 20 s",
                    f + 1
                );
                self.violations.push(v.clone());
                return Active::new(v, Duration::ZERO, undo);
            }
        };
        // Every datanode learns the new term from the new leader's first
        // answer to its poll; until then the old term is the newest it knows.
        let fenced = poll(
            Duration::from_secs(20),
            Duration::from_millis(50),
            || async {
                let low: Vec<usize> = (0..cl.dns.len())
                    .filter(|&j| fence_term(cl, j) < new_term)
                    .collect();
                if low.is_empty() {
                    Ok(())
                } else {
                    Err(format!("datanodes {low:?} below term {new_term}"))
                }
            },
        )
        .await;
        if let Err(e) = fenced {
            let what = format!("fences not at the new term in 20 s: {e}");
            return Active::new(what, Duration::ZERO, undo);
        }
        let n = cl.dns.iter().filter(|d| d.is_running()).count() as u16;
        let set = poll(
            Duration::from_secs(20),
            Duration::from_millis(200),
            || async {
                let op = MetaRequest::SetReplication {
                    path: path.clone(),
                    replication: n,
                };
                c2.meta(op).await.map(|_| ()).map_err(|e| e.to_string())
            },
        )
        .await;
        if let Err(e) = set {
            let what = format!("setrep {n} {path} through meta {} failed: {e}", nl + 1);
            return Active::new(what, Duration::ZERO, undo);
        }
        // From here the new leader only adds replicas of these blocks (the
        // balancer moves only healthy blocks, and a block on every datanode
        // cannot move): any replica lost is the deposed leader's doing.
        let set_at = cut.elapsed();
        let d = hold(&mut self.rng, 6000, 9000);
        let mut high: BTreeMap<(u64, u64), usize> = holders(cl, &blocks)
            .into_iter()
            .map(|(b, h)| (b, h.len()))
            .collect();
        let mut lost: Vec<String> = Vec::new();
        let mut lost_blocks = std::collections::BTreeSet::new();
        let mut reached: Option<Instant> = None;
        let mut reached_after = Duration::ZERO;
        let until = Instant::now() + Duration::from_secs(30);
        let (mut led_seen, mut led_last, mut last_probe) = (0, None, None::<Instant>);
        loop {
            for (b, h) in holders(cl, &blocks) {
                let hi = high.entry(b).or_insert(0);
                if h.len() < *hi && lost_blocks.insert(b) {
                    lost.push(format!(
                        "block {} of {path} went from {hi} replicas on disk to {} (on datanodes \
                         {h:?}) {:.1?} after meta {} (deposed leader of term {old_term}) was cut \
                         from the other metas, with meta {} leading in term {new_term}; no \
                         datanode was killed or damaged",
                        b.0,
                        h.len(),
                        cut.elapsed(),
                        f + 1,
                        nl + 1
                    ));
                }
                *hi = (*hi).max(h.len());
            }
            if reached.is_none() && high.values().all(|&h| h >= n as usize) {
                reached = Some(Instant::now());
                reached_after = cut.elapsed();
            }
            if last_probe.is_none_or(|t| t.elapsed() > Duration::from_millis(250)) {
                last_probe = Some(Instant::now());
                if let Ok(s) = self.ctl.node_state(&cl.metas[f].addr).await {
                    if s.role == "leader" && s.term == old_term {
                        led_seen += 1;
                        led_last = Some(cut.elapsed());
                    }
                }
            }
            if reached.is_some_and(|t| t.elapsed() >= d) || Instant::now() > until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = refusals(cl, old_term) - refused_before;
        let seen = holders(cl, &blocks);
        let mut what = format!(
            "meta {} (leader, read-index confirmation skipped) cut from the other metas; \
             meta {} leads in term {new_term}; setrep {n} {path} ({} blocks); the old leader \
             still said leader of term {old_term} in {led_seen} probes, the last {} after the \
             cut; {refused} stale-term command batches refused by the datanodes; replicas on \
             disk {:?} ({}); fault took {:.1?}",
            f + 1,
            nl + 1,
            blocks.len(),
            led_last.map_or("never".to_string(), |t| format!("{t:.1?}")),
            seen.values().map(|h| h.len()).collect::<Vec<_>>(),
            match reached {
                Some(_) => format!(
                    "setrep acknowledged {set_at:.1?} and all at {n} {reached_after:.1?} after \
                     the cut, watched {d:?} more"
                ),
                None => format!("not all at {n} within 30 s"),
            },
            t0.elapsed()
        );
        if reached.is_none() && lost.is_empty() {
            // The new leader could not raise it in time: not a safety
            // violation in itself; the final fsck sees what stays wrong.
            what.push_str(" (replication not reached)");
        }
        for v in lost {
            println!("chaos: VIOLATION: {v}");
            self.violations.push(v);
        }
        Active::new(what, Duration::ZERO, undo)
    }

    /// Writes a one-block file, corrupts every replica of its block,
    /// reports them, and checks that all are quarantined and kept while
    /// fsck lists the block corrupt.
    pub(super) async fn corrupt_every_replica(&mut self, cl: &Cluster) -> Active {
        let t0 = Instant::now();
        let path = self.own_path("corrupt");
        let replication = self.rng.gen_range(2..=3u16);
        let len = BLOCK / 2 + self.rng.gen_range(0..BLOCK / 2);
        let seed = self.rng.gen();
        let blocks = match write_own(&self.ctl, &path, seed, len, replication).await {
            Ok(b) => b,
            Err(e) => {
                let what = format!("nemesis file {path} not written: {e}");
                return Active::new(what, Duration::ZERO, vec![]);
            }
        };
        let undo = vec![Undo::DeleteOwn(path.clone())];
        let b = blocks[0];
        let on =
            match wait_on_disk(cl, &blocks, replication as usize, Duration::from_secs(20)).await {
                Ok(h) => h[&b].clone(),
                Err(e) => {
                    let what = format!("{path} not on disk {replication} times in 20 s: {e}");
                    return Active::new(what, Duration::ZERO, undo);
                }
            };
        for &j in &on {
            let file = cl.replicas_on_disk(j)[&b].clone();
            let flen = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            let at = self.rng.gen_range(0..flen.saturating_sub(64).max(1));
            let mut fh = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&file)
                .unwrap();
            let mut buf = [0u8; 64];
            fh.seek(SeekFrom::Start(at)).unwrap();
            fh.read_exact(&mut buf).unwrap();
            for x in &mut buf {
                *x ^= 0x5a;
            }
            fh.seek(SeekFrom::Start(at)).unwrap();
            fh.write_all(&buf).unwrap();
            fh.sync_all().unwrap();
            self.damaged.push((j, b.0, b.1));
        }
        // A reader notices (it reports what fails its checksums) and so
        // does the nemesis, for every replica.
        let mut sink = Vec::new();
        let read = match tokio::time::timeout(
            Duration::from_secs(5),
            read_range(&self.ctl, &path, 0, len, &mut sink),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(tdfs_proto::FsError::Timeout(5000)),
        };
        let mut violations = Vec::new();
        if let Ok(n) = &read {
            let mut want = vec![0u8; len as usize];
            fill(seed, 0, &mut want);
            if sink != want {
                violations.push(format!(
                    "reading {path}, whose every replica is corrupt, returned {n} bytes that \
                     differ from what was written"
                ));
            }
        }
        for &j in &on {
            self.ctl.report_bad_replica(b.0, &datanode_id(cl, j)).await;
        }
        let gone = |cl: &Cluster, j: usize| {
            !quarantined_file(cl, j, b).exists() && !cl.replicas_on_disk(j).contains_key(&b)
        };
        let noticed = poll(Duration::from_secs(30), Duration::from_millis(200), || {
            let (on, path) = (on.clone(), path.clone());
            async move {
                if let Some(&j) = on.iter().find(|&&j| gone(cl, j)) {
                    // Not retried: reported below.
                    return Ok(Some(j));
                }
                let q: Vec<usize> = on
                    .iter()
                    .copied()
                    .filter(|&j| quarantined_file(cl, j, b).exists())
                    .collect();
                let listed = listed_corrupt(cl, &path).await?;
                if q.len() == on.len() && listed.contains(&b.0) {
                    Ok(None)
                } else {
                    Err(format!(
                        "quarantined on {q:?} of {on:?}; fsck -list-corruptfileblocks lists \
                         {listed:?}"
                    ))
                }
            }
        })
        .await;
        let mut what = format!(
            "every replica of block {} of {path} (replication {replication}, on datanodes \
             {on:?}) corrupted (64 bytes flipped) and reported; read: {}",
            b.0,
            match &read {
                Ok(n) => format!("{n} bytes"),
                Err(e) => format!("failed ({e})"),
            }
        );
        let mut kept = true;
        match noticed {
            Ok(Some(j)) => {
                kept = false;
                violations.push(format!(
                    "every replica of block {} was corrupt and the replica on datanode {j} was \
                     deleted (before all were quarantined)",
                    b.0
                ));
            }
            Ok(None) => what.push_str(&format!(
                "; all quarantined and listed by fsck -list-corruptfileblocks after {:.1?}",
                t0.elapsed()
            )),
            Err(e) => what.push_str(&format!("; not all noticed in 30 s: {e}")),
        }
        // The leader runs policy rounds every 500 ms: watch several.
        let d = hold(&mut self.rng, 3000, 5000);
        let until = Instant::now() + d;
        while kept && Instant::now() < until {
            if let Some(&j) = on.iter().find(|&&j| gone(cl, j)) {
                kept = false;
                violations.push(format!(
                    "every replica of block {} was corrupt and the replica on datanode {j} was \
                     deleted ({:.1?} after the damage)",
                    b.0,
                    t0.elapsed()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if kept {
            what.push_str(&format!("; all kept for {d:?} more"));
        }
        for v in violations {
            println!("chaos: VIOLATION: {v}");
            self.violations.push(v);
        }
        Active::new(what, Duration::ZERO, undo)
    }
}
