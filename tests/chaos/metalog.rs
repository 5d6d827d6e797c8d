//! The metadata-log fault: a follower's Raft log damaged in the middle
//! (as a bad disk does, not a crash). The node must refuse to start,
//! exiting non-zero with an error that names the file and the offset; a
//! node that starts anyway (replaying around the damage, or cutting the
//! log at it) is a violation. The nemesis then recovers it as
//! docs/operations.md says: the data directory moved aside, the node
//! started empty with the same id, catching up from the leader.

use super::cluster::{Cluster, Who};
use super::nemesis::{hold, Active, Nemesis, Undo};
use super::workload::Shared;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The log's layout (crates/meta-raft/src/log_store/format.rs).
const FILE_HEADER: usize = 12;
const RECORD_HEADER: usize = 20;
const RECORD_MAGIC: &[u8; 4] = b"REC1";

/// How long a node with a damaged log may take to refuse to start.
const REFUSE_WITHIN: Duration = Duration::from_secs(15);

/// The Raft log file under `dir`.
fn find_log(dir: &Path) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_log(&p) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == "log.dat") {
            return Some(p);
        }
    }
    None
}

/// Offsets of the records of a log file, in order.
fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = FILE_HEADER;
    while at + RECORD_HEADER <= bytes.len() && &bytes[at..at + 4] == RECORD_MAGIC {
        let len = u32::from_le_bytes(bytes[at + 12..at + 16].try_into().unwrap()) as usize;
        if at + RECORD_HEADER + len > bytes.len() {
            break;
        }
        out.push((at, len));
        at += RECORD_HEADER + len;
    }
    out
}

impl Nemesis {
    /// Kills a follower, damages a record in the middle of its log, and
    /// checks that it refuses to start; the undo wipes and restarts it.
    pub(super) async fn damage_meta_log(&mut self, cl: &mut Cluster, sh: &Shared) -> Active {
        let l = cl.wait_leader(&self.ctl, Duration::from_secs(30)).await;
        let others: Vec<usize> = (0..3).filter(|&i| i != l).collect();
        let v = others[rand::Rng::gen_range(&mut self.rng, 0..2)];
        cl.metas[v].kill();
        let dir = cl.metas[v].data_dir.clone();
        let Some(file) = find_log(&dir) else {
            panic!("meta {} has no log.dat under {}", v + 1, dir.display());
        };
        let mut bytes = std::fs::read(&file).unwrap();
        let recs = records(&bytes);
        if recs.len() < 3 {
            let what = format!(
                "meta {}'s log has {} records, too few to damage one in the middle",
                v + 1,
                recs.len()
            );
            return Active::new(
                what,
                Duration::ZERO,
                vec![Undo::Restart(vec![Who::Meta(v)])],
            );
        }
        // A record with valid ones after it: not a torn tail.
        let k = rand::Rng::gen_range(&mut self.rng, 1..recs.len() - 1);
        let (off, len) = recs[k];
        let flip = off + RECORD_HEADER + rand::Rng::gen_range(&mut self.rng, 0..len.max(1));
        bytes[flip] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let verdict = refuses_to_start(cl, v, off).await;
        let what = match verdict {
            Ok(how) => format!(
                "meta {}'s log damaged at byte {flip} (record {k} of {} at offset {off}): {how}",
                v + 1,
                recs.len()
            ),
            Err(e) => {
                println!("chaos: VIOLATION: {e}");
                sh.violations.lock().unwrap().push(e.clone());
                e
            }
        };
        let d = hold(&mut self.rng, 500, 2000);
        Active::new(what, d, vec![Undo::WipeMeta(v)])
    }
}

impl Nemesis {
    /// docs/operations.md's recovery of a damaged member `i`.
    pub(super) async fn wipe_and_rejoin(&mut self, cl: &mut Cluster, i: usize) -> String {
        let id = i as u64 + 1;
        let ctl = self.ctl.clone();
        let removed =
            super::verify::poll(Duration::from_secs(60), Duration::from_millis(200), || {
                let ctl = ctl.clone();
                async move {
                    ctl.admin(tdfs_proto::meta::AdminRequest::RemoveMeta { id })
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            })
            .await;
        if let Err(e) = removed {
            // Only after a damaged member was let start (a violation
            // already): the group may have lost its leader.
            let v = format!("haadmin -removeMeta {id} of a damaged member failed for 60 s: {e}");
            self.violations.push(v.clone());
            return v;
        }
        let dir = cl.metas[i].data_dir.clone();
        let aside = dir.with_extension(format!("damaged-{}", self.log.len()));
        std::fs::rename(&dir, &aside).expect("move the damaged data directory aside");
        std::fs::create_dir_all(&dir).unwrap();
        cl.spawn_meta(i);
        let added = self.re_add_meta(cl, i).await;
        format!("haadmin -removeMeta {id}, data directory moved aside, started empty, {added}")
    }
}

/// Starts meta `v` on its damaged log and waits for it to exit: `Ok` with
/// what it said when it refused (non-zero, naming the offset), `Err` with
/// the violation when it kept running or exited 0.
async fn refuses_to_start(cl: &mut Cluster, v: usize, off: usize) -> Result<String, String> {
    let before = std::fs::metadata(&cl.metas[v].log).map_or(0, |m| m.len() as usize);
    cl.spawn_meta(v);
    let t = Instant::now();
    let status = loop {
        let child = cl.metas[v].child.as_mut().expect("just spawned");
        if let Some(st) = child.try_wait().expect("wait for the meta process") {
            break Some(st);
        }
        if t.elapsed() > REFUSE_WITHIN {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let said = std::fs::read(&cl.metas[v].log).unwrap_or_default();
    let said = String::from_utf8_lossy(&said[before.min(said.len())..]).to_string();
    match status {
        None => {
            cl.metas[v].kill();
            Err(format!(
                "meta {} started on a log damaged in the middle (record at offset {off}) and \
                 ran for {REFUSE_WITHIN:?}",
                v + 1
            ))
        }
        Some(st) => {
            cl.metas[v].child = None;
            let named = said.contains("log.dat") && said.contains(&off.to_string());
            if st.success() || !named {
                Err(format!(
                    "meta {} with a log damaged at offset {off} exited with {st} without naming \
                     log.dat and the offset: {}",
                    v + 1,
                    said.lines().last().unwrap_or("")
                ))
            } else {
                Ok(format!(
                    "refused to start ({st}) in {:.1?}, naming the file and offset",
                    t.elapsed()
                ))
            }
        }
    }
}
