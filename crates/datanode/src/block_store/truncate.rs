//! Block recovery after a truncate: a local replica's first bytes become a
//! new replica (the same block at a new generation, or a new block when a
//! snapshot keeps the old one), published like any received replica.
//!
//! Every chunk copied is checked against the CRC32C stored with it, the
//! chunk the cut falls in included (whole, before it is cut), so a corrupt
//! source never becomes a "good" new generation: the source is quarantined
//! instead and the command fails.

use super::BlockStore;
use std::sync::Arc;
use tdfs_proto::meta::{BlockInfo, ReplicaReport};
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::{Finish, CHUNK};

/// What a truncate command did on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Truncated {
    /// The new replica is stored (now, or by an earlier run of the command).
    Stored(ReplicaReport),
    /// The source's stored data failed its checksum: it is quarantined.
    Corrupt { gen: u64 },
}

impl BlockStore {
    /// Writes the first `len` bytes of replica `source` as `target`/`gen`.
    pub fn truncate_copy(
        self: &Arc<Self>,
        source: &BlockInfo,
        target: BlockId,
        gen: u64,
        len: u64,
    ) -> Result<Truncated, FsError> {
        if let Some(r) = self.get(target) {
            if r.gen == gen && r.len == len {
                return Ok(Truncated::Stored(r));
            }
        }
        let reader = self.open_read(source.id, source.gen)?;
        if len > reader.len() {
            return Err(FsError::InvalidArgument(format!(
                "cannot truncate block {} (gen {}, {} bytes) to {len} bytes",
                source.id,
                source.gen,
                reader.len()
            )));
        }
        let mut writer = self.begin_write(target, gen, len)?;
        let mut buf = vec![0u8; CHUNK];
        let mut sha = sha2::Sha256::default();
        let chunks = len.div_ceil(CHUNK as u64);
        for i in 0..chunks {
            let (n, stored) = reader.read_chunk(i, &mut buf)?;
            if crc32c::crc32c(&buf[..n]) != stored {
                drop(writer);
                drop(reader);
                let why = format!("chunk {i} failed its CRC32C during a truncate");
                self.quarantine(source.id, source.gen, &why)?;
                return Ok(Truncated::Corrupt { gen: source.gen });
            }
            let keep = (len - i * CHUNK as u64).min(n as u64) as usize;
            let data = &buf[..keep];
            sha2::Digest::update(&mut sha, data);
            writer.write_chunk(data, crc32c::crc32c(data))?;
        }
        drop(reader);
        let sha256: [u8; 32] = sha2::Digest::finalize(sha).into();
        let report = writer.finish(Finish { len, sha256 })?;
        Ok(Truncated::Stored(report))
    }
}
