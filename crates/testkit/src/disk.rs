//! Small real disks for tests that need one to fill up: a tmpfs of a given
//! size mounted on a directory for as long as the value lives.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory; unmounted (lazily, so a file a killed
/// daemon still holds open does not keep it) when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    /// The mount point, created by [`Tmpfs::mount`] if it was missing.
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `16m`,
    /// `64m`) on `dir`, creating `dir` first.
    ///
    /// Panics with a message that says why: mounting needs root, and tests
    /// that use this run as root, as CI does.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        if let Some(uid) = effective_uid().filter(|uid| *uid != 0) {
            panic!(
                "mounting a {size} tmpfs on {} needs root; this process runs as uid {uid}",
                dir.display()
            );
        }
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("create mount point {}: {e}", dir.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("run mount: {e}"));
        assert!(
            out.status.success(),
            "mount a {size} tmpfs on {}: {} ({})",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        );
        Tmpfs {
            path: dir.to_path_buf(),
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// This process's effective uid: the owner of `/proc/self`. `None` where
/// there is no procfs (then `mount` itself says what is wrong).
fn effective_uid() -> Option<u32> {
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_a_disk_of_the_size_asked_and_unmounts_it_on_drop() {
        let dir = std::env::temp_dir().join(format!("tdfs-testkit-tmpfs-{}", std::process::id()));
        let disk = Tmpfs::mount(&dir, "1m");
        // A 1 MiB disk refuses a 2 MiB file.
        let r = std::fs::write(disk.path().join("big"), vec![0u8; 2 << 20]);
        assert!(r.is_err(), "a 2 MiB file fit on a 1 MiB tmpfs");
        drop(disk);
        // Unmounted: the directory is the empty mount point again.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }
}
