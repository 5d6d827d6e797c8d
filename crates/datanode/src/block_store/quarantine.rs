//! Quarantine: a replica found corrupt is moved aside into `quarantine/`,
//! never served, never copied, not counted as held, and reported; it stays
//! (across restarts) until the leader deletes it by generation.
//!
//! Moving aside renames the data file first, then the meta file, then
//! fsyncs `quarantine/` and finally `current/`. Whatever a crash keeps of
//! that, the next open sees the replica either still whole in `current/`
//! (the move never happened: it is checked like any other) or with at
//! least one file in `quarantine/`, and then finishes the move. The data
//! file goes first because a data file left alone in `current/` counts as
//! never published and would be removed; a lone meta file is kept.

use super::failpoints::{
    QUARANTINE_AFTER_DATA_MOVE, QUARANTINE_AFTER_DEST_FSYNC, QUARANTINE_AFTER_META_MOVE,
};
use super::meta::replica_paths;
use super::{io_at, lock_poisoned, sync_dir, BlockStore, Quarantined};
use std::io;
use std::path::Path;
use tdfs_disk::Disk;
use tdfs_proto::{BlockId, FsError};

/// Moves one file of a replica into quarantine; returns the bytes renamed.
/// When the destination already exists the crash of an earlier move left
/// the file in both places, and the copy in `from`'s directory goes.
fn move_file(disk: &dyn Disk, from: &Path, to: &Path) -> Result<u64, FsError> {
    let len = match disk.metadata(from) {
        Ok(m) => m.len,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_at("cannot stat", from, e)),
    };
    if disk.exists(to).map_err(|e| io_at("cannot stat", to, e))? {
        disk.remove_file(from)
            .map_err(|e| io_at("cannot remove", from, e))?;
        return Ok(0);
    }
    disk.rename(from, to)
        .map_err(|e| io_at("cannot move into quarantine", from, e))?;
    Ok(len)
}

/// Moves replica `id`/`gen` from `current` into `qdir` (see the module
/// docs for the order); returns the bytes moved.
pub(crate) fn move_aside(
    disk: &dyn Disk,
    current: &Path,
    qdir: &Path,
    id: BlockId,
    gen: u64,
    fsync: bool,
) -> Result<u64, FsError> {
    let (data, meta) = replica_paths(current, id, gen);
    let (qdata, qmeta) = replica_paths(qdir, id, gen);
    let mut bytes = move_file(disk, &data, &qdata)?;
    failpoint!(QUARANTINE_AFTER_DATA_MOVE);
    bytes += move_file(disk, &meta, &qmeta)?;
    failpoint!(QUARANTINE_AFTER_META_MOVE);
    if fsync {
        sync_dir(disk, qdir)?;
        failpoint!(QUARANTINE_AFTER_DEST_FSYNC);
        sync_dir(disk, current)?;
    }
    Ok(bytes)
}

impl BlockStore {
    /// Quarantines the finalized replica of `id` at generation `gen`
    /// because of `why`. `Ok(false)` when this node holds no such replica
    /// (gone or replaced meanwhile). If the files cannot be moved, the
    /// replica is quarantined where it is: hidden and reported all the
    /// same, found again by the next open.
    pub fn quarantine(&self, id: BlockId, gen: u64, why: &str) -> Result<bool, FsError> {
        let _p = lock_poisoned(&self.publish);
        let len = {
            let mut inner = lock_poisoned(&self.inner);
            match inner.replicas.get_mut(&id) {
                Some(r) if r.gen == gen && !r.deleting => {
                    // Hidden from readers and copies from here on.
                    r.deleting = true;
                    r.len
                }
                _ => return Ok(false),
            }
        };
        tracing::warn!(
            fault = "local",
            "quarantining replica {id} gen {gen}: {why}"
        );
        let entry = match move_aside(
            self.disk(),
            &self.current,
            &self.quarantine,
            id,
            gen,
            self.cfg.fsync,
        ) {
            Ok(bytes) => Quarantined {
                bytes,
                in_current: false,
            },
            Err(e) => {
                tracing::error!(
                    fault = "local",
                    "cannot move replica {id} gen {gen} into quarantine ({e}); \
                     it stays in {} and is not served",
                    self.current.display()
                );
                Quarantined {
                    bytes: len,
                    in_current: true,
                }
            }
        };
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.replicas.remove(&id) {
            inner.used -= r.len;
        }
        inner.quarantined_bytes += entry.bytes;
        inner.quarantined.insert((id, gen), entry);
        self.stats.quarantined.inc();
        Ok(true)
    }

    /// Every quarantined replica, by block and generation (for the full
    /// report: the leader learns of them again after a restart).
    pub fn quarantined(&self) -> Vec<(BlockId, u64)> {
        lock_poisoned(&self.inner)
            .quarantined
            .keys()
            .copied()
            .collect()
    }

    /// Removes the quarantined replicas of `id` at a generation at most
    /// `max_gen`; returns their generations. Caller holds `publish`.
    pub(super) fn delete_quarantined(
        &self,
        id: BlockId,
        max_gen: u64,
    ) -> Result<Vec<u64>, FsError> {
        let victims: Vec<(u64, Quarantined)> = lock_poisoned(&self.inner)
            .quarantined
            .range((id, 0)..=(id, max_gen))
            .map(|(&(_, g), &q)| (g, q))
            .collect();
        let mut done = Vec::new();
        let mut touched_current = false;
        for (gen, q) in victims {
            let mut paths = vec![replica_paths(&self.quarantine, id, gen)];
            if q.in_current {
                paths.push(replica_paths(&self.current, id, gen));
                touched_current = true;
            }
            for (d, m) in paths {
                for p in [m, d] {
                    match self.disk().remove_file(&p) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(io_at("cannot delete", &p, e));
                        }
                        _ => {}
                    }
                }
            }
            let mut inner = lock_poisoned(&self.inner);
            if let Some(q) = inner.quarantined.remove(&(id, gen)) {
                inner.quarantined_bytes = inner.quarantined_bytes.saturating_sub(q.bytes);
            }
            drop(inner);
            tracing::info!("deleted quarantined replica {id} gen {gen}");
            done.push(gen);
        }
        if self.cfg.fsync && !done.is_empty() {
            sync_dir(self.disk(), &self.quarantine)?;
            if touched_current {
                sync_dir(self.disk(), &self.current)?;
            }
        }
        Ok(done)
    }
}
