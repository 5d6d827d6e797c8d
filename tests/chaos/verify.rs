//! End-of-run checks, once every fault is healed and the workload stopped:
//! leases recovered, data intact or cleanly cut, every replica scrubbed,
//! fsck HEALTHY, no orphan or damaged replica left on any disk.

use super::cluster::Cluster;
use super::workload::{expected_sha, DataFile, Shared};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tdfs_client::{read_range, MetaClient};
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

/// Checks one data file against what was written; returns a violation.
async fn check_file(c: &MetaClient, f: &DataFile) -> Result<(), String> {
    if f.replaced {
        // Overwritten: the path is checked as the file that replaced it.
        return Ok(());
    }
    match f.deleted {
        Some(true) => {
            return match c.exists(&f.path).await.map_err(|e| e.to_string())? {
                Some(_) => Err(format!("{} is back after an acknowledged delete", f.path)),
                None => Ok(()),
            }
        }
        Some(false) => return Ok(()),
        None => {}
    }
    if f.killed_cli {
        let done = f.path.trim_end_matches("._COPYING_");
        if c.exists(done).await.map_err(|e| e.to_string())?.is_some() {
            return Err(format!(
                "{done} exists though its -put was killed before the end"
            ));
        }
    }
    let Some(st) = c.exists(&f.path).await.map_err(|e| e.to_string())? else {
        return if f.may_be_absent() {
            Ok(())
        } else {
            Err(format!("{} was created (acknowledged) but is gone", f.path))
        };
    };
    let allowed = f.allowed_lengths();
    if !allowed.contains(&st.length) {
        return Err(format!(
            "{} has length {}, allowed after what was acknowledged: {allowed:?} ({f:?})",
            f.path, st.length
        ));
    }
    let mut out = Vec::with_capacity(st.length as usize);
    read_range(c, &f.path, 0, st.length, &mut out)
        .await
        .map_err(|e| format!("reading {} back: {e}", f.path))?;
    let got: [u8; 32] = Sha256::digest(&out).into();
    if out.len() as u64 != st.length || got != expected_sha(f.seed, st.length) {
        return Err(format!(
            "{}: the {} bytes read back differ from what was written",
            f.path, st.length
        ));
    }
    Ok(())
}

/// Reads back every data file; returns violations.
pub async fn check_data(c: &MetaClient, sh: &Shared) -> Vec<String> {
    let files = sh.files.lock().unwrap().clone();
    let mut bad = Vec::new();
    for f in &files {
        // A read may fail transiently (a replica moving); retry a few times.
        let r = poll(Duration::from_secs(20), Duration::from_millis(500), || {
            check_file(c, f)
        })
        .await;
        if let Err(e) = r {
            bad.push(e);
        }
    }
    bad
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
pub async fn scrub(c: &MetaClient, cl: &Cluster) -> Result<usize, String> {
    let blocks = block_map(c).await?;
    let mut bad = 0;
    for ((id, gen), (len, _, addrs)) in &blocks {
        for a in addrs {
            let mut sink = tokio::io::sink();
            let r = read_block(a, None, *id, *gen, 0, *len, &mut sink).await;
            if !matches!(r, Ok(n) if n == *len) {
                bad += 1;
                if let Some(d) = cl.dns.iter().position(|d| &d.addr == a) {
                    let node = datanode_id(cl, d);
                    c.report_bad_replica(*id, &node).await;
                }
            }
        }
    }
    Ok(bad)
}

fn datanode_id(cl: &Cluster, j: usize) -> tdfs_proto::DatanodeId {
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
