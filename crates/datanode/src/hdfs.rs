//! The block store as HDFS's DataTransferProtocol server sees it
//! ([`tdfs_hdfs_rpc::datanode::BlockAccess`]): a block a Hadoop client
//! writes is received into `rbw/` like any other, published with its
//! SHA-256 once its last packet came, and reported to the metadata nodes;
//! reads check the store's own chunk CRCs before bytes leave.
//!
//! Hadoop clients send data in their own chunks (512 bytes, usually) and
//! no digest of their own: the sink regroups the bytes into the store's
//! [`CHUNK`]s and the replica's SHA-256 is that of the bytes received.

use crate::block_store::{ReplicaReader, ReplicaWriter};
use crate::transfer::{StoreEvent, TransferCtx};
use std::sync::Arc;
use tdfs_hdfs_rpc::datanode::{BlockAccess, ReplicaSink, ReplicaSource};
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::CHUNK;

/// [`BlockAccess`] over a datanode's store and its report channel.
pub struct HdfsStore {
    ctx: Arc<TransferCtx>,
}

impl HdfsStore {
    pub fn new(ctx: Arc<TransferCtx>) -> Self {
        HdfsStore { ctx }
    }

    /// The stored replica of `block`: generation `gen`, else whichever
    /// generation this node holds (a client recovering a pipeline may know
    /// an older one).
    fn stored(&self, block: BlockId, gen: u64) -> Result<ReplicaReader, FsError> {
        let store = &self.ctx.store;
        match store.open_read(block, gen) {
            Ok(r) => Ok(r),
            Err(e) => match store.get(block) {
                Some(rep) if rep.gen != gen => store.open_read(block, rep.gen),
                _ => Err(e),
            },
        }
    }
}

impl BlockAccess for HdfsStore {
    fn create(&self, block: u64, gen: u64, expected: u64) -> Result<Box<dyn ReplicaSink>, FsError> {
        let w = self.ctx.store.begin_write(block, gen, expected)?;
        Ok(Box::new(Sink::new(w, self.ctx.clone())))
    }

    fn reopen(
        &self,
        block: u64,
        old_gen: u64,
        new_gen: u64,
        keep: u64,
    ) -> Result<Box<dyn ReplicaSink>, FsError> {
        let r = self.stored(block, old_gen)?;
        if keep > r.len() {
            return Err(FsError::InvalidArgument(format!(
                "block {block}: this datanode holds {} bytes of it, {keep} asked to be kept",
                r.len()
            )));
        }
        if new_gen <= r.gen() {
            return Err(FsError::InvalidArgument(format!(
                "block {block}: generation {new_gen} is not newer than the stored {}",
                r.gen()
            )));
        }
        let w = self.ctx.store.begin_write(block, new_gen, r.len())?;
        let mut sink = Sink::new(w, self.ctx.clone());
        let mut buf = vec![0u8; CHUNK];
        let mut copied = 0u64;
        for i in 0..r.chunks() {
            if copied >= keep {
                break;
            }
            let (n, crc) = r.read_chunk(i, &mut buf)?;
            if crc32c::crc32c(&buf[..n]) != crc {
                return Err(corrupt(&self.ctx, &r, i));
            }
            let take = (keep - copied).min(n as u64) as usize;
            sink.write(&buf[..take])?;
            copied += take as u64;
        }
        Ok(Box::new(sink))
    }

    fn open(&self, block: u64, gen: u64) -> Result<Arc<dyn ReplicaSource>, FsError> {
        let r = self.ctx.store.open_read(block, gen)?;
        Ok(Arc::new(Source {
            r,
            ctx: self.ctx.clone(),
        }))
    }
}

/// Quarantines a replica whose chunk `i` failed its CRC, announces it,
/// and returns the error to answer with.
fn corrupt(ctx: &TransferCtx, r: &ReplicaReader, i: u64) -> FsError {
    let (id, gen) = (r.block(), r.gen());
    let e = FsError::ChecksumMismatch {
        block: id,
        detail: format!("stored chunk {i} fails its CRC32C"),
    };
    tracing::warn!("block {id} gen {gen} is corrupt here: {e}");
    match ctx.store.quarantine(id, gen, &e.to_string()) {
        Ok(true) => {
            let _ = ctx.events.send(StoreEvent::Quarantined { id, gen });
        }
        Ok(false) => {}
        Err(q) => tracing::warn!("block {id}: cannot quarantine: {q}"),
    }
    e
}

/// A replica being received from a Hadoop client, regrouped into chunks.
struct Sink {
    w: ReplicaWriter,
    /// The chunk being filled (less than [`CHUNK`] bytes between calls).
    pending: Vec<u8>,
    ctx: Arc<TransferCtx>,
}

impl Sink {
    fn new(w: ReplicaWriter, ctx: Arc<TransferCtx>) -> Self {
        Sink {
            w,
            pending: Vec::with_capacity(CHUNK),
            ctx,
        }
    }

    fn flush_chunk(&mut self) -> Result<(), FsError> {
        let crc = crc32c::crc32c(&self.pending);
        self.w.write_chunk(&self.pending, crc)?;
        self.pending.clear();
        Ok(())
    }
}

impl ReplicaSink for Sink {
    fn write(&mut self, mut data: &[u8]) -> Result<(), FsError> {
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= CHUNK {
                // Whole chunks go straight from the packet.
                let crc = crc32c::crc32c(&data[..CHUNK]);
                self.w.write_chunk(&data[..CHUNK], crc)?;
                data = &data[CHUNK..];
                continue;
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == CHUNK {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.w.len() + self.pending.len() as u64
    }

    fn finish(mut self: Box<Self>) -> Result<(), FsError> {
        if !self.pending.is_empty() {
            self.flush_chunk()?;
        }
        let Sink { w, ctx, .. } = *self;
        let fin = w.received();
        let report = w.finish(fin)?;
        let _ = ctx.events.send(StoreEvent::Finalized(report));
        Ok(())
    }
}

/// A finalized replica served to a Hadoop client.
struct Source {
    r: ReplicaReader,
    ctx: Arc<TransferCtx>,
}

impl ReplicaSource for Source {
    fn len(&self) -> u64 {
        self.r.len()
    }

    fn chunk_size(&self) -> usize {
        CHUNK
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        if buf.is_empty() {
            return Ok(());
        }
        if !offset.is_multiple_of(CHUNK as u64) {
            return Err(FsError::InvalidArgument(format!(
                "read at {offset}, not a multiple of {CHUNK}"
            )));
        }
        let first = offset / CHUNK as u64;
        let count = buf.len().div_ceil(CHUNK) as u64;
        let n = self.r.read_chunks(first, count, buf)?;
        for (k, piece) in buf[..n].chunks(CHUNK).enumerate() {
            let i = first + k as u64;
            if Some(crc32c::crc32c(piece)) != self.r.chunk_crc(i) {
                return Err(corrupt(&self.ctx, &self.r, i));
            }
        }
        if n != buf.len() {
            return Err(FsError::InvalidArgument(format!(
                "read of {} bytes at {offset} past the replica's end",
                buf.len()
            )));
        }
        Ok(())
    }

    fn chunk_crcs(&self) -> Vec<u32> {
        (0..self.r.chunks())
            .map(|i| self.r.chunk_crc(i).unwrap_or_default())
            .collect()
    }
}
