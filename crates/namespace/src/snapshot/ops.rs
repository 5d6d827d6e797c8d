//! The snapshot operations: allow and disallow snapshots on a directory,
//! create, delete and rename snapshots, and list them, with HDFS's rules
//! and messages (`SnapshotManager`, `DirectorySnapshottableFeature`).

use super::{Root, Snap};
use crate::inode::flags;
use crate::ns::Namespace;
use crate::op::{NsEvent, Outcome};
use crate::perm::Access;
use crate::slab::Slot;
use tdfs_proto::snapshot::{SnapshotInfo, DEFAULT_SNAPSHOT_QUOTA, DOT_SNAPSHOT};
use tdfs_proto::{path, FsError};

fn snap_err(msg: impl Into<String>) -> FsError {
    FsError::Snapshot(msg.into())
}

/// HDFS's default snapshot name, `sYYYYMMDD-HHMMSS.mmm` (UTC here: the
/// log's clock, so every replica picks the same).
pub(crate) fn default_name(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "s{y:04}{m:02}{d:02}-{:02}{:02}{:02}.{:03}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        ms % 1000
    )
}

fn check_snapshot_name(name: &str) -> Result<(), FsError> {
    if name.is_empty()
        || name.len() > path::MAX_COMPONENT_LEN
        || name == "."
        || name == ".."
        || name == DOT_SNAPSHOT
        || name.contains(['/', ':', '\0'])
    {
        return Err(FsError::InvalidPath {
            path: name.to_string(),
            reason: "Invalid snapshot name".into(),
        });
    }
    Ok(())
}

impl Namespace {
    /// Whether `anc` is `x` or one of its ancestors.
    pub(crate) fn is_ancestor(&self, anc: Slot, mut x: Slot) -> bool {
        loop {
            if x == anc {
                return true;
            }
            let p = self.slab.at(x).parent;
            if p == x || self.slab.at(x).has(flags::DETACHED) {
                return false;
            }
            x = p;
        }
    }

    /// The snapshot roots inside the subtree at `top` (itself included).
    pub(crate) fn roots_within(&self, top: Slot) -> Vec<Slot> {
        let mut v: Vec<Slot> = self
            .snap
            .roots
            .keys()
            .copied()
            .filter(|r| self.is_ancestor(top, *r))
            .collect();
        v.sort_unstable();
        v
    }

    fn snapshot_root(&self, a: &Access, p: &str) -> Result<Slot, FsError> {
        let slot = self.resolve(a, p)?;
        if !self.slab.at(slot).has(flags::SNAPSHOTTABLE) {
            return Err(snap_err(format!(
                "Directory is not a snapshottable directory: {p}"
            )));
        }
        Ok(slot)
    }

    pub(crate) fn allow_snapshot(&mut self, a: &Access, p: &str) -> Result<Outcome, FsError> {
        self.check_superuser(a, p)?;
        let slot = self.resolve(a, p)?;
        if !self.slab.at(slot).is_dir() {
            return Err(FsError::NotADirectory(p.to_string()));
        }
        if self.slab.at(slot).has(flags::SNAPSHOTTABLE) {
            return Ok(Outcome::Done);
        }
        let mut roots: Vec<Slot> = self.snap.roots.keys().copied().collect();
        roots.sort_unstable();
        for r in roots {
            let rel = if self.is_ancestor(r, slot) {
                "ancestor"
            } else if self.is_ancestor(slot, r) {
                "subdirectory"
            } else {
                continue;
            };
            return Err(snap_err(format!(
                "Nested snapshottable directories not allowed: path={p}, the {rel} {} is already a snapshottable directory.",
                self.path_of(r)
            )));
        }
        self.snap.roots.insert(
            slot,
            Root {
                snaps: Vec::new(),
                quota: DEFAULT_SNAPSHOT_QUOTA,
            },
        );
        self.slab.at_mut(slot).set(flags::SNAPSHOTTABLE, true);
        Ok(Outcome::Done)
    }

    pub(crate) fn disallow_snapshot(&mut self, a: &Access, p: &str) -> Result<Outcome, FsError> {
        self.check_superuser(a, p)?;
        let slot = self.snapshot_root(a, p)?;
        if self
            .snap
            .roots
            .get(&slot)
            .is_some_and(|r| !r.snaps.is_empty())
        {
            return Err(snap_err(format!(
                "The directory {p} has snapshot(s). Please redo the operation after removing all the snapshots."
            )));
        }
        self.snap.roots.remove(&slot);
        self.slab.at_mut(slot).set(flags::SNAPSHOTTABLE, false);
        Ok(Outcome::Done)
    }

    pub(crate) fn create_snapshot(
        &mut self,
        a: &Access,
        p: &str,
        name: Option<&str>,
        now: u64,
    ) -> Result<Outcome, FsError> {
        let slot = self.snapshot_root(a, p)?;
        self.check_owner(a, slot, p)?;
        let name = name.map_or_else(|| default_name(now), str::to_string);
        check_snapshot_name(&name)?;
        let root = self.snap.roots.get(&slot).expect("flagged snapshottable");
        if root.by_name(&name).is_some() {
            return Err(snap_err(format!(
                "Failed to add snapshot: there is already a snapshot with the same name \"{name}\"."
            )));
        }
        if root.snaps.len() >= root.quota as usize {
            return Err(snap_err(format!(
                "Failed to add snapshot: there are already {} snapshot(s) and the snapshot quota is {}",
                root.snaps.len(),
                root.quota
            )));
        }
        self.snap.next_id = self.snap.next_id.max(1);
        let id = self.snap.next_id;
        self.snap.next_id += 1;
        let root = self
            .snap
            .roots
            .get_mut(&slot)
            .expect("flagged snapshottable");
        root.snaps.push(Snap {
            id,
            name: name.as_str().into(),
            ctime: now,
        });
        self.snap.live.insert(id);
        // As HDFS: the root's modification time is the snapshot's.
        self.slab.at_mut(slot).mtime = now;
        Ok(Outcome::Path(snapshot_path(&self.path_of(slot), &name)))
    }

    pub(crate) fn delete_snapshot(
        &mut self,
        a: &Access,
        p: &str,
        name: &str,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let slot = self.snapshot_root(a, p)?;
        self.check_owner(a, slot, p)?;
        let root = self
            .snap
            .roots
            .get_mut(&slot)
            .expect("flagged snapshottable");
        let Some(i) = root.snaps.iter().position(|s| s.name == name) else {
            return Err(snap_err(format!(
                "Cannot delete snapshot {name} from path {p}: the snapshot does not exist."
            )));
        };
        let s = root.snaps.remove(i);
        self.snap.live.remove(&s.id);
        self.slab.at_mut(slot).mtime = now;
        self.snapshot_gc(ev);
        Ok(Outcome::Done)
    }

    pub(crate) fn rename_snapshot(
        &mut self,
        a: &Access,
        p: &str,
        old: &str,
        new: &str,
        now: u64,
    ) -> Result<Outcome, FsError> {
        let slot = self.snapshot_root(a, p)?;
        self.check_owner(a, slot, p)?;
        check_snapshot_name(new)?;
        let root = self
            .snap
            .roots
            .get_mut(&slot)
            .expect("flagged snapshottable");
        if old == new {
            return Ok(Outcome::Done);
        }
        if root.by_name(new).is_some() {
            return Err(snap_err(format!(
                "The snapshot {new} already exists for directory {p}"
            )));
        }
        let Some(s) = root.snaps.iter_mut().find(|s| s.name == old) else {
            return Err(snap_err(format!(
                "The snapshot {old} does not exist for directory {p}"
            )));
        };
        s.name = new.into();
        self.slab.at_mut(slot).mtime = now;
        Ok(Outcome::Done)
    }

    /// The snapshots of the root at `slot`, oldest first.
    pub(crate) fn snapshots_of(&self, slot: Slot) -> Vec<SnapshotInfo> {
        let base = self.path_of(slot);
        self.snap.roots.get(&slot).map_or_else(Vec::new, |r| {
            r.snaps
                .iter()
                .map(|s| SnapshotInfo {
                    id: s.id,
                    name: s.name.to_string(),
                    path: snapshot_path(&base, &s.name),
                    ctime: s.ctime,
                })
                .collect()
        })
    }

    /// Refuses to delete a subtree holding a root with snapshots, or to
    /// move one with a snapshot root under another root (HDFS forbids
    /// nested snapshottable directories).
    pub(crate) fn check_snapshot_roots(
        &self,
        top: Slot,
        top_path: &str,
        moving_to: Option<Slot>,
    ) -> Result<(), FsError> {
        if self.snap.roots.is_empty() {
            return Ok(());
        }
        let inside = self.roots_within(top);
        match moving_to {
            None => {
                if let Some(r) = inside
                    .iter()
                    .find(|r| self.snap.roots.get(r).is_some_and(|x| !x.snaps.is_empty()))
                {
                    return Err(snap_err(format!(
                        "The directory {top_path} cannot be deleted since {} is snapshottable and already has snapshots",
                        self.path_of(*r)
                    )));
                }
            }
            Some(dst) if !inside.is_empty() => {
                let mut r: Vec<Slot> = self.snap.roots.keys().copied().collect();
                r.sort_unstable();
                if let Some(above) = r.into_iter().find(|r| self.is_ancestor(*r, dst)) {
                    return Err(snap_err(format!(
                        "Nested snapshottable directories not allowed: {top_path} holds a snapshottable directory and {} is one",
                        self.path_of(above)
                    )));
                }
            }
            Some(_) => {}
        }
        Ok(())
    }
}

/// `DIR/.snapshot/NAME`.
pub(crate) fn snapshot_path(dir: &str, name: &str) -> String {
    path::child(&path::child(dir, DOT_SNAPSHOT), name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn default_names_are_hdfs_style() {
        assert_eq!(
            super::default_name(1_700_000_000_123),
            "s20231114-221320.123"
        );
    }
}
