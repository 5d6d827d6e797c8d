//! The snapshot file: Raft's snapshot metadata and the namespace stream.
//!
//! ```text
//! "TDFSSNAP" | version u16 | meta_len u32 | meta (bincode) | crc32c(meta) u32 | namespace stream
//! ```
//!
//! The namespace stream carries its own version and per-chunk checksums
//! (`tdfs_namespace::persist`). The bytes followers receive are the file's
//! bytes, so a follower stores exactly what the leader wrote. Files are
//! written and read as streams through a buffer (never whole in memory),
//! through the [`Disk`] seam.

use crate::types::SnapshotMeta;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use tdfs_disk::{Disk, DiskFile, FileReader, FileWriter, Open};
use tdfs_namespace::{Frozen, Namespace, SnapshotError, FORMAT_VERSION, PREVIOUS_FORMAT_VERSION};

/// Whether this build reads snapshot files of `version` (the namespace
/// stream inside checks its own version the same way).
fn readable(version: u16) -> bool {
    version == FORMAT_VERSION || version == PREVIOUS_FORMAT_VERSION
}

const FILE: &str = "snapshot.bin";
/// Snapshots being received are `snapshot.recv-N.tmp` until installed.
const RECV_PREFIX: &str = "snapshot.recv-";
const MAGIC: &[u8; 8] = b"TDFSSNAP";
/// Largest metadata block accepted (a membership of a few nodes).
const MAX_META: usize = 1 << 20;
/// Buffer of the streams to and from a snapshot file.
const BUF: usize = 1 << 20;

/// A snapshot file that cannot be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("{path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SnapshotFileError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        SnapshotFileError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn damaged(path: &Path, reason: impl std::fmt::Display) -> SnapshotFileError {
    SnapshotFileError::Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Streams `meta` and `frozen` into `file` from offset 0; returns the bytes
/// written.
pub fn write_snapshot(
    file: &dyn DiskFile,
    meta: &SnapshotMeta,
    frozen: &Frozen,
) -> std::io::Result<u64> {
    let meta_bytes = tdfs_proto::codec::encode(meta).map_err(std::io::Error::other)?;
    let mut w = BufWriter::with_capacity(BUF, FileWriter::at(file, 0));
    w.write_all(MAGIC)?;
    w.write_all(&FORMAT_VERSION.to_le_bytes())?;
    w.write_all(&(meta_bytes.len() as u32).to_le_bytes())?;
    w.write_all(&meta_bytes)?;
    w.write_all(&crc32c::crc32c(&meta_bytes).to_le_bytes())?;
    frozen.write(&mut w)?;
    w.flush()?;
    let n = w.get_ref().position();
    Ok(n)
}

/// Serializes `frozen` with `meta` into `dir`'s snapshot file, atomically
/// and durably (temporary file, fsync, rename, fsync of the directory);
/// returns its size.
pub fn write_snapshot_file(
    disk: &dyn Disk,
    dir: &Path,
    meta: &SnapshotMeta,
    frozen: &Frozen,
) -> std::io::Result<u64> {
    let path = dir.join(FILE);
    let tmp = tdfs_disk::temp_path(&path);
    let f = disk.open(&tmp, Open::Truncate)?;
    let n = write_snapshot(f.as_ref(), meta, frozen)?;
    f.set_len(n)?;
    f.sync_all()?;
    drop(f);
    disk.rename(&tmp, &path)?;
    disk.sync_dir(dir)?;
    Ok(n)
}

/// Reads and checks a whole snapshot file as a stream: the header, the
/// metadata's checksum, every namespace chunk's checksum, and that nothing
/// follows the end of the stream. `path` names the file in errors.
pub fn parse_file(
    file: &dyn DiskFile,
    path: &Path,
) -> Result<(SnapshotMeta, Namespace), SnapshotFileError> {
    let size = file.size().map_err(|e| SnapshotFileError::io(path, e))?;
    let mut r = BufReader::with_capacity(BUF, FileReader::at(file, 0));
    let mut head = [0u8; 14];
    if size < 14 || r.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
        return Err(damaged(
            path,
            "not a tdfs snapshot (bad magic or too short)",
        ));
    }
    let version = u16::from_le_bytes([head[8], head[9]]);
    if !readable(version) {
        return Err(damaged(
            path,
            format!(
                "snapshot format version {version}, this build reads versions \
                 {PREVIOUS_FORMAT_VERSION} and {FORMAT_VERSION}"
            ),
        ));
    }
    let meta_len = u32::from_le_bytes(head[10..14].try_into().expect("4 bytes")) as usize;
    if meta_len > MAX_META || size < (14 + meta_len + 4) as u64 {
        return Err(damaged(
            path,
            format!("metadata of {meta_len} bytes at offset 10 does not fit"),
        ));
    }
    let mut meta_bytes = vec![0u8; meta_len + 4];
    r.read_exact(&mut meta_bytes)
        .map_err(|e| SnapshotFileError::io(path, e))?;
    let crc = u32::from_le_bytes(meta_bytes[meta_len..].try_into().expect("4 bytes"));
    meta_bytes.truncate(meta_len);
    if crc32c::crc32c(&meta_bytes) != crc {
        return Err(damaged(path, "metadata at offset 14 fails its checksum"));
    }
    let meta: SnapshotMeta =
        tdfs_proto::codec::decode(&meta_bytes).map_err(|e| damaged(path, e))?;
    let base = (18 + meta_len) as u64;
    let ns = Namespace::read_snapshot(&mut r).map_err(|e| match e {
        SnapshotError::Checksum { offset } => damaged(
            path,
            format!(
                "namespace chunk at offset {} fails its checksum",
                base + offset
            ),
        ),
        other => damaged(path, format!("namespace (from offset {base}): {other}")),
    })?;
    let end = r.get_ref().position() - r.buffer().len() as u64;
    if end != size {
        return Err(damaged(
            path,
            format!(
                "{} bytes follow the end of the namespace at offset {end}",
                size - end
            ),
        ));
    }
    Ok((meta, ns))
}

/// The snapshot in `dir`, if there is one, checked and decoded.
pub fn read_snapshot_file(
    disk: &dyn Disk,
    dir: &Path,
) -> Result<Option<(SnapshotMeta, Namespace)>, SnapshotFileError> {
    let path = dir.join(FILE);
    let f = match disk.open(&path, Open::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotFileError::io(&path, e)),
    };
    parse_file(f.as_ref(), &path).map(Some)
}

/// Reads and checks only the header and metadata of a snapshot file.
pub fn read_meta(file: &dyn DiskFile, path: &Path) -> Result<SnapshotMeta, SnapshotFileError> {
    let mut head = [0u8; 14];
    let io = |e| SnapshotFileError::io(path, e);
    if file.read_exact_at(&mut head, 0).is_err() || &head[..8] != MAGIC {
        return Err(damaged(
            path,
            "not a tdfs snapshot (bad magic or too short)",
        ));
    }
    let version = u16::from_le_bytes([head[8], head[9]]);
    let meta_len = u32::from_le_bytes(head[10..14].try_into().expect("4 bytes")) as usize;
    if !readable(version) || meta_len > MAX_META {
        return Err(damaged(
            path,
            format!("bad header (version {version}, metadata {meta_len} bytes)"),
        ));
    }
    let mut m = vec![0u8; meta_len + 4];
    file.read_exact_at(&mut m, 14).map_err(io)?;
    let crc = u32::from_le_bytes(m[meta_len..].try_into().expect("4 bytes"));
    m.truncate(meta_len);
    if crc32c::crc32c(&m) != crc {
        return Err(damaged(path, "metadata at offset 14 fails its checksum"));
    }
    tdfs_proto::codec::decode(&m).map_err(|e| damaged(path, e))
}

/// Opens the snapshot file for reading, if there is one.
pub fn open_snapshot_file(
    disk: &dyn Disk,
    dir: &Path,
) -> std::io::Result<Option<Box<dyn DiskFile>>> {
    match disk.open(&dir.join(FILE), Open::Read) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the snapshot file lives (for tests that damage it).
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The temporary file snapshot `seq` is received into.
pub fn receive_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{RECV_PREFIX}{seq}.tmp"))
}

/// Removes what an interrupted build or receive left in `dir` (a crash
/// before the rename: the files were never the snapshot).
pub fn remove_leftovers(disk: &dyn Disk, dir: &Path) -> std::io::Result<()> {
    for e in disk.read_dir(dir)? {
        let name = e.name.to_string_lossy();
        if !e.is_dir && name.starts_with("snapshot.") && name.ends_with(".tmp") {
            disk.remove_file(&dir.join(&*e.name))?;
        }
    }
    Ok(())
}
