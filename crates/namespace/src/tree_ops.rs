//! Operations on the tree: mkdirs, delete, rename and the attribute setters.

use crate::inode::{flags, Delta, Inode};
use crate::ns::{Namespace, MAX_REPLICATION};
use crate::op::{NsEvent, Outcome};
use crate::perm::{denied, validate_name, Access};
use crate::slab::Slot;
use tdfs_proto::perm::{EXECUTE, READ, WRITE};
use tdfs_proto::{path, FsError};

impl Namespace {
    pub(crate) fn mkdirs(
        &mut self,
        a: &Access,
        p: &str,
        mode: u16,
        parents: bool,
        now: u64,
    ) -> Result<Outcome, FsError> {
        let comps = path::components(p)?;
        let mode = mode & 0o1777;
        // Walk down the existing prefix.
        let mut cur = self.root_slot();
        let mut i = 0;
        while i < comps.len() {
            let ino = self.slab.at(cur);
            if !ino.is_dir() {
                return Err(FsError::NotADirectory(path::join(&comps[..i])));
            }
            if !self.allowed(a, cur, EXECUTE) {
                return Err(denied(a, "EXECUTE", &path::join(&comps[..i])));
            }
            match self.child_of(cur, comps[i]) {
                Some(c) => {
                    cur = c;
                    i += 1;
                }
                None => break,
            }
        }
        if i == comps.len() {
            return match (self.slab.at(cur).is_dir(), parents) {
                (true, true) => Ok(Outcome::Bool(true)),
                _ => Err(FsError::AlreadyExists(p.to_string())),
            };
        }
        if !self.slab.at(cur).is_dir() {
            return Err(FsError::NotADirectory(path::join(&comps[..i])));
        }
        if !parents && i + 1 < comps.len() {
            return Err(FsError::FileNotFound(path::join(&comps[..comps.len() - 1])));
        }
        self.check_modify_parent(a, cur, None, p)?;
        let new_dirs = Delta {
            dirs: (comps.len() - i) as i64,
            ..Delta::default()
        };
        self.check_quota(cur, new_dirs, None)?;
        let owner = self.owner_id(a)?;
        for (j, c) in comps.iter().enumerate().skip(i) {
            // Intermediate directories get u+wx so that the caller can go on.
            let m = if j + 1 == comps.len() {
                mode
            } else {
                mode | 0o300
            };
            let group = self.slab.at(cur).group;
            let pos = self.find_child(cur, c).expect_err("checked absent");
            let dir = Inode::new_dir(c, cur, owner, group, m, now);
            cur = self.link_new(cur, pos, dir, now)?;
        }
        Ok(Outcome::Bool(true))
    }

    /// The interned id of the caller, who is about to own something.
    pub(crate) fn owner_id(&mut self, a: &Access) -> Result<u32, FsError> {
        match a.id {
            Some(i) => Ok(i),
            None => self.strings.intern(a.name),
        }
    }

    pub(crate) fn delete(
        &mut self,
        a: &Access,
        p: &str,
        recursive: bool,
        now: u64,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        let (pid, name) = self.resolve_parent(a, p)?;
        let Some(id) = self.child_of(pid, name) else {
            return Err(FsError::FileNotFound(p.to_string()));
        };
        self.check_modify_parent(a, pid, Some(id), p)?;
        if let Some(d) = self.slab.at(id).dir() {
            if !d.children.is_empty() {
                if !recursive {
                    return Err(FsError::DirectoryNotEmpty(p.to_string()));
                }
                if !a.superuser {
                    self.check_subtree_access(a, id)?;
                }
            }
            self.check_snapshot_roots(id, p, None)?;
        }
        self.remove_child(pid, name, now, ev).expect("child exists");
        Ok(Outcome::Bool(true))
    }

    /// As HDFS: deleting a subtree needs full access to every directory in it.
    fn check_subtree_access(&self, a: &Access, top: Slot) -> Result<(), FsError> {
        let mut stack = vec![top];
        while let Some(s) = stack.pop() {
            let ino = self.slab.at(s);
            if let Some(d) = ino.dir() {
                if !self.allowed(a, s, READ | WRITE | EXECUTE) {
                    return Err(denied(a, "ALL", &self.path_of(s)));
                }
                stack.extend(d.children.iter().filter(|c| self.slab.at(*c).is_dir()));
            }
        }
        Ok(())
    }

    pub(crate) fn rename(
        &mut self,
        a: &Access,
        src: &str,
        dst: &str,
        into_dir: bool,
        now: u64,
    ) -> Result<Outcome, FsError> {
        let src = path::normalize(src)?;
        let mut dst = path::normalize(dst)?;
        if src == "/" {
            return Err(FsError::InvalidArgument("cannot rename the root".into()));
        }
        let (spid, sname) = self.resolve_parent(a, &src)?;
        let Some(sid) = self.child_of(spid, sname) else {
            return Err(FsError::FileNotFound(src.clone()));
        };
        if into_dir {
            if let Ok(did) = self.resolve(a, &dst) {
                if self.slab.at(did).is_dir() {
                    dst = path::child(&dst, sname);
                }
            }
        }
        if dst == src {
            return Ok(Outcome::Bool(true));
        }
        if path::is_within(&dst, &src) {
            return Err(FsError::InvalidArgument(format!(
                "cannot move {src} into its own subtree {dst}"
            )));
        }
        let (dpid, dname) = self.resolve_parent(a, &dst)?;
        let pos = match self.find_child(dpid, dname) {
            Ok(_) => return Err(FsError::AlreadyExists(dst.clone())),
            Err(pos) => pos,
        };
        self.check_modify_parent(a, spid, Some(sid), &src)?;
        self.check_modify_parent(a, dpid, None, &dst)?;
        if spid != dpid {
            self.check_snapshot_roots(sid, &src, Some(dpid))?;
            let moved = self.slab.at(sid).usage();
            self.check_quota_move(spid, dpid, &moved)?;
        }
        // A snapshot that sees the source keeps seeing it where it was.
        let old_latest = self.save_attrs(sid);
        let (slot, _) = self.unlink(spid, sname, now).expect("source exists");
        // Unlinking may have merged chunks of the destination when it is
        // the same directory: find the position again.
        let pos = if spid == dpid {
            self.find_child(dpid, dname).expect_err("still absent")
        } else {
            pos
        };
        let ino = self.slab.at_mut(slot);
        ino.parent = dpid;
        ino.name = dname.into();
        let usage = ino.usage();
        self.insert_child(dpid, pos, slot, now);
        self.propagate(dpid, Delta::of(&usage));
        self.pin_moved(slot, old_latest);
        Ok(Outcome::Bool(true))
    }

    pub(crate) fn set_replication(
        &mut self,
        a: &Access,
        p: &str,
        replication: u16,
        ev: &mut Vec<NsEvent>,
    ) -> Result<Outcome, FsError> {
        if replication == 0 || replication > MAX_REPLICATION {
            return Err(FsError::InvalidArgument(format!(
                "replication {replication} is outside 1..={MAX_REPLICATION}"
            )));
        }
        let id = self.resolve(a, p)?;
        self.check(a, id, WRITE, p)?;
        let ino = self.slab.at(id);
        let Some(f) = ino.file() else {
            return Ok(Outcome::Bool(false));
        };
        self.check_not_truncating(id, p)?;
        let before = ino.usage();
        let mut probe = f.clone();
        probe.set_replication(replication);
        let after_space = probe.space(ino.has(flags::LAST_OPEN));
        let delta = Delta {
            space: after_space as i64 - before.space as i64,
            ..Delta::default()
        };
        self.check_quota(ino.parent, delta, None)?;
        self.save_attrs(id);
        let blocks = self.update_file(id, |ino| {
            let f = ino.file_mut().expect("a file");
            f.set_replication(replication);
            f.blocks.clone()
        });
        for b in blocks.iter() {
            ev.push(NsEvent::Replication {
                id: b.id,
                replication: self.block_replication(id, b.id, replication),
            });
        }
        Ok(Outcome::Bool(true))
    }

    pub(crate) fn set_permission(
        &mut self,
        a: &Access,
        p: &str,
        mode: u16,
    ) -> Result<Outcome, FsError> {
        let id = self.resolve(a, p)?;
        self.check_owner(a, id, p)?;
        if mode > 0o1777 {
            return Err(FsError::InvalidArgument(format!(
                "mode {mode:o} out of range"
            )));
        }
        self.save_attrs(id);
        self.slab.at_mut(id).mode = mode;
        Ok(Outcome::Done)
    }

    pub(crate) fn set_owner(
        &mut self,
        a: &Access,
        p: &str,
        owner: Option<&str>,
        group: Option<&str>,
    ) -> Result<Outcome, FsError> {
        let id = self.resolve(a, p)?;
        self.check_owner(a, id, p)?;
        if let Some(o) = owner {
            validate_name(o)?;
            if !a.superuser && Some(self.slab.at(id).owner) != self.strings.find(o) {
                return Err(denied(a, "SUPERUSER", p));
            }
        }
        if let Some(g) = group {
            validate_name(g)?;
            // Simple identities: a user belongs to the group of its own name.
            if !a.superuser && g != a.name {
                return Err(denied(a, "SUPERUSER", p));
            }
        }
        let owner = owner.map(|o| self.strings.intern(o)).transpose()?;
        let group = group.map(|g| self.strings.intern(g)).transpose()?;
        self.save_attrs(id);
        let ino = self.slab.at_mut(id);
        if let Some(o) = owner {
            ino.owner = o;
        }
        if let Some(g) = group {
            ino.group = g;
        }
        Ok(Outcome::Done)
    }

    pub(crate) fn set_times(
        &mut self,
        a: &Access,
        p: &str,
        mtime: Option<u64>,
        atime: Option<u64>,
    ) -> Result<Outcome, FsError> {
        let id = self.resolve(a, p)?;
        if self.check(a, id, WRITE, p).is_err() {
            self.check_owner(a, id, p)?;
        }
        self.save_attrs(id);
        let ino = self.slab.at_mut(id);
        if let Some(m) = mtime {
            ino.mtime = m;
        }
        if let Some(t) = atime {
            ino.atime = t;
        }
        Ok(Outcome::Done)
    }
}
