//! The HTTP server's limits over real sockets: a slowloris client is
//! dropped, an oversized header gets 431, an oversized body 413, a
//! connection over the cap 503, and the server keeps serving the others.

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::Router;
use std::time::{Duration, Instant};
use tdfs_http::HttpLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "ok" }))
        .route("/echo", post(|b: Bytes| async move { b.len().to_string() }))
}

/// Starts a server under `limits`; returns its address.
async fn server(limits: HttpLimits) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tdfs_http::spawn_with(l, router(), limits, std::future::pending());
    addr
}

/// Sends `req` on a new connection and reads the whole answer.
async fn exchange(addr: &str, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

async fn assert_serves(addr: &str) {
    let r = exchange(addr, GET).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("ok"), "{r}");
}

#[tokio::test]
async fn a_slowloris_client_is_dropped() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let addr = server(limits).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    // One header byte every 100 ms, never the end of the headers.
    let started = Instant::now();
    let dropped = loop {
        if s.write_all(b"a").await.is_err() {
            break started.elapsed();
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => {} // a 408 before the close
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a client trickling its headers was not dropped"
        );
    };
    println!("slowloris dropped after {dropped:?}");
    assert!(dropped >= Duration::from_millis(400), "{dropped:?}");
    assert_serves(&addr).await;
}

#[tokio::test]
async fn an_oversized_header_gets_431() {
    let limits = HttpLimits {
        max_header_bytes: 16 << 10,
        ..Default::default()
    };
    let addr = server(limits).await;
    let big = "v".repeat(64 << 10);
    let req = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\nconnection: close\r\n\r\n");
    let r = exchange(&addr, req.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{}", &r[..r.len().min(200)]);
    // Too many header lines likewise.
    let many: String = (0..200).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let req = format!("GET / HTTP/1.1\r\nhost: x\r\n{many}connection: close\r\n\r\n");
    let r = exchange(&addr, req.as_bytes()).await;
    assert!(r.starts_with("HTTP/1.1 431"), "{}", &r[..r.len().min(200)]);
    assert_serves(&addr).await;
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let limits = HttpLimits {
        max_body_bytes: 1000,
        ..Default::default()
    };
    let addr = server(limits).await;
    let req =
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 10485760\r\nconnection: close\r\n\r\n";
    let r = exchange(&addr, req).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // A chunked body that grows past the limit is cut there too.
    let mut req = b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(format!("{:x}\r\n{}\r\n", 600, "b".repeat(600)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(&addr, &req).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    // One under the limit is served.
    let r = exchange(
        &addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with("5"), "{r}");
}

#[tokio::test]
async fn connections_over_the_cap_get_503() {
    let limits = HttpLimits {
        max_connections: 2,
        ..Default::default()
    };
    let addr = server(limits).await;
    // Two idle connections hold both slots (each proves it was served).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let r = exchange(&addr, GET).await;
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    // A slot frees when a connection closes: served again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = exchange(&addr, GET).await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that sends its headers and then stalls its body, or trickles it
/// slower than the idle timeout, is cut off and its slot freed (one slot
/// only: the next request is served after the cut); a body that keeps
/// coming within the timeout is read whole however long it takes.
#[tokio::test]
async fn a_stalled_or_trickled_body_is_cut_off_and_frees_its_slot() {
    let limits = HttpLimits {
        max_connections: 1,
        body_idle_timeout: Duration::from_millis(400),
        ..Default::default()
    };
    let addr = server(limits).await;
    let head =
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\nconnection: close\r\n\r\n";
    for gap_ms in [u64::MAX, 700] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(head).await.unwrap();
        s.write_all(b"0123456789").await.unwrap();
        let started = Instant::now();
        // Stall, or send one byte per `gap_ms`, until the server closes.
        let mut answer = Vec::new();
        loop {
            let wait = Duration::from_millis(gap_ms.min(10_000));
            let mut buf = [0u8; 512];
            match tokio::time::timeout(wait, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
                Err(_) => {
                    if s.write_all(b"x").await.is_err() {
                        break;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "a body idle {gap_ms} ms between bytes was not cut off"
            );
        }
        let cut = started.elapsed();
        println!("body with gaps of {gap_ms} ms cut after {cut:?}");
        assert!(cut >= Duration::from_millis(350), "{cut:?}");
        let answer = String::from_utf8_lossy(&answer);
        assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert_serves(&addr).await;
    }
    // Gaps under the timeout: slow, but served.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    for b in b"hello" {
        // The trickle itself (the input under test): bytes 150 ms apart, under the idle timeout.
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    let r = String::from_utf8_lossy(&out);
    assert!(r.starts_with("HTTP/1.1 200") && r.ends_with('5'), "{r}");
}
