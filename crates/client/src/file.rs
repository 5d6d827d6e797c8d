//! Writing and reading whole files: blocks allocated by the leader, streamed
//! through datanode pipelines in CHUNK-sized packets, replicas chosen and
//! failed over on read.

use crate::meta::MetaClient;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tdfs_proto::meta::{BlockInfo, LocatedBlock, MetaRequest, MetaResponse};
use tdfs_proto::{DatanodeId, FsError};
use tdfs_transfer::{read_block_with_token, BlockWriter, Finish, CHUNK};
use tokio::io::AsyncWrite;

/// Attempts at writing one block before giving up.
const MAX_BLOCK_ATTEMPTS: usize = 6;

/// How to create a file.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    pub overwrite: bool,
    pub replication: Option<u16>,
    pub block_size: Option<u64>,
    pub mode: Option<u16>,
    pub create_parents: bool,
}

/// An open file being written. Call [`close`](Self::close) to complete it;
/// dropping it unclosed leaves the file to lease recovery.
pub struct FileWriter {
    c: Arc<MetaClient>,
    path: String,
    block_size: u64,
    /// Bytes of the current block, kept until the block is acknowledged so
    /// that it can be sent again through a rebuilt pipeline.
    buf: Vec<u8>,
    /// Bytes of `buf` already streamed into the open pipeline.
    sent: usize,
    /// The current block and its open pipeline.
    cur: Option<(LocatedBlock, Option<BlockWriter>)>,
    /// The last acknowledged block, committed by the next AddBlock or Complete.
    previous: Option<BlockInfo>,
    /// Datanodes that failed during this write.
    excluded: Vec<DatanodeId>,
    written: u64,
    _lease: crate::meta::LeaseGuard,
}

impl FileWriter {
    /// Creates `path` and opens it for writing.
    pub async fn create(c: Arc<MetaClient>, path: &str, o: CreateOptions) -> Result<Self, FsError> {
        let r = c
            .meta(MetaRequest::Create {
                path: path.to_string(),
                overwrite: o.overwrite,
                replication: o.replication,
                block_size: o.block_size,
                mode: o.mode,
                create_parents: o.create_parents,
            })
            .await?;
        let MetaResponse::Status(st) = r else {
            return Err(FsError::Internal(format!("unexpected reply {r:?}")));
        };
        Ok(Self::opened(c, path, st.block_size))
    }

    /// Reopens a complete file to add data after its end (new blocks).
    pub async fn append(c: Arc<MetaClient>, path: &str) -> Result<Self, FsError> {
        let r = c
            .meta(MetaRequest::Append {
                path: path.to_string(),
            })
            .await?;
        let MetaResponse::Appended { status, .. } = r else {
            return Err(FsError::Internal(format!("unexpected reply {r:?}")));
        };
        Ok(Self::opened(c, path, status.block_size))
    }

    fn opened(c: Arc<MetaClient>, path: &str, block_size: u64) -> Self {
        let lease = c.hold_lease();
        FileWriter {
            c,
            path: path.to_string(),
            block_size,
            buf: Vec::new(),
            sent: 0,
            cur: None,
            previous: None,
            excluded: Vec::new(),
            written: 0,
            _lease: lease,
        }
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes `data`, streaming full packets as they fill.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), FsError> {
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf
                    .reserve_exact(self.block_size.min(64 << 20) as usize);
            }
            let room = self.block_size as usize - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            self.written += take as u64;
            self.stream_full_chunks().await;
            if self.buf.len() as u64 == self.block_size {
                self.end_block().await?;
            }
        }
        Ok(())
    }

    /// Sends every complete chunk not yet sent. A failure is remembered by
    /// dropping the pipeline; `end_block` rebuilds it and resends.
    async fn stream_full_chunks(&mut self) {
        if self.cur.is_none() {
            if let Err(e) = self.open_block().await {
                tracing::debug!("opening a pipeline failed: {e}");
                return;
            }
        }
        let Some((_, Some(w))) = &mut self.cur else {
            return;
        };
        while self.buf.len() - self.sent >= CHUNK {
            let chunk = &self.buf[self.sent..self.sent + CHUNK];
            if let Err(e) = w.send_chunk(chunk).await {
                tracing::debug!("pipeline broke: {e}");
                if let Some((_, w)) = &mut self.cur {
                    *w = None;
                }
                return;
            }
            self.sent += CHUNK;
        }
    }

    /// Allocates the next block and opens its pipeline.
    async fn open_block(&mut self) -> Result<(), FsError> {
        let r = self
            .c
            .meta(MetaRequest::AddBlock {
                path: self.path.clone(),
                previous: self.previous.clone(),
                excluded: self.excluded.clone(),
            })
            .await?;
        let MetaResponse::Block(lb) = r else {
            return Err(FsError::Internal(format!("unexpected reply {r:?}")));
        };
        self.previous = None;
        self.sent = 0;
        let w = self.connect(&lb).await;
        self.cur = Some((lb, w));
        Ok(())
    }

    async fn connect(&mut self, lb: &LocatedBlock) -> Option<BlockWriter> {
        let mut info = lb.block.clone();
        info.len = self.block_size;
        let cfg = self.c.config();
        let (connector, key) = (&cfg.connector, cfg.key.as_ref());
        match BlockWriter::open_with_token(connector, &lb.locations, info, key, lb.token.clone())
            .await
        {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!("cannot reach the pipeline head: {e}");
                if let Some(first) = lb.locations.first() {
                    self.excluded.push(first.id.clone());
                }
                None
            }
        }
    }

    /// Finishes the current block: streams what is left, collects the acks,
    /// and rebuilds the pipeline (new generation stamp, replacement nodes)
    /// until every target of the pipeline holds the block.
    async fn end_block(&mut self) -> Result<(), FsError> {
        if self.cur.is_none() {
            self.open_block().await?;
        }
        let digest: [u8; 32] = Sha256::digest(&self.buf).into();
        let len = self.buf.len() as u64;
        for attempt in 0..MAX_BLOCK_ATTEMPTS {
            let (lb, w) = self.cur.take().expect("a block is open");
            let head: Vec<DatanodeId> = lb.locations.iter().take(1).map(|l| l.id.clone()).collect();
            let outcome = match w {
                Some(w) => self.finish_pipeline(w, len, digest).await.map_err(|_| head),
                None => Err(head),
            };
            let pipeline: Vec<DatanodeId> = lb.locations.iter().map(|l| l.id.clone()).collect();
            let failed_nodes = match outcome {
                Ok((ok, _)) if ok.len() == pipeline.len() => {
                    self.previous = Some(BlockInfo {
                        id: lb.block.id,
                        gen: lb.block.gen,
                        len,
                        sha256: Some(digest),
                    });
                    self.buf.clear();
                    self.sent = 0;
                    return Ok(());
                }
                // Only nodes that reported a failure are blamed; nodes the
                // stream never reached (after a failed one) stay candidates.
                Ok((_, failed)) => failed,
                Err(failed) => failed,
            };
            for f in &failed_nodes {
                if !self.excluded.contains(f) {
                    self.excluded.push(f.clone());
                }
            }
            let keep: Vec<DatanodeId> = pipeline
                .iter()
                .filter(|n| !self.excluded.contains(n))
                .cloned()
                .collect();
            tracing::info!(
                "block {} attempt {attempt}: rebuilding the pipeline without {:?}",
                lb.block.id,
                failed_nodes
            );
            let r = self
                .c
                .meta(MetaRequest::UpdatePipeline {
                    path: self.path.clone(),
                    block: lb.block.id,
                    keep,
                    excluded: self.excluded.clone(),
                })
                .await?;
            let MetaResponse::Block(nlb) = r else {
                return Err(FsError::Internal(format!("unexpected reply {r:?}")));
            };
            let w = self.connect(&nlb).await;
            self.cur = Some((nlb, w));
            self.sent = 0;
            if let Some((_, Some(w))) = &mut self.cur {
                let mut broke = false;
                while self.buf.len() - self.sent >= CHUNK {
                    if w.send_chunk(&self.buf[self.sent..self.sent + CHUNK])
                        .await
                        .is_err()
                    {
                        broke = true;
                        break;
                    }
                    self.sent += CHUNK;
                }
                if broke {
                    if let Some((_, w)) = &mut self.cur {
                        *w = None;
                    }
                }
            }
        }
        Err(FsError::Unavailable(format!(
            "could not write a block of {} to any datanode pipeline after {MAX_BLOCK_ATTEMPTS} attempts",
            self.path
        )))
    }

    /// Sends the tail and the digest; returns the nodes that stored the
    /// block and those that reported a failure.
    async fn finish_pipeline(
        &mut self,
        mut w: BlockWriter,
        len: u64,
        sha256: [u8; 32],
    ) -> Result<(Vec<DatanodeId>, Vec<DatanodeId>), FsError> {
        while self.sent < self.buf.len() {
            let end = (self.sent + CHUNK).min(self.buf.len());
            w.send_chunk(&self.buf[self.sent..end]).await?;
            self.sent = end;
        }
        let ack = w.finish(Finish { len, sha256 }).await?;
        for s in &ack.statuses {
            if let Err(e) = &s.result {
                tracing::info!("datanode {} failed the block: {e}", s.node);
            }
        }
        let (ok, failed): (Vec<_>, Vec<_>) =
            ack.statuses.into_iter().partition(|s| s.result.is_ok());
        Ok((
            ok.into_iter().map(|s| s.node).collect(),
            failed
                .into_iter()
                // A refused (expired) block token is not the node's fault:
                // the rebuilt pipeline comes with a fresh token.
                .filter(|s| !matches!(s.result, Err(FsError::Unauthenticated(_))))
                .map(|s| s.node)
                .collect(),
        ))
    }

    /// Completes the file: the last block is committed and the lease released.
    pub async fn close(mut self) -> Result<u64, FsError> {
        if !self.buf.is_empty() {
            self.end_block().await?;
        }
        let last = self.previous.take();
        self.c
            .meta(MetaRequest::Complete {
                path: self.path.clone(),
                last,
            })
            .await?;
        Ok(self.written)
    }
}

/// Reads `[offset, offset+len)` of `path` into `out`, block by block, from
/// the best replica; a replica that fails or returns a bad checksum is
/// reported and the read continues from the next one where it stopped.
pub async fn read_range(
    c: &MetaClient,
    path: &str,
    offset: u64,
    len: u64,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<u64, FsError> {
    let lbs = c.block_locations(path, offset, len).await?;
    let end = offset.saturating_add(len).min(lbs.file_length);
    let mut total = 0u64;
    for lb in &lbs.blocks {
        let bstart = lb.offset;
        let bend = lb.offset + lb.block.len;
        let from = offset.max(bstart);
        let to = end.min(bend);
        if from >= to {
            continue;
        }
        let mut done = 0u64;
        let want = to - from;
        let mut last_err = None;
        let mut token = lb.token.clone();
        let mut refreshed = false;
        let mut locs = lb.locations.iter();
        let mut retry = None;
        while let Some(loc) = retry.take().or_else(|| locs.next()) {
            let mut counted = Counting {
                inner: &mut *out,
                n: 0,
            };
            let r = read_block_with_token(
                &c.config().connector,
                &loc.addr,
                c.config().key.as_ref(),
                token.clone(),
                (lb.block.id, lb.block.gen),
                (from - bstart + done, want - done),
                &mut counted,
            )
            .await;
            // Bytes already passed on are not read again from the next replica.
            done += counted.n;
            if let (Err(FsError::Unauthenticated(why)), false) = (&r, refreshed) {
                // The token expired (a long read) or the datanode refused it:
                // ask for the block's locations again, once, and retry.
                tracing::info!("block {}: {why}; refreshing its token", lb.block.id);
                refreshed = true;
                if let Ok(fresh) = c.block_locations(path, bstart, 1).await {
                    if let Some(nb) = fresh.blocks.iter().find(|b| b.block.id == lb.block.id) {
                        token = nb.token.clone();
                        retry = Some(loc);
                        continue;
                    }
                }
            }
            match r {
                Ok(_) => {
                    if done >= want {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(fault = "peer", peer = %loc.addr, "block {} from {}: {e}", lb.block.id, loc.addr);
                    if matches!(e, FsError::ChecksumMismatch { .. }) {
                        c.report_bad_replica(lb.block.id, &loc.id).await;
                    }
                    last_err = Some(e);
                }
            }
        }
        if done < want {
            return Err(last_err.unwrap_or_else(|| {
                FsError::Unavailable(format!(
                    "could not obtain block {} of {path}: no live replica",
                    lb.block.id
                ))
            }));
        }
        total += done;
    }
    Ok(total)
}

/// Counts the bytes written through it.
struct Counting<'a, W> {
    inner: &'a mut W,
    n: u64,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Counting<'_, W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut *this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            this.n += *n as u64;
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}
