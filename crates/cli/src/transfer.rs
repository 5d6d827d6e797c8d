//! `-put`, `-get`, `-cat`, `-appendToFile`, `-checksum`, `-df`: the data
//! commands of `tdfs dfs`, with a progress bar on a terminal.

use crate::progress::Progress;
use anyhow::{anyhow, bail, Context};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tdfs_client::{read_range, CreateOptions, FileWriter, MetaClient};
use tdfs_proto::meta::{AdminRequest, AdminResponse, MetaRequest};
use tdfs_proto::{path, FsError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Bytes read from a local file per call.
const READ_BUF: usize = 1 << 20;

/// Options of `-put`.
pub struct PutOpts {
    pub overwrite: bool,
    pub preserve: bool,
    pub replication: Option<u16>,
    pub block_size: Option<u64>,
}

/// Copies `src` (a reader) into a new file at `dst`, through a temporary
/// `._COPYING_` name so the file appears complete or not at all.
async fn put_stream(
    c: &Arc<MetaClient>,
    src: &mut (impl AsyncRead + Unpin),
    dst: &str,
    o: &PutOpts,
    size: Option<u64>,
    label: &str,
) -> anyhow::Result<u64> {
    let tmp = format!("{dst}._COPYING_");
    if !o.overwrite && c.exists(dst).await?.is_some() {
        bail!("put: `{dst}': File exists");
    }
    let mut w = FileWriter::create(
        c.clone(),
        &tmp,
        CreateOptions {
            overwrite: true,
            replication: o.replication,
            block_size: o.block_size,
            mode: None,
            create_parents: false,
        },
    )
    .await
    .map_err(|e| put_err(dst, e))?;
    let mut buf = vec![0u8; READ_BUF];
    let mut bar = Progress::new(label, size);
    loop {
        let n = src
            .read(&mut buf)
            .await
            .context("reading the local input")?;
        if n == 0 {
            break;
        }
        w.write(&buf[..n]).await.map_err(|e| put_err(dst, e))?;
        bar.advance(n as u64);
    }
    let total = w.close().await.map_err(|e| put_err(dst, e))?;
    bar.finish();
    if o.overwrite {
        match c.delete(dst, false).await {
            Ok(()) | Err(FsError::FileNotFound(_)) => {}
            Err(e) => return Err(put_err(dst, e)),
        }
    }
    c.meta(MetaRequest::Rename {
        src: tmp,
        dst: dst.to_string(),
        into_dir: false,
    })
    .await
    .map_err(|e| put_err(dst, e))?;
    Ok(total)
}

fn put_err(dst: &str, e: FsError) -> anyhow::Error {
    match e {
        FsError::FileNotFound(p) => anyhow!("put: `{dst}': No such file or directory ({p})"),
        other => anyhow!("put: {other}"),
    }
}

/// `-put [-f] [-p] LOCAL... REMOTE` (`-` reads stdin).
pub async fn put(
    c: &Arc<MetaClient>,
    locals: &[String],
    remote: &str,
    o: PutOpts,
) -> anyhow::Result<()> {
    let remote = path::normalize(remote).map_err(|e| anyhow!("put: {e}"))?;
    let remote_is_dir = matches!(c.exists(&remote).await?, Some(s) if s.is_dir());
    if locals.len() > 1 && !remote_is_dir {
        bail!("put: `{remote}': destination must be an existing directory for several sources");
    }
    for l in locals {
        let dst = if remote_is_dir {
            let name = if l == "-" {
                bail!("put: reading stdin needs a file name as the destination")
            } else {
                Path::new(l)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .with_context(|| format!("put: bad local name {l:?}"))?
                    .to_string()
            };
            path::child(&remote, &name)
        } else {
            remote.clone()
        };
        if l == "-" {
            let mut stdin = tokio::io::stdin();
            put_stream(c, &mut stdin, &dst, &o, None, "stdin").await?;
            continue;
        }
        let meta = std::fs::metadata(l)
            .with_context(|| format!("put: `{l}': No such file or directory"))?;
        if meta.is_dir() {
            bail!("put: `{l}': is a directory (directory upload is not supported)");
        }
        let mut f = tokio::fs::File::open(l)
            .await
            .with_context(|| format!("put: cannot open `{l}'"))?;
        put_stream(c, &mut f, &dst, &o, Some(meta.len()), l).await?;
        if o.preserve {
            use std::os::unix::fs::MetadataExt;
            let mtime = (meta.mtime().max(0) as u64) * 1000;
            let atime = (meta.atime().max(0) as u64) * 1000;
            c.meta(MetaRequest::SetTimes {
                path: dst.clone(),
                mtime: Some(mtime),
                atime: Some(atime),
            })
            .await?;
            c.meta(MetaRequest::SetPermission {
                path: dst.clone(),
                mode: (meta.mode() & 0o1777) as u16,
            })
            .await?;
        }
    }
    Ok(())
}

/// `-get REMOTE LOCAL`.
pub async fn get(c: &MetaClient, remote: &str, local: &str) -> anyhow::Result<()> {
    let st = c
        .stat(remote)
        .await
        .map_err(|e| crate::dfs::cmd_err("get", remote, e))?;
    if st.is_dir() {
        bail!("get: `{remote}': is a directory");
    }
    let mut dst = PathBuf::from(local);
    if dst.is_dir() {
        dst.push(if st.name.is_empty() { "root" } else { &st.name });
    }
    let tmp = dst.with_extension("_COPYING_");
    let file = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("get: cannot create {}", tmp.display()))?;
    let mut out = Progressed::new(
        tokio::io::BufWriter::with_capacity(1 << 20, file),
        remote,
        Some(st.length),
    );
    let r = read_range(c, remote, 0, st.length, &mut out).await;
    if let Err(e) = r {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow!("get: {e}"));
    }
    out.inner.flush().await?;
    out.bar.finish();
    std::fs::rename(&tmp, &dst).with_context(|| format!("get: cannot create {}", dst.display()))?;
    Ok(())
}

/// `-cat REMOTE...`.
pub async fn cat(c: &MetaClient, paths: &[String]) -> anyhow::Result<()> {
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, tokio::io::stdout());
    for p in paths {
        let st = c
            .stat(p)
            .await
            .map_err(|e| crate::dfs::cmd_err("cat", p, e))?;
        if st.is_dir() {
            bail!("cat: `{p}': Is a directory");
        }
        read_range(c, p, 0, st.length, &mut out)
            .await
            .map_err(|e| anyhow!("cat: {e}"))?;
    }
    out.flush().await?;
    Ok(())
}

/// `-appendToFile LOCAL... REMOTE`: creates REMOTE if needed.
pub async fn append(c: &Arc<MetaClient>, locals: &[String], remote: &str) -> anyhow::Result<()> {
    let mut w = match c.exists(remote).await? {
        Some(s) if s.is_dir() => bail!("appendToFile: `{remote}': Is a directory"),
        Some(_) => FileWriter::append(c.clone(), remote).await?,
        None => FileWriter::create(c.clone(), remote, CreateOptions::default()).await?,
    };
    let mut buf = vec![0u8; READ_BUF];
    for l in locals {
        let mut src: Box<dyn AsyncRead + Unpin + Send> = if l == "-" {
            Box::new(tokio::io::stdin())
        } else {
            Box::new(
                tokio::fs::File::open(l)
                    .await
                    .with_context(|| format!("appendToFile: `{l}': No such file or directory"))?,
            )
        };
        loop {
            let n = src.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).await?;
        }
    }
    w.close().await?;
    Ok(())
}

/// `-checksum`: the file's composite CRC32C as HDFS prints it with
/// `dfs.checksum.combine.mode=COMPOSITE_CRC` (`PATH\tCOMPOSITE-CRC32C\tHEX`,
/// the CRC32C of the file's bytes, whatever its block size), computed by
/// the datanodes from their stored chunk CRCs. With `sha256`, tdfs's own
/// SHA-256 over the blocks' SHA-256 digests instead.
pub async fn checksum(c: &MetaClient, p: &str, sha256: bool) -> anyhow::Result<String> {
    let st = c
        .stat(p)
        .await
        .map_err(|e| crate::dfs::cmd_err("checksum", p, e))?;
    if st.is_dir() {
        bail!("checksum: `{p}': Is a directory");
    }
    if !sha256 {
        let sum = tdfs_client::file_checksum(c, p)
            .await
            .map_err(|e| crate::dfs::cmd_err("checksum", p, e))?;
        let alg = tdfs_client::FileChecksum::COMPOSITE;
        return Ok(format!("{p}\t{alg}\t{:08x}", sum.crc32c));
    }
    let lbs = c.block_locations(p, 0, st.length.max(1)).await?;
    let mut h = Sha256::new();
    for b in &lbs.blocks {
        let d = b
            .block
            .sha256
            .with_context(|| format!("checksum: block {} of {p} is not complete", b.block.id))?;
        h.update(d);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{p}\tSHA256-of-BLOCK-SHA256\t{hex}"))
}

/// `-df`: capacity of the whole file system.
pub async fn df(c: &MetaClient) -> anyhow::Result<()> {
    let AdminResponse::Report(r) = c.admin(AdminRequest::Report).await? else {
        bail!("df: unexpected reply");
    };
    let cap: u64 = r
        .datanodes
        .iter()
        .filter(|d| d.state != "dead")
        .map(|d| d.capacity)
        .sum();
    let used: u64 = r
        .datanodes
        .iter()
        .filter(|d| d.state != "dead")
        .map(|d| d.used)
        .sum();
    let avail: u64 = r
        .datanodes
        .iter()
        .filter(|d| d.state != "dead")
        .map(|d| d.remaining)
        .sum();
    let pct = if cap == 0 {
        0.0
    } else {
        used as f64 * 100.0 / cap as f64
    };
    println!(
        "{:<30} {:>15} {:>15} {:>15} {:>5}",
        "Filesystem", "Size", "Used", "Available", "Use%"
    );
    println!(
        "{:<30} {:>15} {:>15} {:>15} {:>4.0}%",
        format!("tdfs://{}", c.config().meta[0]),
        cap,
        used,
        avail,
        pct
    );
    Ok(())
}

/// A writer that advances a progress bar.
struct Progressed<W> {
    inner: W,
    bar: Progress,
}

impl<W> Progressed<W> {
    fn new(inner: W, label: &str, total: Option<u64>) -> Self {
        Progressed {
            inner,
            bar: Progress::new(label, total),
        }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Progressed<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let r = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            this.bar.advance(*n as u64);
        }
        r
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
