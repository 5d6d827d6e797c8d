//! Opening a data directory: the lock, the node id, and the scan that
//! turns whatever a crash left into a consistent set of replicas.
//!
//! What was never acknowledged may go: everything under `rbw/`, and a data
//! file in `current/` whose meta file was never published. What was a
//! finalized replica and no longer reads right is quarantined, never
//! deleted. A quarantine interrupted by a crash is finished.

use super::meta::{parse_name, read_meta, replica_paths, MetaError};
use super::quarantine::move_aside;
use super::{
    io_at, remove_quietly, sync_dir, BlockStore, Inner, Quarantined, Replica, StoreConfig, CURRENT,
    ID_FILE, LOCK_FILE, QUARANTINE, RBW,
};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use tdfs_disk::{Disk, DiskFile, Open};
use tdfs_proto::{BlockId, DatanodeId, FsError};

/// What the scan of `current/` found.
#[derive(Default)]
struct Loaded {
    /// The valid replicas, the highest generation of each block.
    replicas: HashMap<BlockId, Replica>,
    /// Replicas to quarantine, with the reason.
    bad: Vec<(BlockId, u64, String)>,
    /// Files removed (never published, or superseded).
    removed: usize,
}

impl BlockStore {
    /// Opens (creating if needed) the data directory, locks it, and loads the
    /// finalized and quarantined replicas, clearing what a crash left.
    pub fn open(cfg: StoreConfig) -> Result<Arc<BlockStore>, FsError> {
        let disk = cfg.disk.clone();
        let disk = &*disk;
        let dir = cfg.dir.clone();
        make_dir(disk, &dir, cfg.fsync)?;
        let lock = lock_dir(disk, &dir)?;
        let node = load_or_create_id(disk, &dir)?;
        let current = dir.join(CURRENT);
        let rbw = dir.join(RBW);
        let qdir = dir.join(QUARANTINE);
        let mut created = false;
        for d in [&current, &rbw, &qdir] {
            if !disk.exists(d).map_err(|e| io_at("cannot stat", d, e))? {
                disk.create_dir_all(d)
                    .map_err(|e| io_at("cannot create", d, e))?;
                created = true;
            }
        }
        if created && cfg.fsync {
            sync_dir(disk, &dir)?;
        }
        clean_rbw(disk, &rbw, cfg.fsync)?;
        let mut quarantined = scan_quarantine(disk, &qdir)?;
        let loaded = load_current(disk, &current, &quarantined)?;
        if loaded.removed > 0 && cfg.fsync {
            sync_dir(disk, &current)?;
        }
        let n_bad = loaded.bad.len() as u64;
        quarantine_bad(
            disk,
            (&current, &qdir),
            loaded.bad,
            &mut quarantined,
            cfg.fsync,
        );
        let used = loaded.replicas.values().map(|r| r.len).sum();
        let quarantined_bytes = quarantined.values().map(|q| q.bytes).sum();
        tracing::info!(
            "block store {} (datanode {node}): {} replicas, {used} bytes, {} quarantined",
            dir.display(),
            loaded.replicas.len(),
            quarantined.len()
        );
        let store = BlockStore {
            cfg,
            node,
            current,
            rbw,
            quarantine: qdir,
            inner: Mutex::new(Inner {
                replicas: loaded.replicas,
                quarantined,
                used,
                quarantined_bytes,
                ..Inner::default()
            }),
            publish: Mutex::new(()),
            next_token: AtomicU64::new(1),
            stats: Arc::default(),
            _lock: lock,
        };
        store.stats.quarantined.inc_by(n_bad);
        Ok(Arc::new(store))
    }
}

/// Moves the replicas the scan found bad into quarantine (or, when that
/// fails, records them as quarantined where they are).
fn quarantine_bad(
    disk: &dyn Disk,
    (current, qdir): (&Path, &Path),
    bad: Vec<(BlockId, u64, String)>,
    quarantined: &mut BTreeMap<(BlockId, u64), Quarantined>,
    fsync: bool,
) {
    for (id, gen, why) in bad {
        tracing::warn!(
            fault = "local",
            "quarantining replica {id} gen {gen}: {why}"
        );
        let entry = match move_aside(disk, current, qdir, id, gen, fsync) {
            Ok(bytes) => Quarantined {
                bytes,
                in_current: false,
            },
            Err(e) => {
                tracing::error!(
                    fault = "local",
                    "cannot move replica {id} gen {gen} into quarantine ({e}); \
                     it stays in {} and is not served",
                    current.display()
                );
                Quarantined {
                    bytes: 0,
                    in_current: true,
                }
            }
        };
        quarantined
            .entry((id, gen))
            .and_modify(|q| *q = merge(*q, entry))
            .or_insert(entry);
    }
}

/// An interrupted quarantine finished now: the files moved earlier and the
/// ones moved now.
fn merge(earlier: Quarantined, now: Quarantined) -> Quarantined {
    Quarantined {
        bytes: earlier.bytes + now.bytes,
        in_current: now.in_current,
    }
}

/// Creates the data directory; a new one is made durable in its parent.
fn make_dir(disk: &dyn Disk, dir: &Path, fsync: bool) -> Result<(), FsError> {
    let fresh = !disk
        .exists(dir)
        .map_err(|e| io_at("cannot stat data directory", dir, e))?;
    disk.create_dir_all(dir)
        .map_err(|e| io_at("cannot create data directory", dir, e))?;
    if fresh && fsync {
        let parent = tdfs_disk::parent_dir(dir);
        if let Err(e) = disk.sync_dir(parent) {
            tracing::debug!("cannot fsync {}: {e}", parent.display());
        }
    }
    Ok(())
}

/// Takes the directory's lock and records this process in it.
fn lock_dir(disk: &dyn Disk, dir: &Path) -> Result<Box<dyn DiskFile>, FsError> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = match disk.try_lock(&lock_path) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            let holder = disk
                .read_max(&lock_path, 64)
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            return Err(FsError::Io(format!(
                "data directory {} is already in use by another datanode (lock {} held{})",
                dir.display(),
                lock_path.display(),
                match holder.as_str() {
                    "" => String::new(),
                    pid => format!(" by pid {pid}"),
                }
            )));
        }
        Err(e) => return Err(io_at("cannot lock", &lock_path, e)),
    };
    // Record the holder for the error message of a second process.
    let _ = lock.set_len(0);
    let _ = lock.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0);
    Ok(lock)
}

fn load_or_create_id(disk: &dyn Disk, dir: &Path) -> Result<DatanodeId, FsError> {
    let path = dir.join(ID_FILE);
    match disk.read_max(&path, 4096) {
        Ok(b) => {
            let s = String::from_utf8_lossy(&b);
            let id = s.trim();
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(FsError::Io(format!(
                    "{} does not hold a valid datanode id ({:?}); remove it to get a new id",
                    path.display(),
                    s.chars().take(80).collect::<String>()
                )));
            }
            Ok(DatanodeId(id.to_string()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes: [u8; 8] = rand::random();
            let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            disk.write_atomic(&path, format!("{id}\n").as_bytes())
                .map_err(|e| io_at("cannot write", &path, e))?;
            Ok(DatanodeId(id))
        }
        Err(e) => Err(io_at("cannot read", &path, e)),
    }
}

/// Removes the replicas that were being received when the process died.
fn clean_rbw(disk: &dyn Disk, rbw: &Path, fsync: bool) -> Result<(), FsError> {
    let mut removed = 0usize;
    for entry in disk
        .read_dir(rbw)
        .map_err(|e| io_at("cannot list", rbw, e))?
    {
        let p = rbw.join(&entry.name);
        let r = if entry.is_dir {
            disk.remove_dir_all(&p)
        } else {
            disk.remove_file(&p)
        };
        r.map_err(|e| io_at("cannot remove partial replica", &p, e))?;
        removed += 1;
    }
    if removed > 0 {
        tracing::info!(
            "removed {removed} partial replica file(s) from {}",
            rbw.display()
        );
        if fsync {
            sync_dir(disk, rbw)?;
        }
    }
    Ok(())
}

/// The replicas already in `quarantine/`, with the bytes they take.
fn scan_quarantine(
    disk: &dyn Disk,
    qdir: &Path,
) -> Result<BTreeMap<(BlockId, u64), Quarantined>, FsError> {
    let mut found: BTreeMap<(BlockId, u64), Quarantined> = BTreeMap::new();
    for entry in disk
        .read_dir(qdir)
        .map_err(|e| io_at("cannot list", qdir, e))?
    {
        let path = qdir.join(&entry.name);
        let Some((id, gen, _)) = entry.name.to_str().and_then(parse_name) else {
            tracing::warn!(
                fault = "local",
                "ignoring unexpected file {}",
                path.display()
            );
            continue;
        };
        let bytes = disk.metadata(&path).map(|m| m.len).unwrap_or(0);
        let q = found.entry((id, gen)).or_insert(Quarantined {
            bytes: 0,
            in_current: false,
        });
        q.bytes += bytes;
    }
    Ok(found)
}

/// Checks one published replica: its meta file reads and parses, names the
/// block it is stored as, and its data file opens with the recorded length.
fn check_replica(
    disk: &dyn Disk,
    (id, gen): (BlockId, u64),
    meta_path: &Path,
    data_path: Option<&PathBuf>,
) -> Result<Replica, String> {
    let m = match read_meta(disk, meta_path) {
        Ok(m) => m,
        Err(MetaError::Io(e)) => return Err(format!("cannot read its meta file: {e}")),
        Err(MetaError::Invalid(why)) => return Err(format!("invalid meta file: {why}")),
    };
    if m.id != id || m.gen != gen {
        return Err(format!(
            "its meta file describes block {} gen {}",
            m.id, m.gen
        ));
    }
    let Some(dp) = data_path else {
        return Err("its data file is missing".into());
    };
    let data = disk
        .open(dp, Open::Read)
        .map_err(|e| format!("cannot open its data file: {e}"))?;
    let dlen = data
        .size()
        .map_err(|e| format!("cannot stat its data file: {e}"))?;
    if dlen != m.len {
        return Err(format!("data file is {dlen} bytes, meta says {}", m.len));
    }
    Ok(Replica {
        gen,
        len: m.len,
        sha256: m.sha256,
        deleting: false,
        checking: 0,
    })
}

/// Lists `current/` into meta files and data files by replica.
type Listing = (
    Vec<(BlockId, u64, PathBuf)>,
    HashMap<(BlockId, u64), PathBuf>,
);

fn list_current(disk: &dyn Disk, current: &Path) -> Result<Listing, FsError> {
    let mut metas = Vec::new();
    let mut datas = HashMap::new();
    for entry in disk
        .read_dir(current)
        .map_err(|e| io_at("cannot list", current, e))?
    {
        let path = current.join(&entry.name);
        match entry.name.to_str().and_then(parse_name) {
            Some((id, gen, true)) => metas.push((id, gen, path)),
            Some((id, gen, false)) => {
                datas.insert((id, gen), path);
            }
            None => tracing::warn!(
                fault = "local",
                "ignoring unexpected file {}",
                path.display()
            ),
        }
    }
    Ok((metas, datas))
}

/// Scans `current/`: the valid replicas (highest generation per block), the
/// ones to quarantine, and the files removed.
fn load_current(
    disk: &dyn Disk,
    current: &Path,
    quarantined: &BTreeMap<(BlockId, u64), Quarantined>,
) -> Result<Loaded, FsError> {
    let (metas, mut datas) = list_current(disk, current)?;
    let mut out = Loaded::default();
    let mut superseded: Vec<(BlockId, u64)> = Vec::new();
    for (id, gen, meta_path) in metas {
        let data_path = datas.remove(&(id, gen));
        if quarantined.contains_key(&(id, gen)) {
            out.bad
                .push((id, gen, "a quarantine was interrupted".into()));
            continue;
        }
        match check_replica(disk, (id, gen), &meta_path, data_path.as_ref()) {
            Ok(rep) => match out.replicas.get(&id) {
                Some(old) if old.gen > gen => superseded.push((id, gen)),
                Some(old) => {
                    superseded.push((id, old.gen));
                    out.replicas.insert(id, rep);
                }
                None => {
                    out.replicas.insert(id, rep);
                }
            },
            Err(why) => out.bad.push((id, gen, why)),
        }
    }
    for ((id, gen), path) in datas {
        if quarantined.contains_key(&(id, gen)) {
            out.bad
                .push((id, gen, "a quarantine was interrupted".into()));
            continue;
        }
        tracing::info!(
            "removing replica {id} gen {gen}: data file {} was never published",
            path.display()
        );
        remove_quietly(disk, &path);
        out.removed += 1;
    }
    for (id, gen) in superseded {
        tracing::info!("removing replica {id} gen {gen}: a newer generation exists");
        let (d, m) = replica_paths(current, id, gen);
        remove_quietly(disk, &m);
        remove_quietly(disk, &d);
        out.removed += 1;
    }
    Ok(out)
}
