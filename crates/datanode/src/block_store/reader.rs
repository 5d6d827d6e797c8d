//! Reading a finalized replica: its meta file (checked) and its data file,
//! chunk by chunk, each with the CRC32C recorded when it was written.

use super::meta::{read_meta, replica_paths, MetaError};
use super::{lock_poisoned, BlockStore, StoreStats};
use std::io;
use std::sync::Arc;
use tdfs_disk::{DiskFile, Open};
use tdfs_proto::meta::ReplicaReport;
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::CHUNK;

/// Why a replica could not be opened, before it becomes an [`FsError`]:
/// verification needs the errno to tell a failing disk from a passing
/// shortage.
#[derive(Debug)]
pub(crate) enum OpenFailure {
    /// Not held (never, deleted, quarantined or replaced meanwhile).
    Gone,
    /// Its meta file is damaged or describes another replica.
    Corrupt(String),
    /// The file system refused, doing what.
    Io(io::Error, String),
}

impl OpenFailure {
    pub(crate) fn into_fs(self, id: BlockId) -> FsError {
        match self {
            OpenFailure::Gone => FsError::BlockNotFound(id),
            OpenFailure::Corrupt(detail) => FsError::ChecksumMismatch { block: id, detail },
            OpenFailure::Io(e, what) => FsError::Io(format!("{what}: {e}")),
        }
    }
}

impl BlockStore {
    /// Opens finalized replica `id` at generation `gen` for reading. A
    /// replica being deleted or quarantined is not found.
    pub fn open_read(&self, id: BlockId, gen: u64) -> Result<ReplicaReader, FsError> {
        self.open_replica(id, gen, Some(self.stats.clone()))
            .map_err(|f| f.into_fs(id))
    }

    /// Opens a replica; `stats` counts the bytes read (`None` for
    /// verification, whose reads are not reads served).
    pub(crate) fn open_replica(
        &self,
        id: BlockId,
        gen: u64,
        stats: Option<Arc<StoreStats>>,
    ) -> Result<ReplicaReader, OpenFailure> {
        {
            let inner = lock_poisoned(&self.inner);
            match inner.replicas.get(&id) {
                Some(r) if !r.deleting && r.gen == gen => {}
                _ => return Err(OpenFailure::Gone),
            }
        }
        let (dp, mp) = replica_paths(&self.current, id, gen);
        let data = match self.disk().open(&dp, Open::Read) {
            Ok(f) => f,
            // Deleted or replaced since the look-up.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(OpenFailure::Gone),
            Err(e) => return Err(OpenFailure::Io(e, format!("cannot open {}", dp.display()))),
        };
        let meta = match read_meta(self.disk(), &mp) {
            Ok(m) if m.id == id && m.gen == gen => m,
            Ok(m) => {
                return Err(OpenFailure::Corrupt(format!(
                    "meta file describes block {} gen {}",
                    m.id, m.gen
                )))
            }
            Err(MetaError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                tracing::debug!("replica {id} vanished while opening");
                return Err(OpenFailure::Gone);
            }
            Err(MetaError::Io(e)) => {
                return Err(OpenFailure::Io(e, format!("cannot read {}", mp.display())))
            }
            Err(MetaError::Invalid(why)) => {
                return Err(OpenFailure::Corrupt(format!(
                    "meta file {}: {why}",
                    mp.display()
                )))
            }
        };
        Ok(ReplicaReader {
            id,
            gen,
            len: meta.len,
            sha256: meta.sha256,
            crcs: meta.crcs,
            data,
            stats,
        })
    }
}

/// Reads a finalized replica chunk by chunk, with each chunk's stored CRC.
/// Reads are positional (`pread`), so one reader can be shared.
#[derive(Debug)]
pub struct ReplicaReader {
    /// The block.
    id: BlockId,
    /// Its generation.
    gen: u64,
    /// Its length, from the meta file.
    len: u64,
    /// Its SHA-256, from the meta file.
    sha256: [u8; 32],
    /// The CRC32C of every chunk, from the meta file.
    crcs: Vec<u32>,
    /// The data file, open since before any deletion or replacement (so
    /// a reader keeps reading the bytes it started with).
    data: Box<dyn DiskFile>,
    /// Where bytes read are counted (`None` for verification).
    stats: Option<Arc<StoreStats>>,
}

impl ReplicaReader {
    pub fn block(&self) -> BlockId {
        self.id
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// The replica's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    pub fn report(&self) -> ReplicaReport {
        ReplicaReport {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: self.sha256,
        }
    }

    /// Number of chunks.
    pub fn chunks(&self) -> u64 {
        self.crcs.len() as u64
    }

    /// Length of chunk `i` (0 past the end).
    pub fn chunk_len(&self, i: u64) -> usize {
        let start = i.saturating_mul(CHUNK as u64);
        self.len.saturating_sub(start).min(CHUNK as u64) as usize
    }

    /// The CRC32C recorded for chunk `i` when it was written.
    pub fn chunk_crc(&self, i: u64) -> Option<u32> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.crcs.get(i).copied())
    }

    /// Reads chunk `i` into `buf` (at least `chunk_len(i)` bytes); returns
    /// its length and stored CRC. The data is not checked here.
    pub fn read_chunk(&self, i: u64, buf: &mut [u8]) -> Result<(usize, u32), FsError> {
        let crc = self.chunk_crc(i).ok_or_else(|| {
            FsError::InvalidArgument(format!("block {} has no chunk {i}", self.id))
        })?;
        let n = self.chunk_len(i);
        if buf.len() < n {
            return Err(FsError::InvalidArgument(format!(
                "buffer of {} bytes for a chunk of {n}",
                buf.len()
            )));
        }
        self.read_at(i * CHUNK as u64, &mut buf[..n])?;
        Ok((n, crc))
    }

    /// The byte range of chunks `first..first+count`, checked against the
    /// replica's chunk count and `buf`'s length.
    fn chunk_range(&self, first: u64, count: u64, buf: usize) -> Result<(u64, usize), FsError> {
        if first.saturating_add(count) > self.chunks() {
            return Err(FsError::InvalidArgument(format!(
                "block {} has {} chunks, asked for {first}..{}",
                self.id,
                self.chunks(),
                first.saturating_add(count)
            )));
        }
        let start = first * CHUNK as u64;
        let end = ((first + count) * CHUNK as u64).min(self.len);
        let n = (end - start) as usize;
        if buf < n {
            return Err(FsError::InvalidArgument(format!(
                "buffer of {buf} bytes for {n} bytes of chunks"
            )));
        }
        Ok((start, n))
    }

    /// Reads `count` consecutive chunks starting at `first` into `buf`
    /// (contiguously) with one system call; returns the bytes read.
    pub fn read_chunks(&self, first: u64, count: u64, buf: &mut [u8]) -> Result<usize, FsError> {
        if count == 0 {
            return Ok(0);
        }
        let (start, n) = self.chunk_range(first, count, buf.len())?;
        self.read_at(start, &mut buf[..n])?;
        Ok(n)
    }

    /// Like [`read_chunks`](Self::read_chunks), with the file system's own
    /// error (for verification, which tells a bad disk from a short file).
    pub(crate) fn read_chunks_raw(
        &self,
        first: u64,
        count: u64,
        buf: &mut [u8],
    ) -> Result<io::Result<usize>, FsError> {
        let (start, n) = self.chunk_range(first, count, buf.len())?;
        Ok(self.data.read_exact_at(&mut buf[..n], start).map(|()| n))
    }

    /// The data file's length on disk.
    pub(crate) fn file_len(&self) -> io::Result<u64> {
        self.data.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        match self.data.read_exact_at(buf, offset) {
            Ok(()) => {
                if let Some(s) = &self.stats {
                    s.bytes_read.inc_by(buf.len() as u64);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!(
                    "data file is shorter than the {} bytes its meta file records",
                    self.len
                ),
            }),
            Err(e) => Err(FsError::Io(format!("reading block {}: {e}", self.id))),
        }
    }
}
