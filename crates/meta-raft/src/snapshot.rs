//! The snapshot file: Raft's snapshot metadata and the namespace stream.
//!
//! ```text
//! "TDFSSNAP" | version u16 | meta_len u32 | meta (bincode) | crc32c(meta) u32 | namespace stream
//! ```
//!
//! The namespace stream carries its own version and per-chunk checksums
//! (`tdfs_namespace::persist`). The bytes followers receive are the file's
//! bytes, so a follower stores exactly what the leader wrote.

use crate::types::SnapshotMeta;
use std::path::{Path, PathBuf};
use tdfs_namespace::{Frozen, Namespace, SnapshotError, FORMAT_VERSION};

const FILE: &str = "snapshot.bin";
const MAGIC: &[u8; 8] = b"TDFSSNAP";
/// Largest metadata block accepted (a membership of a few nodes).
const MAX_META: usize = 1 << 20;

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

/// Serializes `frozen` with `meta` and stores it as the snapshot file;
/// returns the bytes (what followers are sent).
pub fn write_snapshot_file(
    dir: &Path,
    meta: &SnapshotMeta,
    frozen: &Frozen,
) -> std::io::Result<Vec<u8>> {
    let meta_bytes = tdfs_proto::codec::encode(meta).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(1 << 20);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(&crc32c::crc32c(&meta_bytes).to_le_bytes());
    frozen.write(&mut out)?;
    store_raw(dir, &out)?;
    Ok(out)
}

/// Decodes snapshot bytes.
pub fn parse(data: &[u8]) -> Result<(SnapshotMeta, Namespace), String> {
    parse_at(Path::new("snapshot"), data).map_err(|e| e.to_string())
}

fn parse_at(path: &Path, data: &[u8]) -> Result<(SnapshotMeta, Namespace), SnapshotFileError> {
    if data.len() < 14 || &data[..8] != MAGIC {
        return Err(damaged(
            path,
            "not a tdfs snapshot (bad magic or too short)",
        ));
    }
    let version = u16::from_le_bytes([data[8], data[9]]);
    if version != FORMAT_VERSION {
        return Err(damaged(
            path,
            format!("snapshot format version {version}, this build reads version {FORMAT_VERSION}"),
        ));
    }
    let meta_len = u32::from_le_bytes(data[10..14].try_into().expect("4 bytes")) as usize;
    if meta_len > MAX_META || data.len() < 14 + meta_len + 4 {
        return Err(damaged(
            path,
            format!("metadata of {meta_len} bytes at offset 10 does not fit"),
        ));
    }
    let meta_bytes = &data[14..14 + meta_len];
    let crc = u32::from_le_bytes(
        data[14 + meta_len..18 + meta_len]
            .try_into()
            .expect("4 bytes"),
    );
    if crc32c::crc32c(meta_bytes) != crc {
        return Err(damaged(path, "metadata at offset 14 fails its checksum"));
    }
    let meta: SnapshotMeta = tdfs_proto::codec::decode(meta_bytes).map_err(|e| damaged(path, e))?;
    let base = 18 + meta_len;
    let ns = Namespace::read_snapshot(&mut &data[base..]).map_err(|e| match e {
        SnapshotError::Checksum { offset } => damaged(
            path,
            format!(
                "namespace chunk at offset {} fails its checksum",
                base as u64 + offset
            ),
        ),
        other => damaged(path, format!("namespace (from offset {base}): {other}")),
    })?;
    Ok((meta, ns))
}

/// The snapshot in `dir`, if there is one.
pub fn read_snapshot_file(
    dir: &Path,
) -> Result<Option<(SnapshotMeta, Namespace)>, SnapshotFileError> {
    let path = dir.join(FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SnapshotFileError::io(&path, e)),
    };
    parse_at(&path, &data).map(Some)
}

/// Stores snapshot bytes as the snapshot file, atomically and durably.
pub fn store_raw(dir: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::log_store::write_atomic(dir, FILE, data)
}

/// The snapshot file's bytes, if there is one.
pub fn read_raw(dir: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(FILE)) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where the snapshot file lives (for tests that damage it).
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}
