//! The on-disk format of the Raft log, and recovery on open.
//!
//! ```text
//! file   = "TDFSLOG\0" | version u16 LE | reserved u16 | record*
//! record = "REC1" | index u64 LE | len u32 LE | crc32c(index LE ‖ payload) u32 LE | payload
//! payload = bincode(openraft entry, whose payload is a namespace Batch)
//! ```
//!
//! A log of the previous format version (1: stamps without a tick) is read
//! with [`tdfs_namespace::compat`]'s rule (tick = the stamp's wall time)
//! and rewritten in the current version on open ([`upgrade`]), so a file
//! never mixes versions; any other version is refused.
//!
//! Every record is appended in one write, so a crash can only leave the
//! last record incomplete: that torn tail is cut off. Damage anywhere else
//! — a bad record that valid records follow — is not something a crash
//! does, and replaying around it could diverge from the other replicas, so
//! opening fails with an error naming the file and the offset (the node is
//! then wiped and re-added: docs/operations.md). The magic and index in
//! each record header let recovery find whether valid records follow a
//! damaged one without trusting the damaged record's length.

use crate::types::Entry;
use openraft::RaftLogId;
use std::io::Read;
use std::path::{Path, PathBuf};
use tdfs_disk::{Disk, DiskFile, FileReader, Open};
use tdfs_namespace::compat::BatchV1;
use tdfs_namespace::{FORMAT_VERSION, PREVIOUS_FORMAT_VERSION};

pub const FILE_MAGIC: &[u8; 8] = b"TDFSLOG\0";
/// Bytes of the file header.
pub const FILE_HEADER: u64 = 12;
const RECORD_MAGIC: &[u8; 4] = b"REC1";
/// Bytes of a record header.
pub const RECORD_HEADER: usize = 20;
/// Largest record accepted (a batch of operations is far smaller).
pub const MAX_RECORD: usize = 64 << 20;

/// The file header.
pub fn file_header() -> [u8; FILE_HEADER as usize] {
    let mut h = [0u8; FILE_HEADER as usize];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Encodes one entry as a record.
pub fn encode_record(entry: &Entry) -> Result<Vec<u8>, String> {
    let body = tdfs_proto::codec::encode(entry).map_err(|e| e.to_string())?;
    if body.len() > MAX_RECORD {
        return Err(format!(
            "a log entry of {} bytes is over the {MAX_RECORD} limit",
            body.len()
        ));
    }
    let index = entry.get_log_id().index;
    let mut rec = Vec::with_capacity(RECORD_HEADER + body.len());
    rec.extend_from_slice(RECORD_MAGIC);
    rec.extend_from_slice(&index.to_le_bytes());
    rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
    rec.extend_from_slice(&record_crc(index, &body).to_le_bytes());
    rec.extend_from_slice(&body);
    Ok(rec)
}

fn record_crc(index: u64, body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&index.to_le_bytes()), body)
}

/// Decodes the payload of a record read back from the file.
pub fn decode_payload(body: &[u8]) -> Result<Entry, String> {
    tdfs_proto::codec::decode_large::<Entry>(body).map_err(|e| e.to_string())
}

/// A version-1 entry: openraft's `Entry` (same serde layout) around a
/// version-1 batch.
#[derive(serde::Deserialize)]
struct EntryV1 {
    log_id: crate::types::LogId,
    payload: PayloadV1,
}

#[derive(serde::Deserialize)]
enum PayloadV1 {
    Blank,
    Normal(BatchV1),
    Membership(openraft::Membership<u64, openraft::BasicNode>),
}

/// Decodes a payload of a file of format `version` (current or previous).
pub fn decode_payload_as(version: u16, body: &[u8]) -> Result<Entry, String> {
    if version == FORMAT_VERSION {
        return decode_payload(body);
    }
    let e = tdfs_proto::codec::decode_large::<EntryV1>(body).map_err(|e| e.to_string())?;
    let payload = match e.payload {
        PayloadV1::Blank => openraft::EntryPayload::Blank,
        PayloadV1::Normal(b) => openraft::EntryPayload::Normal(b.into()),
        PayloadV1::Membership(m) => openraft::EntryPayload::Membership(m),
    };
    Ok(Entry {
        log_id: e.log_id,
        payload,
    })
}

/// Why a log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: not a tdfs raft log (bad header)")]
    BadHeader { path: PathBuf },
    #[error(
        "{path}: raft log format version {found}, this build reads versions \
         {PREVIOUS_FORMAT_VERSION} and {expected}"
    )]
    Version {
        path: PathBuf,
        found: u16,
        expected: u16,
    },
    #[error(
        "{path}: the record at offset {offset} is damaged ({why}) and valid records follow it \
         (the next at offset {next}); the log cannot be trusted: wipe this node's data \
         directory and add it again (docs/operations.md)"
    )]
    Damaged {
        path: PathBuf,
        offset: u64,
        next: u64,
        why: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One record found by a scan.
pub struct Found {
    pub offset: u64,
    /// Bytes of the whole record (header included).
    pub len: u32,
    pub entry: Entry,
}

/// What a scan of the file found: the valid records in order, and where
/// the valid prefix ends.
pub struct Scan {
    pub records: Vec<Found>,
    pub valid_end: u64,
    /// The file's format version.
    pub version: u16,
}

/// Reads one record at the reader's position. `Ok(None)` at a clean end,
/// `Err(why)` for a record that is incomplete or damaged.
fn read_record(
    r: &mut impl Read,
    version: u16,
    offset: u64,
    remaining: u64,
) -> Result<Option<Found>, String> {
    if remaining == 0 {
        return Ok(None);
    }
    if remaining < RECORD_HEADER as u64 {
        return Err("incomplete record header".into());
    }
    let mut h = [0u8; RECORD_HEADER];
    r.read_exact(&mut h).map_err(|e| e.to_string())?;
    if &h[..4] != RECORD_MAGIC {
        return Err("bad record magic".into());
    }
    let index = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes"));
    if len > MAX_RECORD {
        return Err(format!("record length {len} over the limit"));
    }
    if (RECORD_HEADER + len) as u64 > remaining {
        return Err("incomplete record".into());
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| e.to_string())?;
    if record_crc(index, &body) != crc {
        return Err("checksum mismatch".into());
    }
    let entry = decode_payload_as(version, &body)?;
    if entry.get_log_id().index != index {
        return Err("header and entry disagree on the index".into());
    }
    Ok(Some(Found {
        offset,
        len: (RECORD_HEADER + len) as u32,
        entry,
    }))
}

/// Scans the log file: checks its header and returns every valid record
/// up to the first bad one. A bad record followed by a valid one is an
/// error; a bad tail is left for the caller to truncate at `valid_end`.
/// `continues(prev, index)` says whether a record may follow another.
pub fn scan(
    disk: &dyn Disk,
    path: &Path,
    continues: impl Fn(Option<u64>, u64) -> bool,
) -> Result<Scan, LogError> {
    let io = |e: std::io::Error| LogError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let f = disk.open(path, Open::Read).map_err(io)?;
    let file_len = f.size().map_err(io)?;
    if file_len == 0 {
        return Ok(Scan {
            records: Vec::new(),
            valid_end: 0,
            version: FORMAT_VERSION,
        });
    }
    let mut h = [0u8; FILE_HEADER as usize];
    if file_len < FILE_HEADER || f.read_exact_at(&mut h, 0).is_err() || &h[..8] != FILE_MAGIC {
        return Err(LogError::BadHeader {
            path: path.to_path_buf(),
        });
    }
    let version = u16::from_le_bytes([h[8], h[9]]);
    if version != FORMAT_VERSION && version != PREVIOUS_FORMAT_VERSION {
        return Err(LogError::Version {
            path: path.to_path_buf(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let mut r = std::io::BufReader::with_capacity(1 << 20, FileReader::at(f.as_ref(), FILE_HEADER));
    let mut offset = FILE_HEADER;
    let mut records: Vec<Found> = Vec::new();
    loop {
        let prev = records.last().map(|f| f.entry.get_log_id().index);
        let why = match read_record(&mut r, version, offset, file_len - offset) {
            Ok(None) => break,
            Ok(Some(found)) if continues(prev, found.entry.get_log_id().index) => {
                offset += found.len as u64;
                records.push(found);
                continue;
            }
            Ok(Some(_)) => "a record that does not continue the log".to_string(),
            Err(why) => why,
        };
        // A damaged record: the tail, unless valid records follow it.
        if tdfs_rpc::bugs::on(tdfs_rpc::bugs::Bug::TruncateAtFirstBadRecord) {
            break;
        }
        if let Some(next) =
            resync(f.as_ref(), version, offset + 1, file_len, prev.unwrap_or(0)).map_err(io)?
        {
            return Err(LogError::Damaged {
                path: path.to_path_buf(),
                offset,
                next,
                why,
            });
        }
        break;
    }
    Ok(Scan {
        records,
        valid_end: offset,
        version,
    })
}

/// The offset of the first valid record at or after `from` whose index is
/// past `after`, if any. Streams the file, checking each place the record
/// magic appears.
fn resync(
    f: &dyn DiskFile,
    version: u16,
    from: u64,
    file_len: u64,
    after: u64,
) -> std::io::Result<Option<u64>> {
    const CHUNK: usize = 4 << 20;
    let mut base = from;
    let mut buf = vec![0u8; CHUNK + RECORD_MAGIC.len()];
    while base < file_len {
        let want = ((file_len - base) as usize).min(buf.len());
        f.read_exact_at(&mut buf[..want], base)?;
        let window = &buf[..want];
        for (i, w) in window.windows(RECORD_MAGIC.len()).enumerate() {
            if w != RECORD_MAGIC {
                continue;
            }
            let at = base + i as u64;
            let mut r = std::io::BufReader::new(FileReader::at(f, at));
            if let Ok(Some(found)) = read_record(&mut r, version, at, file_len - at) {
                if found.entry.get_log_id().index > after {
                    return Ok(Some(at));
                }
            }
        }
        // Overlap by the magic's length so a magic across chunks is seen.
        base += (want.max(RECORD_MAGIC.len()) - (RECORD_MAGIC.len() - 1)) as u64;
        if want < buf.len() {
            break;
        }
    }
    Ok(None)
}

/// Rewrites the log at `path` in the current format version from what a
/// scan of an older one found (temporary file, fsync, rename, fsync of the
/// directory), so a file never mixes versions. Returns the scan of the new
/// file: the same entries at their new offsets.
pub fn upgrade(disk: &dyn Disk, path: &Path, old: Scan) -> Result<Scan, LogError> {
    let io = |e: std::io::Error| LogError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let mut bytes = file_header().to_vec();
    let mut records = Vec::with_capacity(old.records.len());
    for f in old.records {
        let rec = encode_record(&f.entry).map_err(|e| io(std::io::Error::other(e)))?;
        records.push(Found {
            offset: bytes.len() as u64,
            len: rec.len() as u32,
            entry: f.entry,
        });
        bytes.extend_from_slice(&rec);
    }
    disk.write_atomic(path, &bytes).map_err(io)?;
    tracing::info!(
        "raft log {}: rewritten from format version {} to {FORMAT_VERSION} ({} records)",
        path.display(),
        old.version,
        records.len()
    );
    Ok(Scan {
        records,
        valid_end: bytes.len() as u64,
        version: FORMAT_VERSION,
    })
}
