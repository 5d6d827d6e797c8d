//! The snapshot format: a frozen namespace streamed in checksummed chunks.
//!
//! ```text
//! "TDFSNS01" | version u16 | chunk*
//! chunk = len u32 | crc32c(body) u32 | body (bincode)
//! chunks: Header (version 2: followed by the log tick u64 in the same
//! chunk; version 1, still read, has no tick), then Cells (inode cells in
//! slot order, free ones too so slot generations survive), then Side
//! (quotas, ACLs, xattrs, truncations) and Snapshots (roots, diffs, pins),
//! each sorted by slot, then End { cells } to catch truncation.
//! ```
//!
//! Maps are written sorted, so two replicas at the same applied index write
//! the same bytes: the digest of a snapshot is the consistency check's hash.
//! [`Namespace::freeze`] takes the copy in time proportional to the number
//! of inode pages (the pages are shared copy-on-write), so the caller holds
//! its lock only for that; writing runs from the frozen copy.

use crate::inode::{flags, Inode};
use crate::ns::{DatanodeRecord, Lease, Namespace};
use crate::op::{FORMAT_VERSION, PREVIOUS_FORMAT_VERSION};
use crate::retry::{RetryCache, RetryImage};
use crate::side::{Side, SideImage};
use crate::slab::{Slab, Slot};
use crate::snapshot::{SnapImage, Snapshots};
use crate::strings::Strings;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use tdfs_proto::DatanodeId;

const MAGIC: &[u8; 8] = b"TDFSNS01";
/// Inode cells per chunk.
const CELLS_PER_CHUNK: usize = 4096;
/// Largest chunk accepted when reading (a header with a big retry cache).
const MAX_CHUNK: usize = 256 << 20;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a tdfs namespace snapshot (bad magic)")]
    BadMagic,
    #[error(
        "snapshot format version {found}, this build reads versions {PREVIOUS_FORMAT_VERSION} \
         and {expected}"
    )]
    Version { found: u16, expected: u16 },
    #[error("snapshot chunk at offset {offset} fails its checksum")]
    Checksum { offset: u64 },
    #[error("snapshot chunk at offset {offset} claims {len} bytes (limit {MAX_CHUNK})")]
    Oversized { offset: u64, len: usize },
    #[error("snapshot ends early at offset {offset}")]
    Truncated { offset: u64 },
    #[error("snapshot chunk at offset {offset} does not decode: {reason}")]
    Decode { offset: u64, reason: String },
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A frozen copy of the namespace (no derived indexes), to serialize.
pub struct Frozen(Namespace);

#[derive(Serialize)]
struct HeaderRef<'a> {
    root: Option<Slot>,
    superuser: u32,
    supergroup: u32,
    next_block: u64,
    next_gen: u64,
    clock: u64,
    strings: &'a Strings,
    datanodes: &'a BTreeMap<DatanodeId, DatanodeRecord>,
    leases: Vec<(Slot, &'a Lease)>,
    retry: crate::retry::RetryImageRef<'a>,
    reclaim: &'a VecDeque<Slot>,
    reclaim_pending: u64,
}

#[derive(Deserialize)]
struct Header {
    root: Option<Slot>,
    superuser: u32,
    supergroup: u32,
    next_block: u64,
    next_gen: u64,
    clock: u64,
    strings: Strings,
    datanodes: BTreeMap<DatanodeId, DatanodeRecord>,
    leases: Vec<(Slot, Lease)>,
    retry: RetryImage,
    reclaim: VecDeque<Slot>,
    reclaim_pending: u64,
}

/// The chunks after the header. Side tables and snapshots follow the
/// cells, so a reader has every inode before anything that names one.
#[derive(Serialize, Deserialize)]
enum Chunk<C> {
    Cells(C),
    End { cells: u64 },
    Side(SideImage),
    Snapshots(SnapImage),
}

fn cfg() -> impl bincode::config::Config {
    bincode::config::standard()
}

impl Namespace {
    /// A frozen copy to serialize while this namespace keeps changing.
    pub fn freeze(&self) -> Frozen {
        Frozen(Namespace {
            slab: self.slab.clone(),
            strings: self.strings.clone(),
            root: self.root,
            superuser: self.superuser,
            supergroup: self.supergroup,
            next_block: self.next_block,
            next_gen: self.next_gen,
            clock: self.clock,
            tick: self.tick,
            datanodes: self.datanodes.clone(),
            leases: self.leases.clone(),
            retry: self.retry.clone(),
            reclaim: self.reclaim.clone(),
            reclaim_pending: self.reclaim_pending,
            block_index: FxHashMap::default(),
            side: self.side.clone(),
            snap: self.snap.clone(),
        })
    }

    /// Reads a snapshot written by [`Frozen::write`].
    pub fn read_snapshot(r: &mut impl Read) -> Result<Namespace, SnapshotError> {
        let mut rd = ChunkReader { r, offset: 0 };
        let mut magic = [0u8; 8];
        rd.exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let mut v = [0u8; 2];
        rd.exact(&mut v)?;
        let found = u16::from_le_bytes(v);
        // Version 2's header is version 1's followed by the log tick; a
        // version-1 snapshot's tick is its wall log clock (crate::compat).
        let (h, tick) = match found {
            FORMAT_VERSION => rd.chunk::<(Header, u64)>()?,
            PREVIOUS_FORMAT_VERSION => {
                let h: Header = rd.chunk()?;
                let tick = h.clock;
                (h, tick)
            }
            _ => {
                return Err(SnapshotError::Version {
                    found,
                    expected: FORMAT_VERSION,
                })
            }
        };
        let mut ns = Namespace {
            root: h.root,
            superuser: h.superuser,
            supergroup: h.supergroup,
            next_block: h.next_block,
            next_gen: h.next_gen,
            clock: h.clock,
            tick,
            strings: h.strings,
            datanodes: h.datanodes,
            leases: h.leases.into_iter().collect(),
            retry: RetryCache::from_image(h.retry),
            reclaim: h.reclaim,
            reclaim_pending: h.reclaim_pending,
            slab: Slab::default(),
            block_index: FxHashMap::default(),
            side: Side::default(),
            snap: Snapshots::default(),
        };
        ns.strings.rebuild();
        let mut cells = 0u64;
        loop {
            match rd.chunk::<Chunk<Vec<Inode>>>()? {
                Chunk::Cells(v) => {
                    for ino in v {
                        ns.slab.load_cell(cells as Slot, ino);
                        cells += 1;
                    }
                }
                Chunk::Side(img) => ns.side = Side::from_image(img),
                Chunk::Snapshots(img) => ns.snap = Snapshots::from_image(img),
                Chunk::End { cells: n } if n == cells => break,
                Chunk::End { cells: n } => {
                    return Err(SnapshotError::Inconsistent(format!(
                        "{cells} inode cells read, the end marker says {n}"
                    )))
                }
            }
        }
        ns.slab.finish_load();
        ns.rebuild_indexes()?;
        Ok(ns)
    }

    /// Rebuilds the derived indexes after a load, checking the references
    /// they rest on.
    fn rebuild_indexes(&mut self) -> Result<(), SnapshotError> {
        let mut index = FxHashMap::default();
        for (slot, ino) in self.slab.iter() {
            if let Some(f) = ino.file() {
                for b in f.blocks.iter() {
                    index.insert(b.id, slot);
                }
            }
            if ino.has(flags::DIFFS) {
                for b in self.snapshot_only_blocks(slot) {
                    index.insert(b.id, slot);
                }
            }
            // A detached inode a snapshot keeps may have lost its parent.
            if !ino.has(flags::DETACHED) && self.slab.get(ino.parent).is_none() {
                return Err(SnapshotError::Inconsistent(format!(
                    "inode {slot} has a missing parent {}",
                    ino.parent
                )));
            }
        }
        if let Some(r) = self.root {
            if self.slab.get(r).is_none_or(|i| !i.is_dir()) {
                return Err(SnapshotError::Inconsistent(
                    "the root is not a directory".into(),
                ));
            }
        }
        let flagged = self.side.flagged().chain(self.snap.flagged());
        for (slot, flag) in flagged {
            if !self.slab.get(slot).is_some_and(|i| i.has(flag)) {
                return Err(SnapshotError::Inconsistent(format!(
                    "side table entry for inode {slot} without its flag {flag}"
                )));
            }
        }
        self.block_index = index;
        Ok(())
    }
}

impl Frozen {
    /// Streams the snapshot into `w`.
    pub fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        let ns = &self.0;
        w.write_all(MAGIC)?;
        w.write_all(&FORMAT_VERSION.to_le_bytes())?;
        let mut leases: Vec<(Slot, &Lease)> = ns.leases.iter().map(|(s, l)| (*s, l)).collect();
        leases.sort_unstable_by_key(|(s, _)| *s);
        let header = HeaderRef {
            root: ns.root,
            superuser: ns.superuser,
            supergroup: ns.supergroup,
            next_block: ns.next_block,
            next_gen: ns.next_gen,
            clock: ns.clock,
            strings: &ns.strings,
            datanodes: &ns.datanodes,
            leases,
            retry: ns.retry.image(),
            reclaim: &ns.reclaim,
            reclaim_pending: ns.reclaim_pending,
        };
        write_chunk(w, &(header, ns.tick))?;
        let mut batch: Vec<&Inode> = Vec::with_capacity(CELLS_PER_CHUNK);
        let mut cells = 0u64;
        for (_, ino) in ns.slab.cells() {
            batch.push(ino);
            cells += 1;
            if batch.len() == CELLS_PER_CHUNK {
                write_chunk(w, &Chunk::Cells(&batch))?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            write_chunk(w, &Chunk::Cells(&batch))?;
        }
        write_chunk(w, &Chunk::<()>::Side(ns.side.image()))?;
        write_chunk(w, &Chunk::<()>::Snapshots(ns.snap.image()))?;
        write_chunk(w, &Chunk::<()>::End { cells })
    }

    /// Live inodes in the copy.
    pub fn inode_count(&self) -> u64 {
        self.0.slab.live()
    }
}

fn write_chunk(w: &mut impl Write, v: &impl Serialize) -> std::io::Result<()> {
    let body = bincode::serde::encode_to_vec(v, cfg()).map_err(std::io::Error::other)?;
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&crc32c::crc32c(&body).to_le_bytes())?;
    w.write_all(&body)
}

struct ChunkReader<'r, R: Read> {
    r: &'r mut R,
    offset: u64,
}

impl<R: Read> ChunkReader<'_, R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.r.read_exact(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => SnapshotError::Truncated {
                offset: self.offset,
            },
            _ => SnapshotError::Io(e),
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn chunk<T: serde::de::DeserializeOwned>(&mut self) -> Result<T, SnapshotError> {
        let at = self.offset;
        let mut h = [0u8; 8];
        self.exact(&mut h)?;
        let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
        if len > MAX_CHUNK {
            return Err(SnapshotError::Oversized { offset: at, len });
        }
        let mut body = vec![0u8; len];
        self.exact(&mut body)?;
        if crc32c::crc32c(&body) != crc {
            return Err(SnapshotError::Checksum { offset: at });
        }
        let limit = bincode::config::standard().with_limit::<MAX_CHUNK>();
        let (v, used) =
            bincode::serde::decode_from_slice(&body, limit).map_err(|e| SnapshotError::Decode {
                offset: at,
                reason: e.to_string(),
            })?;
        if used != body.len() {
            return Err(SnapshotError::Decode {
                offset: at,
                reason: format!("{} trailing bytes", body.len() - used),
            });
        }
        Ok(v)
    }
}
