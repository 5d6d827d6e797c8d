//! The HTTP accept loop with limits: a cap on open connections (one more
//! is answered 503 and closed), a bound on a request's header bytes and
//! count (431), a deadline for a request's headers (a slowloris client that
//! trickles them is dropped), a bound on the body of requests that do not
//! stream data (413), and an idle timeout while a body is read (a client
//! that sends its headers and then stalls or trickles the body is cut off,
//! its upload abandoned, its slot freed). Without these a few slow or
//! hostile clients could hold every socket or make the server buffer
//! without end.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits of one HTTP server.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Open connections at most; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Bytes of a request's line and headers (hyper's read buffer; at
    /// least 8192).
    pub max_header_bytes: usize,
    /// Header lines of a request.
    pub max_headers: usize,
    /// How long a client may take to send a request's headers, counted
    /// from the first byte: a slowloris client is dropped after it.
    pub header_timeout: Duration,
    /// Body bytes of a request that does not stream file data (every
    /// request but the data step of CREATE and APPEND): 413 beyond.
    pub max_body_bytes: u64,
    /// How long the server waits for the next bytes of a request body it
    /// is reading (counted only while it waits, not while it works): a
    /// client idle this long is cut off; an upload it was sending is
    /// abandoned (the file is left to lease recovery, as for a dead client).
    pub body_idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 1024,
            max_header_bytes: 64 << 10,
            max_headers: 100,
            header_timeout: Duration::from_secs(10),
            max_body_bytes: 1 << 20,
            body_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves;
/// connections still open then are asked to finish their request.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (max_body, idle) = (limits.max_body_bytes, limits.body_idle_timeout);
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        limit_body(max_body, idle, req, next)
    }));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning.
                    tracing::warn!(fault = "local", "http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::info!(
                "http connection from {peer} refused: {} open",
                limits.max_connections
            );
            tokio::spawn(async move {
                let busy = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
                             content-length: 0\r\nretry-after: 1\r\n\r\n";
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(busy)).await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let limits = limits.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192))
                .max_headers(limits.max_headers);
            let conn = b.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => return log_end(peer, r),
                _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
            }
            log_end(peer, conn.await);
        });
    }
    let _ = stop_tx.send(true);
}

fn log_end(peer: std::net::SocketAddr, r: Result<(), hyper::Error>) {
    if let Err(e) = r {
        tracing::debug!("http connection from {peer} ended: {e}");
    }
}

/// Whether a request streams file data (the second step of CREATE or
/// APPEND, which carries the redirect's `namenoderpcaddress`).
fn streams_data(req: &Request) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("namenoderpcaddress=")))
}

/// Whether the request is a CREATE or APPEND (either step).
fn is_upload_op(req: &Request) -> bool {
    req.uri().query().is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.split_once('=').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("op")
                    && (v.eq_ignore_ascii_case("create") || v.eq_ignore_ascii_case("append"))
            })
        })
    })
}

/// Refuses a declared body over `max` (413) and cuts an undeclared one
/// there, except on requests that stream file data; every body is read
/// under the `idle` timeout.
async fn limit_body(max: u64, idle: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, idle_timeout(body, idle));
    if streams_data(&req) {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Step one of CREATE and APPEND answers with a redirect and never reads
    // the body a client such as `curl -T` sends along (as Hadoop's NameNode);
    // the body is still cut at `max` below, so nothing is buffered beyond it.
    if declared.is_some_and(|n| n > max) && !is_upload_op(&req) {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max} bytes"),
        )
            .into_response();
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, max as usize);
    next.run(Request::from_parts(parts, Body::new(limited)))
        .await
}

/// `body`, failing with `TimedOut` when its next bytes take longer than
/// `idle` to come while the handler waits for them (time the handler spends
/// elsewhere does not count). After the failure the body ends.
fn idle_timeout(body: Body, idle: Duration) -> Body {
    use futures_util::StreamExt;
    let frames = body.into_data_stream();
    let s = futures_util::stream::unfold(Some(frames), move |state| async move {
        let mut frames = state?;
        match tokio::time::timeout(idle, frames.next()).await {
            Ok(Some(Ok(b))) => Some((Ok(b), Some(frames))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => {
                tracing::info!("http request body idle for {idle:?}: cut off");
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("request body idle for {} ms", idle.as_millis()),
                );
                Some((Err(e), None))
            }
        }
    });
    Body::from_stream(s)
}
