//! Receiving a replica into `rbw/` and publishing it into `current/`.
//!
//! A write reserves its expected length up front (refused with `NoSpace`
//! when it does not fit; a real ENOSPC becomes `NoSpace` too) and grows the
//! reservation chunk by chunk past it. Publishing (see the store docs for
//! the order of fsyncs and renames) happens only once the SHA-256 the
//! writer sent matches the bytes received; a writer dropped unfinished
//! removes its files and releases its space.

use super::failpoints::{
    PUBLISH_AFTER_DATA_DIR_FSYNC, PUBLISH_AFTER_DATA_FSYNC, PUBLISH_AFTER_DATA_RENAME,
    PUBLISH_AFTER_META_DIR_FSYNC, PUBLISH_AFTER_META_FSYNC, PUBLISH_AFTER_META_RENAME,
};
use super::meta::{encode_meta, replica_paths};
use super::{
    io_at, is_no_space, lock_poisoned, remove_quietly, sync_dir, BlockStore, Receiving, Replica,
};
use sha2::{Digest, Sha256};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tdfs_disk::{DiskFile, Open};
use tdfs_proto::meta::{DatanodeUsage, ReplicaReport};
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::{Finish, CHUNK};

/// Writeback of a replica being received is started every this many bytes.
const SYNC_BEHIND: u64 = 8 << 20;

impl BlockStore {
    fn no_space(&self, block: BlockId, needed: u64, u: &DatanodeUsage) -> FsError {
        let avail = u.capacity.saturating_sub(u.used).saturating_sub(u.pending);
        FsError::NoSpace(format!(
            "datanode {} cannot take block {block}: {needed} bytes needed, {avail} available \
             (capacity {}, used {}, reserved {})",
            self.node, u.capacity, u.used, u.pending
        ))
    }

    /// Starts receiving replica `id`/`gen`, reserving `expected_len` bytes.
    /// Fails with `NoSpace` when they are not available, when a newer
    /// generation of the block is already stored, and when a quarantined
    /// replica of the same generation is kept here (the leader deletes it
    /// first: a delete by generation must not take the new copy with it).
    pub fn begin_write(
        self: &Arc<Self>,
        id: BlockId,
        gen: u64,
        expected_len: u64,
    ) -> Result<ReplicaWriter, FsError> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        {
            let mut inner = lock_poisoned(&self.inner);
            if let Some(r) = inner.replicas.get(&id) {
                if r.gen > gen && !r.deleting {
                    return Err(FsError::InvalidArgument(format!(
                        "datanode {} holds block {id} at gen {}, newer than gen {gen}",
                        self.node, r.gen
                    )));
                }
            }
            if inner.quarantined.contains_key(&(id, gen)) {
                return Err(FsError::InvalidArgument(format!(
                    "datanode {} keeps a quarantined replica of block {id} gen {gen}",
                    self.node
                )));
            }
            let u = self.usage_locked(&inner);
            if u.capacity.saturating_sub(u.used).saturating_sub(u.pending) < expected_len {
                return Err(self.no_space(id, expected_len, &u));
            }
            inner.pending += expected_len;
            inner.receiving.insert(
                token,
                Receiving {
                    id,
                    reserved: expected_len,
                },
            );
        }
        let data_path = self.rbw.join(format!("blk_{id}_{gen}_{token}.data"));
        let meta_path = self.rbw.join(format!("blk_{id}_{gen}_{token}.meta"));
        let mut w = ReplicaWriter {
            store: self.clone(),
            token,
            id,
            gen,
            data: None,
            data_path,
            meta_path,
            crcs: Vec::new(),
            sha: Sha256::new(),
            len: 0,
            reserved: expected_len,
            short_seen: false,
            released: false,
        };
        let f = self
            .disk()
            .open(&w.data_path, Open::CreateNew)
            .map_err(|e| self.write_error("cannot create", &w.data_path, e))?;
        w.data = Some(f);
        Ok(w)
    }

    fn write_error(&self, what: &str, path: &Path, e: io::Error) -> FsError {
        if is_no_space(&e) {
            FsError::NoSpace(format!(
                "datanode {}: disk full: {what} {}: {e}",
                self.node,
                path.display()
            ))
        } else {
            io_at(what, path, e)
        }
    }

    /// Grows a writer's reservation by `extra` bytes.
    fn reserve_more(&self, token: u64, block: BlockId, extra: u64) -> Result<(), FsError> {
        let mut inner = lock_poisoned(&self.inner);
        let u = self.usage_locked(&inner);
        if u.capacity.saturating_sub(u.used).saturating_sub(u.pending) < extra {
            return Err(self.no_space(block, extra, &u));
        }
        inner.pending += extra;
        if let Some(r) = inner.receiving.get_mut(&token) {
            r.reserved += extra;
        }
        Ok(())
    }

    /// Moves a completed writer's files into `current/` (see the store docs
    /// for the order) and records the replica.
    fn publish(&self, w: &mut ReplicaWriter, report: &ReplicaReport) -> Result<(), FsError> {
        let _p = lock_poisoned(&self.publish);
        let old = lock_poisoned(&self.inner).replicas.get(&w.id).cloned();
        if let Some(old) = &old {
            if old.gen > w.gen || (old.gen == w.gen && !old.deleting) {
                if old.gen == w.gen && old.len == report.len && old.sha256 == report.sha256 {
                    // The same replica again: keep the stored one.
                    return Ok(());
                }
                return Err(FsError::InvalidArgument(format!(
                    "datanode {} already holds block {} at gen {} (received gen {})",
                    self.node, w.id, old.gen, w.gen
                )));
            }
        }
        let disk = self.disk();
        let (data_dst, meta_dst) = replica_paths(&self.current, w.id, w.gen);
        disk.rename(&w.data_path, &data_dst)
            .map_err(|e| io_at("cannot publish", &data_dst, e))?;
        failpoint!(PUBLISH_AFTER_DATA_RENAME);
        if self.cfg.fsync {
            if let Err(e) = sync_dir(disk, &self.current) {
                remove_quietly(disk, &data_dst);
                return Err(e);
            }
        }
        failpoint!(PUBLISH_AFTER_DATA_DIR_FSYNC);
        if let Err(e) = disk.rename(&w.meta_path, &meta_dst) {
            remove_quietly(disk, &data_dst);
            return Err(io_at("cannot publish", &meta_dst, e));
        }
        failpoint!(PUBLISH_AFTER_META_RENAME);
        if self.cfg.fsync {
            sync_dir(disk, &self.current)?;
        }
        failpoint!(PUBLISH_AFTER_META_DIR_FSYNC);
        self.record(w, report);
        if let Some(old) = old {
            // The new generation is committed; the old one can go, durably:
            // were it to come back after a crash while the new one is
            // quarantined, the stale copy would be taken for the replica.
            let (d, m) = replica_paths(&self.current, w.id, old.gen);
            remove_quietly(disk, &m);
            remove_quietly(disk, &d);
            if self.cfg.fsync {
                if let Err(e) = sync_dir(disk, &self.current) {
                    tracing::warn!(
                        fault = "local",
                        "block {}: removing gen {}: {e}",
                        w.id,
                        old.gen
                    );
                }
            }
        }
        Ok(())
    }

    /// Records a published replica and releases its writer's reservation.
    fn record(&self, w: &mut ReplicaWriter, report: &ReplicaReport) {
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.receiving.remove(&w.token) {
            inner.pending -= r.reserved;
        }
        inner.rbw_written -= w.len;
        let rep = Replica {
            gen: w.gen,
            len: report.len,
            sha256: report.sha256,
            deleting: false,
            checking: 0,
        };
        if let Some(prev) = inner.replicas.insert(w.id, rep) {
            inner.used -= prev.len;
        }
        inner.used += report.len;
        w.released = true;
    }

    fn release(&self, token: u64, written: u64) {
        let mut inner = lock_poisoned(&self.inner);
        if let Some(r) = inner.receiving.remove(&token) {
            inner.pending -= r.reserved;
        }
        inner.rbw_written -= written;
    }
}

/// Receives one replica into `rbw/`. Dropping it unfinished removes its
/// files and releases its reservation.
pub struct ReplicaWriter {
    /// The store it publishes into.
    store: Arc<BlockStore>,
    /// Its entry among the store's writers.
    token: u64,
    /// The block.
    id: BlockId,
    /// Its generation.
    gen: u64,
    /// The data file in `rbw/` (`None` once handed to publishing).
    data: Option<Box<dyn DiskFile>>,
    /// Where the data file is being written.
    data_path: PathBuf,
    /// Where the meta file is written at the end.
    meta_path: PathBuf,
    /// CRC32C of every chunk received.
    crcs: Vec<u32>,
    /// SHA-256 of the bytes received.
    sha: Sha256,
    /// Bytes received.
    len: u64,
    /// Bytes reserved so far.
    reserved: u64,
    /// A short chunk was received: it must have been the last.
    short_seen: bool,
    /// Published or released: the drop has nothing to undo.
    released: bool,
}

impl std::fmt::Debug for ReplicaWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaWriter")
            .field("id", &self.id)
            .field("gen", &self.gen)
            .field("len", &self.len)
            .finish()
    }
}

impl ReplicaWriter {
    pub fn block(&self) -> BlockId {
        self.id
    }

    pub fn gen(&self) -> u64 {
        self.gen
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks a chunk's shape before it is written: 1..=CHUNK bytes, only
    /// the last chunk may be short.
    fn check_shape(&self, data: &[u8]) -> Result<(), FsError> {
        if data.is_empty() || data.len() > CHUNK {
            return Err(FsError::InvalidArgument(format!(
                "chunk of {} bytes (1..={CHUNK} allowed)",
                data.len()
            )));
        }
        if self.short_seen {
            return Err(FsError::InvalidArgument(format!(
                "block {}: a chunk follows a short chunk",
                self.id
            )));
        }
        Ok(())
    }

    /// [`check_shape`](Self::check_shape), and `crc` must be the chunk's
    /// CRC32C.
    fn check_chunk(&self, data: &[u8], crc: u32) -> Result<(), FsError> {
        self.check_shape(data)?;
        let actual = crc32c::crc32c(data);
        if actual != crc {
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!(
                    "chunk {} (offset {}): crc32c {actual:08x}, packet says {crc:08x}",
                    self.crcs.len(),
                    self.len
                ),
            });
        }
        Ok(())
    }

    /// Appends one chunk: 1..=CHUNK bytes, only the last chunk may be short,
    /// and `crc` must be its CRC32C.
    pub fn write_chunk(&mut self, data: &[u8], crc: u32) -> Result<(), FsError> {
        self.check_chunk(data, crc)?;
        self.put_chunk(data, crc)
    }

    /// Appends one chunk whose CRC32C is computed here, once: for a writer
    /// that has none for the store's chunks (a Hadoop client, whose own
    /// 512-byte chunk checksums were checked as its packets arrived).
    pub fn append_chunk(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.check_shape(data)?;
        self.put_chunk(data, crc32c::crc32c(data))
    }

    fn put_chunk(&mut self, data: &[u8], crc: u32) -> Result<(), FsError> {
        let n = data.len() as u64;
        if self.len + n > self.reserved {
            let extra = (self.len + n - self.reserved).max(CHUNK as u64);
            self.store.reserve_more(self.token, self.id, extra)?;
            self.reserved += extra;
        }
        let Some(f) = self.data.as_ref() else {
            return Err(FsError::Internal("replica writer already failed".into()));
        };
        if let Err(e) = f.write_all_at(data, self.len) {
            return Err(self.store.write_error("cannot write", &self.data_path, e));
        }
        self.sha.update(data);
        self.crcs.push(crc);
        let before = self.len;
        self.len += n;
        // Write-behind: start writeback of every full 8 MiB as it is written,
        // so the fsync at the end finds little left to flush and the disk
        // works while the rest of the block streams in.
        if self.store.cfg.fsync && before / SYNC_BEHIND != self.len / SYNC_BEHIND {
            let start = (self.len / SYNC_BEHIND - 1) * SYNC_BEHIND;
            f.start_writeback(start, SYNC_BEHIND);
        }
        lock_poisoned(&self.store.inner).rbw_written += n;
        self.store.stats.bytes_written.inc_by(n);
        self.short_seen = data.len() < CHUNK;
        Ok(())
    }

    /// Reads back chunk `i` of what was received into `buf` (at least
    /// [`CHUNK`] bytes), checked against the CRC32C it arrived with: the
    /// recovery of an interrupted write copies the prefix it keeps.
    pub fn read_chunk(&self, i: usize, buf: &mut [u8]) -> Result<usize, FsError> {
        let Some(&crc) = self.crcs.get(i) else {
            return Err(FsError::InvalidArgument(format!(
                "block {}: chunk {i} of {} received",
                self.id,
                self.crcs.len()
            )));
        };
        let Some(f) = self.data.as_ref() else {
            return Err(FsError::Internal("replica writer already failed".into()));
        };
        let off = i as u64 * CHUNK as u64;
        let n = (self.len - off).min(CHUNK as u64) as usize;
        f.read_exact_at(&mut buf[..n], off)
            .map_err(|e| io_at("cannot read back", &self.data_path, e))?;
        if crc32c::crc32c(&buf[..n]) != crc {
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!("chunk {i} being received fails its CRC32C"),
            });
        }
        Ok(n)
    }

    /// Chunks received so far.
    pub fn chunks(&self) -> usize {
        self.crcs.len()
    }

    /// The length and SHA-256 of what was received, for a writer that
    /// sends no digest of its own (a Hadoop client): [`finish`](Self::finish)
    /// with it publishes exactly the bytes that arrived.
    pub fn received(&self) -> Finish {
        Finish {
            len: self.len,
            sha256: self.sha.clone().finalize().into(),
        }
    }

    /// Checks `fin` against what was received and publishes the replica.
    /// On a length or digest mismatch nothing is published.
    pub fn finish(mut self, fin: Finish) -> Result<ReplicaReport, FsError> {
        let sha: [u8; 32] = std::mem::take(&mut self.sha).finalize().into();
        if fin.len != self.len {
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: format!("received {} bytes, the writer says {}", self.len, fin.len),
            });
        }
        if fin.sha256 != sha {
            self.store.stats.verify_failures.inc();
            return Err(FsError::ChecksumMismatch {
                block: self.id,
                detail: "SHA-256 of the received bytes differs from the writer's".into(),
            });
        }
        let report = ReplicaReport {
            id: self.id,
            gen: self.gen,
            len: self.len,
            sha256: sha,
        };
        let store = self.store.clone();
        let Some(data) = self.data.take() else {
            return Err(FsError::Internal("replica writer already failed".into()));
        };
        if store.cfg.fsync {
            data.sync_data()
                .map_err(|e| store.write_error("cannot fsync", &self.data_path, e))?;
        }
        drop(data);
        failpoint!(PUBLISH_AFTER_DATA_FSYNC);
        self.write_meta(&report)?;
        failpoint!(PUBLISH_AFTER_META_FSYNC);
        store.publish(&mut self, &report)?;
        store.stats.blocks_finalized.inc();
        Ok(report)
    }

    /// Writes (and fsyncs) the meta file in `rbw/`.
    fn write_meta(&self, report: &ReplicaReport) -> Result<(), FsError> {
        let store = &self.store;
        let meta = encode_meta(report, &self.crcs);
        let write = || -> io::Result<()> {
            let f = store.disk().open(&self.meta_path, Open::CreateNew)?;
            f.write_all_at(&meta, 0)?;
            if store.cfg.fsync {
                f.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| store.write_error("cannot write", &self.meta_path, e))
    }
}

impl Drop for ReplicaWriter {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.data = None;
        let disk = self.store.disk();
        remove_quietly(disk, &self.data_path);
        remove_quietly(disk, &self.meta_path);
        self.store.release(self.token, self.len);
        self.released = true;
    }
}
