//! End-of-run checks, once every fault is healed and the workload stopped:
//! leases recovered, data intact or cleanly cut, every replica scrubbed,
//! fsck HEALTHY, no orphan or damaged replica left on any disk.

use super::cluster::Cluster;
use super::history::{classify as classify_ns, key_count, key_path, key_slots, NsOp, Ret};
use super::workload::{expected_sha, DataFile, Shared};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tdfs_client::{read_range, MetaClient};
use tdfs_proto::FsError;
use tdfs_transfer::read_block;

/// Polls `f` every `every` until it returns `Ok`, or returns its last error
/// once `timeout` has passed.
pub async fn poll<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Every file in the namespace (recursive listing).
pub async fn all_files(c: &MetaClient) -> Result<Vec<(String, bool)>, String> {
    let mut out = Vec::new();
    let mut dirs = vec!["/".to_string()];
    while let Some(d) = dirs.pop() {
        let entries = c.list(&d).await.map_err(|e| format!("list {d}: {e}"))?;
        for e in entries {
            let p = if d == "/" {
                format!("/{}", e.name)
            } else {
                format!("{d}/{}", e.name)
            };
            if e.is_dir() {
                dirs.push(p);
            } else {
                out.push((p, e.under_construction));
            }
        }
    }
    Ok(out)
}

/// Waits until no file is under construction (every lease recovered).
pub async fn leases_recovered(c: &MetaClient) -> Result<(), String> {
    poll(
        Duration::from_secs(60),
        Duration::from_millis(300),
        || async {
            let open: Vec<String> = all_files(c)
                .await?
                .into_iter()
                .filter(|(_, uc)| *uc)
                .map(|(p, _)| p)
                .collect();
            if open.is_empty() {
                Ok(())
            } else {
                Err(format!("files still under construction: {open:?}"))
            }
        },
    )
    .await
}

/// Why the check of one file (or replica) did not pass.
#[derive(Debug)]
pub enum Fail {
    /// The cluster said "not now": no live replica, connection refused or
    /// reset, a timeout, no leader. Retried until a deadline.
    Unavailable(String),
    /// Anything else: a wrong length, wrong bytes, a gone file, any other
    /// error. A violation at once, never retried.
    Wrong(String),
}

/// Whether `e` only says that the cluster could not serve the call now.
pub fn is_unavailable(e: &FsError) -> bool {
    match e {
        FsError::Unavailable(_)
        | FsError::Timeout(_)
        | FsError::NotLeader { .. }
        | FsError::NoDatanodes(_) => true,
        FsError::Io(m) => {
            let m = m.to_ascii_lowercase();
            [
                "connection refused",
                "connection reset",
                "timed out",
                "unreachable",
            ]
            .iter()
            .any(|w| m.contains(w))
        }
        _ => false,
    }
}

fn classify(what: String, e: FsError) -> Fail {
    if is_unavailable(&e) {
        Fail::Unavailable(format!("{what}: {e}"))
    } else {
        Fail::Wrong(format!("{what}: {e}"))
    }
}

/// Checks one data file against what was written.
async fn check_file(c: &MetaClient, f: &DataFile) -> Result<(), Fail> {
    if f.replaced {
        // Overwritten: the path is checked as the file that replaced it.
        return Ok(());
    }
    let exists = |p: String| async move {
        c.exists(&p)
            .await
            .map_err(|e| classify(format!("stat {p}"), e))
    };
    match f.deleted {
        Some(true) => {
            return match exists(f.path.clone()).await? {
                Some(_) => Err(Fail::Wrong(format!(
                    "{} is back after an acknowledged delete",
                    f.path
                ))),
                None => Ok(()),
            }
        }
        Some(false) => return Ok(()),
        None => {}
    }
    if f.killed_cli {
        let done = f.path.trim_end_matches("._COPYING_").to_string();
        if exists(done.clone()).await?.is_some() {
            return Err(Fail::Wrong(format!(
                "{done} exists though its -put was killed before the end"
            )));
        }
    }
    let Some(st) = exists(f.path.clone()).await? else {
        return if f.may_be_absent() {
            Ok(())
        } else {
            Err(Fail::Wrong(format!(
                "{} was created (acknowledged) but is gone",
                f.path
            )))
        };
    };
    let allowed = f.allowed_lengths();
    if !allowed.contains(&st.length) {
        return Err(Fail::Wrong(format!(
            "{} has length {}, allowed after what was acknowledged: {allowed:?} ({f:?})",
            f.path, st.length
        )));
    }
    let mut out = Vec::with_capacity(st.length as usize);
    read_range(c, &f.path, 0, st.length, &mut out)
        .await
        .map_err(|e| classify(format!("reading {} back", f.path), e))?;
    let got: [u8; 32] = Sha256::digest(&out).into();
    if out.len() as u64 != st.length || got != expected_sha(f.seed, st.length) {
        return Err(Fail::Wrong(format!(
            "{}: the {} bytes read back differ from what was written ({} bytes returned)",
            f.path,
            st.length,
            out.len()
        )));
    }
    Ok(())
}

/// What the data check did.
#[derive(Debug, Default)]
pub struct DataReport {
    pub files: usize,
    /// Reads retried because the cluster said "unavailable", by cause
    /// (digits blanked).
    pub retries: BTreeMap<String, u64>,
    pub violations: Vec<String>,
}

/// How long one file may stay unavailable after healing.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(30);

/// Reads back every data file once. Only an answer that says
/// "unavailable" is retried (until a deadline, counted); a wrong length,
/// wrong bytes or any other error is a violation at once.
pub async fn check_data(c: &MetaClient, sh: &Shared) -> DataReport {
    let files = sh.files.lock().unwrap().clone();
    let mut rep = DataReport {
        files: files.len(),
        ..Default::default()
    };
    // Retries stop for good once the check has waited this long in all (a
    // cluster that stays down fails every remaining file at once).
    let mut waited = Duration::ZERO;
    for f in &files {
        let deadline =
            Instant::now() + UNAVAILABLE_FOR.min((2 * UNAVAILABLE_FOR).saturating_sub(waited));
        loop {
            match check_file(c, f).await {
                Ok(()) => break,
                Err(Fail::Wrong(m)) => {
                    rep.violations.push(m);
                    break;
                }
                Err(Fail::Unavailable(m)) => {
                    *rep.retries.entry(blank_digits(&m)).or_default() += 1;
                    if Instant::now() > deadline {
                        rep.violations.push(format!(
                            "{} still unavailable {UNAVAILABLE_FOR:?} after healing: {m}",
                            f.path
                        ));
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    waited += Duration::from_millis(200);
                }
            }
        }
    }
    rep
}

/// `m` with its digits blanked and cut to 100 characters (a cause, for counts).
pub fn blank_digits(m: &str) -> String {
    m.chars()
        .map(|ch| if ch.is_ascii_digit() { '#' } else { ch })
        .take(100)
        .collect()
}

/// The committed blocks of every file: (id, gen) → (len, sha256), and the
/// replica locations the leader knows.
pub async fn block_map(
    c: &MetaClient,
) -> Result<BTreeMap<(u64, u64), (u64, Option<[u8; 32]>, Vec<String>)>, String> {
    let mut out = BTreeMap::new();
    for (p, _) in all_files(c).await? {
        let lbs = c
            .block_locations(&p, 0, u64::MAX)
            .await
            .map_err(|e| format!("locations of {p}: {e}"))?;
        for lb in lbs.blocks {
            let addrs = lb.locations.into_iter().map(|l| l.addr).collect();
            out.insert(
                (lb.block.id, lb.block.gen),
                (lb.block.len, lb.block.sha256, addrs),
            );
        }
    }
    Ok(out)
}

/// Reads every replica of every block once (a scrub); a replica that fails
/// is reported to the leader, which has its datanode verify and drop it.
/// Every bad replica must be one the nemesis damaged (`damaged`: datanode,
/// block id, generation; the block may have moved to a newer generation
/// since); any other fails the check. Only "unavailable" is retried.
pub async fn scrub(
    c: &MetaClient,
    cl: &Cluster,
    damaged: &[(usize, u64, u64)],
) -> Result<usize, String> {
    let blocks = block_map(c).await?;
    let mut bad = 0;
    let mut unexplained = Vec::new();
    for ((id, gen), (len, _, addrs)) in &blocks {
        for a in addrs {
            let Some(j) = cl.dns.iter().position(|d| &d.addr == a) else {
                unexplained.push(format!("block {id} listed on {a}, which is no datanode"));
                continue;
            };
            let deadline = Instant::now() + UNAVAILABLE_FOR;
            let why = loop {
                let mut sink = tokio::io::sink();
                match read_block(a, None, *id, *gen, 0, *len, &mut sink).await {
                    Ok(n) if n == *len => break None,
                    Ok(n) => break Some(format!("{n} of {len} bytes")),
                    Err(e) if is_unavailable(&e) && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => break Some(e.to_string()),
                }
            };
            let Some(why) = why else { continue };
            bad += 1;
            let ours = damaged
                .iter()
                .any(|&(dj, did, dgen)| dj == j && did == *id && dgen <= *gen);
            if !ours {
                unexplained.push(format!(
                    "replica blk_{id}_{gen} on datanode {j} is bad ({why}) but the nemesis \
                     never damaged it (damaged: {damaged:?})"
                ));
            }
            c.report_bad_replica(*id, &datanode_id(cl, j)).await;
        }
    }
    if unexplained.is_empty() {
        Ok(bad)
    } else {
        Err(unexplained.join("; "))
    }
}

pub fn datanode_id(cl: &Cluster, j: usize) -> tdfs_proto::DatanodeId {
    let s = std::fs::read_to_string(cl.dns[j].data_dir.join("datanode.id")).unwrap_or_default();
    tdfs_proto::DatanodeId(s.trim().to_string())
}

/// fsck HEALTHY, nothing under- or over-replicated.
pub async fn fsck_healthy(c: &MetaClient) -> Result<tdfs_proto::meta::FsckReport, String> {
    poll(
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async {
            let f = c.fsck("/").await.map_err(|e| e.to_string())?;
            if f.missing == 0 && f.corrupt == 0 && f.under_replicated == 0 && f.over_replicated == 0
            {
                Ok(f)
            } else {
                Err(format!("fsck not healthy: {f:?}"))
            }
        },
    )
    .await
}

/// Every finalized replica on every datanode's disk belongs to a committed
/// block at its current generation and holds exactly that block's bytes:
/// no orphan, stale or damaged replica survives once deletions settle.
pub async fn disks_clean(c: &MetaClient, cl: &Cluster) -> Result<usize, String> {
    poll(Duration::from_secs(90), Duration::from_secs(1), || async {
        let blocks = block_map(c).await?;
        let mut problems = Vec::new();
        let mut replicas = 0;
        for j in 0..cl.dns.len() {
            for ((id, gen), path) in cl.replicas_on_disk(j) {
                replicas += 1;
                let Some((len, sha, _)) = blocks.get(&(id, gen)) else {
                    problems.push(format!("datanode {j}: orphan replica blk_{id}_{gen}"));
                    continue;
                };
                let data = std::fs::read(&path).unwrap_or_default();
                let got: [u8; 32] = Sha256::digest(&data).into();
                if data.len() as u64 != *len || sha.is_some_and(|s| s != got) {
                    problems.push(format!("datanode {j}: damaged replica blk_{id}_{gen}"));
                }
            }
        }
        // Every committed block is on at least one disk.
        let on_disk: BTreeSet<(u64, u64)> = (0..cl.dns.len())
            .flat_map(|j| cl.replicas_on_disk(j).into_keys())
            .collect();
        for k in blocks.keys() {
            if !on_disk.contains(k) {
                problems.push(format!("block {k:?} has no replica on any disk"));
            }
        }
        if problems.is_empty() {
            Ok(replicas)
        } else {
            Err(problems.join("; "))
        }
    })
    .await
}

/// Worker number of the final reads in the history.
pub const FINAL_READER: usize = 99;

/// After healing: stats every path of every key once and records each read
/// in the history, so the checker judges them (the last operations) against
/// everything before. Only "unavailable" is retried; a path that cannot be
/// read is a violation. Returns the number of reads and the violations.
pub async fn final_reads(c: &MetaClient, sh: &Shared) -> (usize, Vec<String>) {
    let mut n = 0;
    let mut bad = Vec::new();
    for key in 0..key_count() {
        for slot in 0..key_slots(key) {
            let path = key_path(key, slot);
            let deadline = Instant::now() + UNAVAILABLE_FOR;
            loop {
                let invoke = sh.hist.now();
                let op = NsOp::Stat(slot as u8);
                let res = match c.stat(&path).await {
                    Ok(st) => super::workload::stat_ret(&st),
                    Err(e) if classify_ns(op, &e) == Ret::NotFound => Ret::NotFound,
                    Err(e) if is_unavailable(&e) && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                    Err(e) => {
                        bad.push(format!("final read of {path}: {e}"));
                        break;
                    }
                };
                sh.hist.record(FINAL_READER, key, op, invoke, res);
                n += 1;
                break;
            }
        }
    }
    (n, bad)
}
