//! The second step of OPEN, CREATE and APPEND: the data itself, streamed
//! between the HTTP connection and the datanode pipeline in bounded pieces
//! (a block's worth of buffer at most; never the whole file).

use crate::clients::Clients;
use crate::error::WebError;
use crate::query::{Op, WebRequest};
use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tdfs_client::{read_range, CreateOptions, FileWriter};
use tdfs_proto::FsError;
use tokio_util::io::ReaderStream;

/// Bytes moved through the data endpoints, for `/metrics`.
#[derive(Default, Debug)]
pub struct DataCounters {
    pub bytes_written: AtomicU64,
    pub bytes_read: AtomicU64,
}

/// Serves OPEN, CREATE or APPEND with `body` as the upload.
pub async fn serve(
    clients: &Clients,
    counters: &Arc<DataCounters>,
    req: WebRequest,
    body: Body,
) -> Result<Response, WebError> {
    match req.op {
        Op::Open => open(clients, counters, req).await,
        Op::Create => create(clients, counters, req, body).await,
        Op::Append => append(clients, counters, req, body).await,
        other => Err(WebError::illegal(format!(
            "{} is not a data operation",
            other.name()
        ))),
    }
}

async fn open(
    clients: &Clients,
    counters: &Arc<DataCounters>,
    req: WebRequest,
) -> Result<Response, WebError> {
    let c = clients.for_user(req.params.user())?;
    let st = c.stat(&req.path).await?;
    if st.is_dir() {
        return Err(
            FsError::FileNotFound(format!("{} (is a directory, not a file)", req.path)).into(),
        );
    }
    let offset = req.params.num("offset", 10)?.unwrap_or(0);
    if offset > st.length {
        return Err(WebError {
            status: 403,
            exception: "IOException",
            message: format!("Offset={offset} out of the range [0, {}]", st.length),
        });
    }
    let len = req
        .params
        .num("length", 10)?
        .unwrap_or(u64::MAX)
        .min(st.length - offset);
    let (mut tx, rx) = tokio::io::duplex(256 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let path = req.path.clone();
    let counters2 = counters.clone();
    tokio::spawn(async move {
        let r = read_range(&c, &path, offset, len, &mut tx).await;
        if let Ok(n) = &r {
            counters2.bytes_read.fetch_add(*n, Ordering::Relaxed);
        }
        drop(tx);
        let _ = done_tx.send(r);
    });
    // After the data, the reader's outcome: an error aborts the response
    // (the client sees a broken transfer, never a silently short file).
    let tail = futures_util::stream::once(async move {
        match done_rx.await {
            Ok(Ok(n)) if n == len => None,
            Ok(Ok(n)) => Some(Err(std::io::Error::other(format!(
                "short read: {n} of {len} bytes"
            )))),
            Ok(Err(e)) => Some(Err(std::io::Error::other(e.to_string()))),
            Err(_) => Some(Err(std::io::Error::other("reader task failed"))),
        }
    })
    .filter_map(futures_util::future::ready);
    let stream = ReaderStream::with_capacity(rx, 64 * 1024).chain(tail);
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Ok(r)
}

/// Copies the request body into `w` and completes the file.
async fn upload(mut w: FileWriter, body: Body, counters: &DataCounters) -> Result<u64, WebError> {
    let mut s = body.into_data_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|e| WebError {
            status: 400,
            exception: "IOException",
            message: format!("upload interrupted: {e}"),
        })?;
        w.write(&chunk).await?;
        counters
            .bytes_written
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    Ok(w.close().await?)
}

async fn create(
    clients: &Clients,
    counters: &DataCounters,
    req: WebRequest,
    body: Body,
) -> Result<Response, WebError> {
    let c = clients.for_user(req.params.user())?;
    let block_size = match req.params.num("blocksize", 10)? {
        Some(0) => None,
        b => b,
    };
    let o = CreateOptions {
        overwrite: req.params.bool("overwrite", false)?,
        replication: req.params.replication()?,
        block_size,
        // Final, as for MKDIRS: the client applied its umask.
        mode: req
            .params
            .permission()?
            .map(|m| m | tdfs_proto::perm::AS_GIVEN),
        create_parents: true,
    };
    let w = FileWriter::create(c, &req.path, o).await?;
    upload(w, body, counters).await?;
    let mut r = StatusCode::CREATED.into_response();
    let loc = format!("webhdfs://{}", crate::query::percent_encode_path(&req.path));
    if let Ok(v) = HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn append(
    clients: &Clients,
    counters: &DataCounters,
    req: WebRequest,
    body: Body,
) -> Result<Response, WebError> {
    let c = clients.for_user(req.params.user())?;
    let w = FileWriter::append(c, &req.path).await?;
    upload(w, body, counters).await?;
    Ok(StatusCode::OK.into_response())
}
