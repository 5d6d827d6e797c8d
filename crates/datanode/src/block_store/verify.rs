//! Re-verifying a finalized replica against its meta file — every chunk's
//! CRC32C and the SHA-256 of the whole — for the integrity scanner and the
//! leader's `Verify` command, which quarantine what fails
//! ([`BlockStore::check`]).
//!
//! A replica the disk cannot read (EIO, EACCES, a damaged file system) is
//! as good as corrupt and fails too; a shortage that passes (EMFILE,
//! ENOMEM, ...) is an error, and the replica is left alone.

use super::reader::OpenFailure;
use super::{lock_poisoned, BlockStore};
use sha2::{Digest, Sha256};
use std::io;
use tdfs_proto::{BlockId, FsError};
use tdfs_transfer::CHUNK;

/// Bytes read per system call when verifying a replica.
const VERIFY_BATCH: usize = 16 * CHUNK;

/// The outcome of [`BlockStore::check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The replica matches its meta file.
    Good,
    /// It did not, and is now quarantined at this generation (report it).
    Quarantined {
        /// The generation found corrupt.
        gen: u64,
    },
    /// This node holds no finalized replica of the block (any more).
    Gone,
}

/// Errors that say the device cannot give the replica back: the replica is
/// treated as corrupt.
fn is_media_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EACCES | libc::EPERM | libc::EUCLEAN | libc::EBADMSG | libc::ENXIO)
    )
}

/// Why a replica fails verification: `Ok(Some(why))`.
type Verdict = Result<Option<String>, FsError>;

fn io_verdict(e: io::Error, what: &str) -> Verdict {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Ok(Some(format!(
            "{what}: the data file is shorter than its meta file records"
        )))
    } else if is_media_error(&e) {
        Ok(Some(format!("{what}: {e}")))
    } else {
        Err(FsError::Io(format!("{what}: {e}")))
    }
}

impl BlockStore {
    /// Re-reads finalized replica `id` and checks its SHA-256 and every chunk
    /// CRC against its meta file. `Ok(false)`: the replica is corrupt (it is
    /// left where it is; see [`check`](Self::check)). `BlockNotFound` if it
    /// is missing or was replaced meanwhile.
    pub fn verify(&self, id: BlockId) -> Result<bool, FsError> {
        self.verify_detail(id).map(|(_, why)| why.is_none())
    }

    /// Verifies replica `id` and quarantines it when it fails.
    pub fn check(&self, id: BlockId) -> Result<Check, FsError> {
        match self.verify_detail(id) {
            Ok((_, None)) => Ok(Check::Good),
            Ok((gen, Some(why))) => Ok(if self.quarantine(id, gen, &why)? {
                Check::Quarantined { gen }
            } else {
                Check::Gone
            }),
            Err(FsError::BlockNotFound(_)) => Ok(Check::Gone),
            Err(e) => Err(e),
        }
    }

    /// Verifies the current generation of `id`: the generation and, when
    /// it fails, why.
    fn verify_detail(&self, id: BlockId) -> Result<(u64, Option<String>), FsError> {
        let gen = {
            let mut inner = lock_poisoned(&self.inner);
            match inner.replicas.get_mut(&id) {
                Some(r) if !r.deleting => {
                    r.checking += 1;
                    r.gen
                }
                _ => return Err(FsError::BlockNotFound(id)),
            }
        };
        let result = self.verify_gen(id, gen);
        if let Ok(Some(why)) = &result {
            tracing::warn!(
                fault = "local",
                "replica {id} gen {gen} fails verification: {why}"
            );
            self.stats.verify_failures.inc();
        }
        let mut inner = lock_poisoned(&self.inner);
        match inner.replicas.get_mut(&id) {
            Some(r) if r.gen == gen => {
                r.checking = r.checking.saturating_sub(1);
                if r.deleting {
                    Err(FsError::BlockNotFound(id))
                } else {
                    result.map(|why| (gen, why))
                }
            }
            _ => Err(FsError::BlockNotFound(id)),
        }
    }

    fn verify_gen(&self, id: BlockId, gen: u64) -> Verdict {
        let reader = match self.open_replica(id, gen, None) {
            Ok(r) => r,
            Err(OpenFailure::Corrupt(why)) => return Ok(Some(why)),
            Err(OpenFailure::Io(e, what)) => return io_verdict(e, &what),
            Err(f) => return Err(f.into_fs(id)),
        };
        let file_len = match reader.file_len() {
            Ok(n) => n,
            Err(e) => return io_verdict(e, "cannot stat the data file"),
        };
        if file_len != reader.len() {
            return Ok(Some(format!(
                "data file is {file_len} bytes, meta says {}",
                reader.len()
            )));
        }
        let mut buf = vec![0u8; VERIFY_BATCH];
        let mut sha = Sha256::new();
        let per_batch = (VERIFY_BATCH / CHUNK) as u64;
        let mut chunk = 0u64;
        while chunk < reader.chunks() {
            let n = per_batch.min(reader.chunks() - chunk);
            let got = match reader.read_chunks_raw(chunk, n, &mut buf)? {
                Ok(got) => got,
                Err(e) => return io_verdict(e, &format!("reading chunk {chunk}")),
            };
            for (i, piece) in buf[..got].chunks(CHUNK).enumerate() {
                let i = chunk + i as u64;
                if Some(crc32c::crc32c(piece)) != reader.chunk_crc(i) {
                    return Ok(Some(format!("chunk {i} fails its CRC")));
                }
            }
            sha.update(&buf[..got]);
            chunk += n;
        }
        let digest: [u8; 32] = sha.finalize().into();
        if digest != reader.sha256() {
            return Ok(Some("SHA-256 differs from the recorded one".into()));
        }
        Ok(None)
    }
}
