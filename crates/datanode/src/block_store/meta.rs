//! The meta file beside every replica, and the names of replica files.
//!
//! The meta file (little-endian):
//!
//! ```text
//! magic "TDFSBLK1" | id u64 | gen u64 | len u64 | sha256 [32] | chunk u32 | n u32 | crc32c u32 * n | crc32c(all before) u32
//! ```
//!
//! Every length in it is checked before it is used, and the whole file is
//! covered by its trailing CRC32C, so a torn or damaged meta file is
//! refused rather than misread.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use tdfs_disk::Disk;
use tdfs_proto::meta::ReplicaReport;
use tdfs_proto::BlockId;
use tdfs_transfer::CHUNK;

const META_MAGIC: &[u8; 8] = b"TDFSBLK1";
/// Fixed part of a meta file before the chunk CRCs.
const META_HEADER: usize = 8 + 8 + 8 + 8 + 32 + 4 + 4;
/// Meta files larger than this are rejected unread (a 256 GiB block).
const MAX_META: u64 = (META_HEADER as u64) + 4 * (1 << 22) + 4;

/// A parsed, checksum-verified meta file.
#[derive(Debug)]
pub(crate) struct Meta {
    /// The block it describes (must match its file name).
    pub id: BlockId,
    /// The generation it describes (must match its file name).
    pub gen: u64,
    /// Length of the data file.
    pub len: u64,
    /// SHA-256 of the data, as the writer sent it and the node checked it.
    pub sha256: [u8; 32],
    /// CRC32C of every CHUNK of the data, as received.
    pub crcs: Vec<u32>,
}

/// Why a meta file could not be read.
#[derive(Debug)]
pub(crate) enum MetaError {
    /// The file system refused (missing, EIO, EACCES, EMFILE, ...).
    Io(io::Error),
    /// The bytes are not a valid meta file.
    Invalid(String),
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaError::Io(e) => write!(f, "{e}"),
            MetaError::Invalid(why) => f.write_str(why),
        }
    }
}

pub(crate) fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64)
}

pub(crate) fn encode_meta(r: &ReplicaReport, crcs: &[u32]) -> Vec<u8> {
    let mut b = Vec::with_capacity(META_HEADER + 4 * crcs.len() + 4);
    b.extend_from_slice(META_MAGIC);
    b.extend_from_slice(&r.id.to_le_bytes());
    b.extend_from_slice(&r.gen.to_le_bytes());
    b.extend_from_slice(&r.len.to_le_bytes());
    b.extend_from_slice(&r.sha256);
    b.extend_from_slice(&(CHUNK as u32).to_le_bytes());
    b.extend_from_slice(&(crcs.len() as u32).to_le_bytes());
    for c in crcs {
        b.extend_from_slice(&c.to_le_bytes());
    }
    let sum = crc32c::crc32c(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

/// Parses a meta file; every length is checked before it is used.
pub(crate) fn decode_meta(b: &[u8]) -> Result<Meta, String> {
    if b.len() < META_HEADER + 4 {
        return Err(format!("meta file of {} bytes is too short", b.len()));
    }
    if &b[..8] != META_MAGIC {
        return Err("bad magic".into());
    }
    let body = b.len() - 4;
    let stored = le_u32(b, body);
    if crc32c::crc32c(&b[..body]) != stored {
        return Err("meta checksum mismatch (torn or corrupt meta file)".into());
    }
    let id = le_u64(b, 8);
    let gen = le_u64(b, 16);
    let len = le_u64(b, 24);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(&b[32..64]);
    let chunk = le_u32(b, 64) as usize;
    let n = le_u32(b, 68) as usize;
    if chunk != CHUNK {
        return Err(format!("chunk size {chunk}, expected {CHUNK}"));
    }
    if n as u64 != chunk_count(len) {
        return Err(format!("{n} chunk checksums for a length of {len}"));
    }
    if body != META_HEADER + 4 * n {
        return Err(format!("meta file of {} bytes for {n} chunks", b.len()));
    }
    let crcs = b[META_HEADER..body]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(Meta {
        id,
        gen,
        len,
        sha256,
        crcs,
    })
}

/// Parses the bytes of a meta file as a load does and returns its block id,
/// generation, length and number of chunk CRCs (an entry point for the
/// fuzz targets in `fuzz/`).
#[doc(hidden)]
pub fn decode_meta_for_fuzzing(b: &[u8]) -> Result<(BlockId, u64, u64, usize), String> {
    decode_meta(b).map(|m| (m.id, m.gen, m.len, m.crcs.len()))
}

/// Reads and parses the meta file at `path`, refusing an oversized one
/// before reading it.
pub(crate) fn read_meta(disk: &dyn Disk, path: &Path) -> Result<Meta, MetaError> {
    let b = match disk.read_max(path, MAX_META) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(MetaError::Invalid(format!("meta file is too large: {e}")))
        }
        Err(e) => return Err(MetaError::Io(e)),
    };
    decode_meta(&b).map_err(MetaError::Invalid)
}

/// Parses `blk_ID_GEN.data` / `blk_ID_GEN.meta` into the id, the generation
/// and whether it is the meta file.
pub(crate) fn parse_name(name: &str) -> Option<(BlockId, u64, bool)> {
    let (stem, is_meta) = if let Some(s) = name.strip_suffix(".meta") {
        (s, true)
    } else {
        (name.strip_suffix(".data")?, false)
    };
    let rest = stem.strip_prefix("blk_")?;
    let (id, gen) = rest.split_once('_')?;
    Some((id.parse().ok()?, gen.parse().ok()?, is_meta))
}

/// The data and meta file of replica `id`/`gen` in `dir`.
pub(crate) fn replica_paths(dir: &Path, id: BlockId, gen: u64) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("blk_{id}_{gen}.data")),
        dir.join(format!("blk_{id}_{gen}.meta")),
    )
}
