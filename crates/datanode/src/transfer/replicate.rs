//! Copying a finalized replica to other datanodes (re-replication and
//! balancer moves), each chunk checked before it leaves.

use super::{join_err, StoreEvent, TransferCtx, READ_BATCH};
use std::sync::Arc;
use tdfs_proto::meta::{BlockInfo, BlockToken, DatanodeAddr};
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::{BlockWriter, Finish, WriteAck, CHUNK};

/// Copies finalized replica `block` (id and gen) to `targets`, a pipeline,
/// as a `Replicate` command asks, showing the leader's `token` for them (on
/// a keyed cluster the targets refuse the copy without it). Every chunk is checked against its stored
/// CRC before it leaves: when this node's own stored data fails a checksum
/// (a chunk CRC, its meta file, a data file shorter than recorded) the
/// replica is quarantined and announced ([`StoreEvent::Quarantined`]) and
/// the copy fails with `ChecksumMismatch` instead of spreading it.
/// Failures downstream (a target down, full or refusing) come back in the
/// acknowledgement or as another error and never touch the source replica.
pub async fn replicate(
    ctx: &TransferCtx,
    block: &BlockInfo,
    targets: &[DatanodeAddr],
    token: Option<BlockToken>,
) -> Result<WriteAck, FsError> {
    let store = ctx.store.clone();
    let (id, gen) = (block.id, block.gen);
    let opened = tokio::task::spawn_blocking(move || store.open_read(id, gen))
        .await
        .map_err(join_err)?;
    let reader = match opened {
        Ok(r) => Arc::new(r),
        Err(e @ FsError::ChecksumMismatch { .. }) => {
            return Err(source_corrupt(ctx, id, gen, e).await)
        }
        Err(e) => return Err(e),
    };
    let info = BlockInfo {
        id,
        gen,
        len: reader.len(),
        sha256: Some(reader.sha256()),
    };
    let mut bw =
        BlockWriter::open_with_token(&ctx.connector, targets, info, ctx.key.as_ref(), token)
            .await?;
    let chunks = reader.chunks();
    let mut buf = vec![0u8; READ_BATCH as usize * CHUNK];
    let mut next = 0u64;
    'send: while next < chunks {
        let count = (chunks - next).min(READ_BATCH);
        let rd = reader.clone();
        let (b, got) = tokio::task::spawn_blocking(move || {
            let r = rd.read_chunks(next, count, &mut buf);
            (buf, r)
        })
        .await
        .map_err(join_err)?;
        buf = b;
        let got = match got {
            Ok(n) => n,
            Err(e @ FsError::ChecksumMismatch { .. }) => {
                return Err(source_corrupt(ctx, id, gen, e).await)
            }
            Err(e) => return Err(e),
        };
        for (k, piece) in buf[..got].chunks(CHUNK).enumerate() {
            let i = next + k as u64;
            let crc = reader.chunk_crc(i).unwrap_or_default();
            if crc32c::crc32c(piece) != crc {
                let e = FsError::ChecksumMismatch {
                    block: id,
                    detail: format!("local replica: chunk {i} fails its CRC32C"),
                };
                return Err(source_corrupt(ctx, id, gen, e).await);
            }
            if bw.send_chunk_with_crc(piece, crc).await.is_err() {
                // `finish` returns the pipeline's answer or the failure.
                break 'send;
            }
        }
        next += count;
    }
    bw.finish(Finish {
        len: reader.len(),
        sha256: reader.sha256(),
    })
    .await
}

/// Quarantines this node's replica `id`/`gen`, whose own stored data failed
/// a checksum (`e`) while being copied, announces it, and returns `e`.
async fn source_corrupt(ctx: &TransferCtx, id: BlockId, gen: u64, e: FsError) -> FsError {
    tracing::warn!(fault = "local", "block {id} gen {gen} is corrupt here: {e}");
    let store = ctx.store.clone();
    let why = e.to_string();
    match tokio::task::spawn_blocking(move || store.quarantine(id, gen, &why)).await {
        Ok(Ok(true)) => {
            let _ = ctx.events.send(StoreEvent::Quarantined { id, gen });
        }
        Ok(Ok(false)) => {}
        Ok(Err(q)) => tracing::warn!(fault = "local", "block {id}: cannot quarantine: {q}"),
        Err(j) => tracing::warn!(fault = "local", "block {id}: cannot quarantine: {j}"),
    }
    e
}
