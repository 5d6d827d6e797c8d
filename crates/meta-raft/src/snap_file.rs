//! [`SnapFile`]: openraft's `SnapshotData`, a snapshot file on the
//! [`Disk`] seam rather than bytes in memory.
//!
//! openraft 0.9 sends a snapshot in chunks (`snapshot_max_chunk_size`)
//! read from it with `AsyncRead`/`AsyncSeek`, and a follower writes the
//! chunks it receives into the `SnapshotData` that
//! `begin_receiving_snapshot` gave it (`AsyncWrite`/`AsyncSeek`), calls
//! `shutdown` after the last one and hands it to `install_snapshot`. So:
//!
//! - a snapshot being sent is the snapshot file, opened for reading;
//! - a snapshot being received is a temporary file in the state machine's
//!   directory. `shutdown` makes it durable and then checks and decodes
//!   the whole file on a blocking thread (magic, version, the metadata's
//!   checksum, every namespace chunk's checksum). A damaged file fails
//!   `shutdown` with an error naming it: openraft then answers the leader
//!   with that error before anything reaches the state machine, so the
//!   node keeps its state and goes on. A good one keeps the decoded
//!   namespace for `install_snapshot`, which renames the file into place;
//!   a received file that is never installed is removed when dropped.
//!
//! Reads and writes are positional calls on the file made in `poll_*`
//! (each at most one chunk, 4 MiB); the long steps — fsync and decoding —
//! run on blocking threads.

use crate::snapshot::{parse_file, SnapshotFileError};
use crate::types::SnapshotMeta;
use std::future::Future;
use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tdfs_disk::{Disk, DiskFile};
use tdfs_namespace::Namespace;
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;

/// A snapshot that was received, checked and decoded.
pub struct Received {
    pub meta: SnapshotMeta,
    pub ns: Namespace,
}

type Check = JoinHandle<Result<Received, SnapshotFileError>>;

/// What a file being received still owes.
struct Receiving {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    check: Option<Check>,
    received: Option<Received>,
    /// Renamed into place: no longer removed on drop.
    kept: bool,
}

/// A snapshot file being sent or received.
pub struct SnapFile {
    file: Arc<dyn DiskFile>,
    pos: u64,
    recv: Option<Receiving>,
}

impl std::fmt::Debug for SnapFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapFile")
            .field("pos", &self.pos)
            .field("receiving", &self.recv.as_ref().map(|r| &r.path))
            .finish()
    }
}

impl SnapFile {
    /// An open snapshot file, to be read (sent).
    pub fn reading(file: Box<dyn DiskFile>) -> Self {
        SnapFile {
            file: file.into(),
            pos: 0,
            recv: None,
        }
    }

    /// A new, empty file at `path` to receive a snapshot into.
    pub fn receiving(disk: Arc<dyn Disk>, path: PathBuf) -> io::Result<Self> {
        let file = disk.open(&path, tdfs_disk::Open::Truncate)?;
        Ok(SnapFile {
            file: file.into(),
            pos: 0,
            recv: Some(Receiving {
                disk,
                path,
                check: None,
                received: None,
                kept: false,
            }),
        })
    }

    /// A copy of this file as a file being received at `path`, for
    /// installing a snapshot that was not received (openraft's storage
    /// suite installs built ones). Blocking.
    pub fn copy_to_receiving(&self, disk: Arc<dyn Disk>, path: PathBuf) -> io::Result<SnapFile> {
        let to = SnapFile::receiving(disk, path)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            let n = self.file.read_at(&mut buf, at)?;
            if n == 0 {
                return Ok(to);
            }
            to.file.write_all_at(&buf[..n], at)?;
            at += n as u64;
        }
    }

    /// The temporary file a received snapshot is in.
    pub fn received_path(&self) -> Option<&Path> {
        self.recv.as_ref().map(|r| r.path.as_path())
    }

    /// The decoded snapshot, once `shutdown` checked it; else checks and
    /// decodes it now (on a blocking thread).
    pub async fn take_received(&mut self) -> Result<Received, SnapshotFileError> {
        let Some(r) = self.recv.as_mut() else {
            return Err(SnapshotFileError::io(
                Path::new("snapshot"),
                io::Error::other("not a received snapshot"),
            ));
        };
        if let Some(done) = r.received.take() {
            return Ok(done);
        }
        let check = match r.check.take() {
            Some(c) => c,
            None => spawn_check(self.file.clone(), r.path.clone()),
        };
        check
            .await
            .map_err(|e| SnapshotFileError::io(&r.path, io::Error::other(e)))?
    }

    /// Marks the received file as renamed into place (kept on drop).
    pub fn keep(&mut self) {
        if let Some(r) = self.recv.as_mut() {
            r.kept = true;
        }
    }
}

impl Drop for SnapFile {
    fn drop(&mut self) {
        if let Some(r) = self.recv.as_mut() {
            if let Some(c) = r.check.take() {
                c.abort();
            }
            if !r.kept {
                if let Err(e) = r.disk.remove_file(&r.path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(fault = "local", "cannot remove {}: {e}", r.path.display());
                    }
                }
            }
        }
    }
}

fn spawn_check(file: Arc<dyn DiskFile>, path: PathBuf) -> Check {
    tokio::task::spawn_blocking(move || {
        file.sync_all()
            .map_err(|e| SnapshotFileError::io(&path, e))?;
        let (meta, ns) = parse_file(file.as_ref(), &path)?;
        Ok(Received { meta, ns })
    })
}

impl AsyncRead for SnapFile {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.file.read_at(buf.initialize_unfilled(), this.pos)?;
        buf.advance(n);
        this.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SnapFile {
    fn start_seek(self: Pin<&mut Self>, to: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        this.pos = tdfs_disk::seek_to(this.pos, || this.file.size(), to)?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

impl AsyncWrite for SnapFile {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.recv.is_none() {
            return Poll::Ready(Err(io::Error::other("a snapshot being sent is read-only")));
        }
        this.file.write_all_at(buf, this.pos)?;
        this.pos += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The last chunk arrived: make the file durable, then check and
    /// decode it. Fails if the snapshot is damaged.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(r) = this.recv.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        if r.received.is_some() {
            return Poll::Ready(Ok(()));
        }
        let check = r
            .check
            .get_or_insert_with(|| spawn_check(this.file.clone(), r.path.clone()));
        let out = ready!(Pin::new(check).poll(cx));
        r.check = None;
        match out {
            Ok(Ok(done)) => {
                r.received = Some(done);
                Poll::Ready(Ok(()))
            }
            Ok(Err(e)) => {
                tracing::error!(
                    fault = "peer",
                    "refused a snapshot received from the leader: {e}; the current state is kept"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the snapshot received is damaged: {e}"),
                )))
            }
            Err(e) => Poll::Ready(Err(io::Error::other(e))),
        }
    }
}
