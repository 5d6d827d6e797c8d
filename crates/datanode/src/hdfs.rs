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
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tdfs_hdfs_rpc::datanode::{BlockAccess, ReplicaSink, ReplicaSource};
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::CHUNK;

/// How long the replica an interrupted write left waits for a pipeline
/// recovery to reopen it before its files go (it was never finalized:
/// the block's acknowledged bytes live on in the recovered pipeline, or
/// the client gave up on it). Hadoop's client recovers within seconds.
pub const INTERRUPTED_KEEP: Duration = Duration::from_secs(300);
/// How long a recovery waits for the write it supersedes to let go of the
/// replica (its connection breaking is seen a moment after the client's).
const SUPERSEDE_WAIT: Duration = Duration::from_secs(15);

/// The replicas Hadoop clients are writing here, by block: HDFS's RBW
/// replicas, as far as pipeline recovery needs them.
#[derive(Default)]
struct Rbw {
    slots: Mutex<HashMap<BlockId, Slot>>,
    changed: Condvar,
    next: AtomicU64,
}

enum Slot {
    /// A write connection holds the sink with this serial.
    Writing(u64),
    /// Its write broke off: the sink waits for a recovery.
    Interrupted { sink: Box<Sink>, since: Instant },
}

impl Rbw {
    fn lock(&self) -> MutexGuard<'_, HashMap<BlockId, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the interrupted replicas older than `keep`.
    fn sweep(&self, keep: Duration) {
        let mut gone = Vec::new();
        {
            let mut slots = self.lock();
            slots.retain(|id, s| match s {
                Slot::Interrupted { since, .. } if since.elapsed() >= keep => {
                    gone.push(*id);
                    false
                }
                _ => true,
            });
        }
        for id in gone {
            tracing::info!("block {id}: the replica an interrupted write left expired");
        }
    }

    /// The interrupted replica of `block` at a generation older than
    /// `new_gen`, once the write that holds it (if any) lets go.
    fn take_interrupted(&self, block: BlockId, new_gen: u64) -> Option<Box<Sink>> {
        let deadline = Instant::now() + SUPERSEDE_WAIT;
        let mut slots = self.lock();
        loop {
            match slots.get(&block) {
                Some(Slot::Interrupted { sink, .. }) if sink.w.gen() < new_gen => {
                    return match slots.remove(&block) {
                        Some(Slot::Interrupted { sink, .. }) => Some(sink),
                        _ => None,
                    };
                }
                Some(Slot::Writing(_)) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    slots = self
                        .changed
                        .wait_timeout(slots, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                _ => return None,
            }
        }
    }
}

/// [`BlockAccess`] over a datanode's store and its report channel.
pub struct HdfsStore {
    ctx: Arc<TransferCtx>,
    rbw: Arc<Rbw>,
}

impl HdfsStore {
    pub fn new(ctx: Arc<TransferCtx>) -> Self {
        let rbw = Arc::new(Rbw::default());
        let weak = Arc::downgrade(&rbw);
        // Interrupted replicas nobody recovers go after INTERRUPTED_KEEP.
        let _ = std::thread::Builder::new()
            .name("hdfs-rbw-sweep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                match weak.upgrade() {
                    Some(r) => r.sweep(INTERRUPTED_KEEP),
                    None => return,
                }
            });
        HdfsStore { ctx, rbw }
    }

    fn sink(&self, w: ReplicaWriter) -> Sink {
        Sink::new(w, self.ctx.clone(), Some(&self.rbw))
    }

    /// Replicas left by interrupted writes, waiting for a recovery.
    pub fn interrupted(&self) -> usize {
        self.rbw
            .lock()
            .values()
            .filter(|s| matches!(s, Slot::Interrupted { .. }))
            .count()
    }

    /// Generation `new_gen` of `block` over the first `keep` bytes of the
    /// replica an interrupted write left (HDFS's `recoverRbw`: the client
    /// keeps what it had acknowledged and sends the rest again).
    fn recover_rbw(
        &self,
        old: Box<Sink>,
        new_gen: u64,
        keep: u64,
    ) -> Result<Box<dyn ReplicaSink>, FsError> {
        let block = old.w.block();
        if keep > old.len() {
            return Err(FsError::InvalidArgument(format!(
                "block {block}: the interrupted write left {} bytes here, {keep} asked to be kept",
                old.len()
            )));
        }
        let w = self.ctx.store.begin_write(block, new_gen, old.len())?;
        let mut sink = self.sink(w);
        let mut buf = vec![0u8; CHUNK];
        let mut copied = 0u64;
        for i in 0..old.w.chunks() {
            if copied >= keep {
                break;
            }
            let n = old.w.read_chunk(i, &mut buf)?;
            let take = (keep - copied).min(n as u64) as usize;
            sink.write(&buf[..take])?;
            copied += take as u64;
        }
        if copied < keep {
            let take = (keep - copied) as usize;
            sink.write(&old.pending[..take])?;
        }
        tracing::info!(
            "block {block}: gen {} recovered as gen {new_gen} over {keep} of {} bytes",
            old.w.gen(),
            old.len()
        );
        // The old generation's files go once the new one holds the prefix.
        drop(old);
        Ok(Box::new(sink))
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
        self.rbw.sweep(INTERRUPTED_KEEP);
        let w = self.ctx.store.begin_write(block, gen, expected)?;
        Ok(Box::new(self.sink(w)))
    }

    fn reopen(
        &self,
        block: u64,
        old_gen: u64,
        new_gen: u64,
        keep: u64,
    ) -> Result<Box<dyn ReplicaSink>, FsError> {
        self.rbw.sweep(INTERRUPTED_KEEP);
        if let Some(old) = self.rbw.take_interrupted(block, new_gen) {
            return self.recover_rbw(old, new_gen, keep);
        }
        let r = match self.stored(block, old_gen) {
            Ok(r) => r,
            // A recovery of a write that had received nothing here.
            Err(_) if keep == 0 => return self.create(block, new_gen, 0),
            Err(e) => return Err(e),
        };
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
        let mut sink = self.sink(w);
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
    tracing::warn!(fault = "local", "block {id} gen {gen} is corrupt here: {e}");
    match ctx.store.quarantine(id, gen, &e.to_string()) {
        Ok(true) => {
            let _ = ctx.events.send(StoreEvent::Quarantined { id, gen });
        }
        Ok(false) => {}
        Err(q) => tracing::warn!(fault = "local", "block {id}: cannot quarantine: {q}"),
    }
    e
}

/// A replica being received from a Hadoop client, regrouped into chunks.
struct Sink {
    w: ReplicaWriter,
    /// The chunk being filled (less than [`CHUNK`] bytes between calls).
    pending: Vec<u8>,
    ctx: Arc<TransferCtx>,
    /// Its registration as being written.
    reg: Option<Reg>,
}

/// A sink's slot among the replicas being written; released (or
/// dropped), the slot goes, unless a later write took it.
struct Reg {
    rbw: Weak<Rbw>,
    serial: u64,
    id: BlockId,
}

impl Reg {
    fn release(&mut self) -> Option<Arc<Rbw>> {
        let r = std::mem::take(&mut self.rbw).upgrade()?;
        let mut slots = r.lock();
        if matches!(slots.get(&self.id), Some(Slot::Writing(s)) if *s == self.serial) {
            slots.remove(&self.id);
        }
        drop(slots);
        r.changed.notify_all();
        Some(r)
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        self.release();
    }
}

impl Sink {
    fn new(w: ReplicaWriter, ctx: Arc<TransferCtx>, rbw: Option<&Arc<Rbw>>) -> Self {
        let reg = rbw.map(|r| {
            let serial = r.next.fetch_add(1, Ordering::Relaxed);
            r.lock().insert(w.block(), Slot::Writing(serial));
            r.changed.notify_all();
            Reg {
                rbw: Arc::downgrade(r),
                serial,
                id: w.block(),
            }
        });
        Sink {
            w,
            pending: Vec::with_capacity(CHUNK),
            ctx,
            reg,
        }
    }

    fn flush_chunk(&mut self) -> Result<(), FsError> {
        self.w.append_chunk(&self.pending)?;
        self.pending.clear();
        Ok(())
    }
}
impl ReplicaSink for Sink {
    fn write(&mut self, mut data: &[u8]) -> Result<(), FsError> {
        while !data.is_empty() {
            if self.pending.is_empty() && data.len() >= CHUNK {
                // Whole chunks go straight from the packet.
                self.w.append_chunk(&data[..CHUNK])?;
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
        let Sink { w, ctx, reg, .. } = *self;
        let fin = w.received();
        let report = w.finish(fin);
        drop(reg);
        let _ = ctx.events.send(StoreEvent::Finalized(report?));
        Ok(())
    }

    fn interrupt(mut self: Box<Self>) {
        let id = self.w.block();
        let Some(r) = self.reg.take().and_then(|mut g| g.release()) else {
            return;
        };
        if self.is_empty() {
            // Nothing to keep: a recovery starts from nothing anyway.
            return;
        }
        let mut slots = r.lock();
        // A recovery that already started a newer generation wins.
        if slots.contains_key(&id) {
            return;
        }
        tracing::info!(
            "block {id} gen {}: write interrupted after {} bytes, kept for a recovery",
            self.w.gen(),
            self.len()
        );
        let since = Instant::now();
        slots.insert(id, Slot::Interrupted { sink: self, since });
        drop(slots);
        r.changed.notify_all();
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
