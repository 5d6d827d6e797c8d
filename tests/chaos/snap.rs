//! Snapshots under faults: a directory of known files is snapshotted before
//! the nemesis starts; while faults run, its files are deleted, overwritten,
//! truncated (at a block boundary and inside a block) and appended to. After
//! healing, every file under `DIR/.snapshot/NAME/` must read back exactly as
//! it was when the snapshot was taken, and once the snapshot is deleted no
//! replica of a block only the snapshot referenced may stay on any disk.

use super::cluster::Cluster;
use super::verify::{block_map, poll};
use super::workload::{append, expected_sha, truncate, truncate_to, write_file, Shared, BLOCK};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{read_range, MetaClient};
use tdfs_proto::FsError;

/// The snapshottable directory.
pub const SNAP_DIR: &str = "/chaos/snap";
/// The snapshot's name.
pub const SNAP_NAME: &str = "s0";
/// Files in the directory when the snapshot is taken.
const FILES: usize = 4;

/// A file as the snapshot holds it.
#[derive(Clone, Debug)]
pub struct SnapFile {
    pub name: String,
    pub seed: u64,
    pub len: u64,
    /// Its entry in [`Shared::files`] (the live file, until replaced).
    pub idx: usize,
}

/// Writes the files (before any fault: each must be acknowledged), allows
/// and takes the snapshot. Returns what the snapshot must hold.
pub async fn setup(sh: &Shared, c: &Arc<MetaClient>, rng: &mut StdRng) -> Vec<SnapFile> {
    c.mkdirs(SNAP_DIR, true)
        .await
        .expect("mkdir the snapshot dir");
    let mut out = Vec::new();
    for i in 0..FILES {
        let name = format!("f{i}");
        let seed = rng.gen();
        // Multi-block, last block partial: truncates inside and at
        // boundaries both have somewhere to cut.
        let len = rng.gen_range(BLOCK + BLOCK / 4..BLOCK * 3 - BLOCK / 4);
        let idx = write_file(sh, c, format!("{SNAP_DIR}/{name}"), seed, len, false).await;
        let f = sh.files.lock().unwrap()[idx].clone();
        assert!(
            f.failed.is_none(),
            "writing {SNAP_DIR}/{name} before any fault failed"
        );
        out.push(SnapFile {
            name,
            seed,
            len,
            idx,
        });
    }
    c.allow_snapshot(SNAP_DIR).await.expect("allow snapshot");
    c.create_snapshot(SNAP_DIR, Some(SNAP_NAME))
        .await
        .expect("create the snapshot");
    out
}

/// During the faults: seeded changes to the snapshotted files. The first
/// two are fixed (an inside-block truncate of f0, a delete of f1), so that
/// every run leaves blocks only the snapshot references. A deleted file is
/// followed by a new one under a new name in the same directory.
pub async fn mutator(sh: Arc<Shared>, c: Arc<MetaClient>, files: Vec<SnapFile>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Live entry of each snapshot name (None once deleted or given up).
    let mut live: Vec<Option<usize>> = files.iter().map(|f| Some(f.idx)).collect();
    let mut step = 0u64;
    while !sh.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..400))).await;
        step += 1;
        let (slot, op) = match step {
            1 => (0, 0),
            2 => (1, 3),
            // Truncate 35 %, append 30 %, overwrite 25 %, delete 10 %.
            _ => {
                let op = match rng.gen_range(0..100) {
                    0..=34 => 0,
                    35..=64 => 1,
                    65..=89 => 2,
                    _ => 3,
                };
                (rng.gen_range(0..live.len()), op)
            }
        };
        let Some(idx) = live[slot] else { continue };
        let f = sh.files.lock().unwrap()[idx].clone();
        if f.busy || f.trunc.is_some() || f.failed.is_some() {
            // An unacknowledged change: the file is left as it is.
            live[slot] = None;
            continue;
        }
        match op {
            0 => {
                // Truncate inside a block if there is one to cut, else at a
                // boundary: `truncate` picks; step 1 insists on inside.
                if step == 1 {
                    // Inside the second block (every file is longer), whose
                    // old contents the snapshot keeps: copy-on-truncate.
                    truncate_to(&sh, &c, idx, BLOCK + BLOCK / 8).await;
                } else {
                    truncate(&sh, &c, idx, &mut rng).await;
                }
            }
            1 if f.acked_len < 6 * BLOCK => {
                append(&sh, &c, idx, rng.gen_range(BLOCK / 4..BLOCK * 3 / 2)).await;
            }
            2 => {
                // Overwrite: a new file of the same path, new contents.
                sh.update(idx, |f| {
                    f.busy = true;
                    f.epoch += 1;
                    f.replaced = true;
                });
                let len = rng.gen_range(BLOCK / 2..BLOCK * 5 / 2);
                let n = write_file(&sh, &c, f.path.clone(), rng.gen(), len, true).await;
                if sh.files.lock().unwrap()[n].failed.is_some() {
                    // Old file, new file, or a cut of the new one: not
                    // known which; the path leaves the game unchecked.
                    sh.update(n, |f| f.replaced = true);
                    live[slot] = None;
                } else {
                    sh.counters.snap_overwrites.fetch_add(1, Ordering::Relaxed);
                    live[slot] = Some(n);
                }
            }
            3 => {
                let ok = c.delete(&f.path, false).await.is_ok();
                sh.update(idx, |f| f.deleted = Some(ok));
                live[slot] = None;
                if ok {
                    sh.counters.snap_deletes.fetch_add(1, Ordering::Relaxed);
                    // A new file under a new name takes the slot: the
                    // directory keeps changing, and the snapshot must not
                    // list it.
                    let path = format!("{}-{step}", f.path);
                    let len = rng.gen_range(BLOCK / 2..BLOCK * 5 / 2);
                    let n = write_file(&sh, &c, path, rng.gen(), len, false).await;
                    if sh.files.lock().unwrap()[n].failed.is_none() {
                        live[slot] = Some(n);
                    }
                }
            }
            _ => {}
        }
    }
}

/// What the snapshot check found.
#[derive(Debug, Default)]
pub struct SnapReport {
    pub files: usize,
    /// Blocks (id, gen) only the snapshot referenced, freed after deletion.
    pub snapshot_only: usize,
    pub freed_in: Duration,
}

async fn check_one(c: &MetaClient, f: &SnapFile) -> Result<(), String> {
    let p = format!("{SNAP_DIR}/.snapshot/{SNAP_NAME}/{}", f.name);
    let st = c.stat(&p).await.map_err(|e| format!("stat {p}: {e}"))?;
    if st.length != f.len {
        return Err(format!(
            "{p} has length {}, but was {} when the snapshot was taken",
            st.length, f.len
        ));
    }
    let mut out = Vec::with_capacity(f.len as usize);
    read_range(c, &p, 0, f.len, &mut out)
        .await
        .map_err(|e| format!("reading {p}: {e}"))?;
    let got: [u8; 32] = Sha256::digest(&out).into();
    if out.len() as u64 != f.len || got != expected_sha(f.seed, f.len) {
        return Err(format!(
            "{p}: the {} bytes read back differ from the file at snapshot time",
            out.len()
        ));
    }
    Ok(())
}

/// After healing: the snapshot reads back as taken; then it is deleted and
/// every replica of a block only it referenced must leave every disk.
pub async fn check(c: &MetaClient, cl: &Cluster, files: &[SnapFile]) -> Result<SnapReport, String> {
    let root = format!("{SNAP_DIR}/.snapshot/{SNAP_NAME}");
    let names: BTreeSet<String> = poll(
        Duration::from_secs(20),
        Duration::from_millis(500),
        || async {
            let l = c
                .list(&root)
                .await
                .map_err(|e| format!("list {root}: {e}"))?;
            Ok(l.into_iter().map(|e| e.name).collect())
        },
    )
    .await?;
    let want: BTreeSet<String> = files.iter().map(|f| f.name.clone()).collect();
    if names != want {
        return Err(format!(
            "{root} lists {names:?}, but held {want:?} when taken"
        ));
    }
    for f in files {
        poll(Duration::from_secs(20), Duration::from_millis(500), || {
            check_one(c, f)
        })
        .await?;
    }
    // The snapshot's blocks, and those of the live namespace.
    let mut snap_blocks = BTreeSet::new();
    for f in files {
        let p = format!("{root}/{}", f.name);
        let lbs = c
            .block_locations(&p, 0, u64::MAX)
            .await
            .map_err(|e| format!("locations of {p}: {e}"))?;
        snap_blocks.extend(lbs.blocks.iter().map(|lb| (lb.block.id, lb.block.gen)));
    }
    let live: BTreeSet<(u64, u64)> = block_map(c).await?.into_keys().collect();
    let only: BTreeSet<(u64, u64)> = snap_blocks.difference(&live).copied().collect();
    if only.is_empty() {
        return Err(format!(
            "no block is referenced by the snapshot alone (snapshot {snap_blocks:?}): \
             the deletion check would check nothing"
        ));
    }
    // Still held while the snapshot exists.
    let on_disk =
        |k: &(u64, u64)| (0..cl.dns.len()).any(|j| cl.replicas_on_disk(j).contains_key(k));
    if let Some(k) = only.iter().find(|k| !on_disk(k)) {
        return Err(format!(
            "block {k:?} of the snapshot has no replica on any disk while the snapshot exists"
        ));
    }
    poll(
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            match c.delete_snapshot(SNAP_DIR, SNAP_NAME).await {
                Ok(()) => Ok(()),
                // A retried delete whose first attempt applied.
                Err(_) if matches!(c.list(&root).await, Err(FsError::FileNotFound(_))) => Ok(()),
                Err(e) => Err(format!("deleting the snapshot: {e}")),
            }
        },
    )
    .await?;
    let t = std::time::Instant::now();
    poll(Duration::from_secs(60), Duration::from_millis(500), || async {
        let left: Vec<_> = only.iter().filter(|k| on_disk(k)).collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "replicas of snapshot-only blocks {left:?} still on disk after the snapshot was deleted"
            ))
        }
    })
    .await?;
    Ok(SnapReport {
        files: files.len(),
        snapshot_only: only.len(),
        freed_in: t.elapsed(),
    })
}
