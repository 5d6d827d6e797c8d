//! Hostile or broken connections to a metadata node's RPC port: garbage
//! instead of a handshake, absurd frame lengths, undecodable frames and
//! stalled peers. Each is cut off (or left to time out) without a large
//! allocation, and well-behaved clients on other connections keep being
//! served throughout.

use std::time::{Duration, Instant};
use tdfs_proto::codec::{decode, MAX_FRAME_LEN};
use tdfs_proto::meta::{Request, Response};
use tdfs_proto::FsError;
use tdfs_rpc::frame::read_frame;
use tdfs_rpc::handshake::HANDSHAKE_TIMEOUT;
use tdfs_rpc::{Channel, Reply};
use tdfs_testkit::cluster::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Ping on a normal client is answered.
async fn assert_served(c: &Client, id: u64) {
    let r = c.call(Request::Ping, Duration::from_secs(2)).await;
    assert!(
        matches!(r, Ok(Response::Pong { id: got }) if got == id),
        "ping: {r:?}"
    );
}

/// Waits until the server closes `s` (read gives EOF or an error), ignoring
/// anything it sends first. Returns how long that took.
async fn closed_within(s: &mut TcpStream, within: Duration, what: &str) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((start + within).into(), s.read(&mut buf)).await {
            Err(_) => panic!("{what}: connection still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// A raw connection that completed the handshake as a keyless client.
async fn handshaken(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    tdfs_rpc::handshake::client(&mut s, Channel::Rpc, None)
        .await
        .unwrap();
    s
}

/// Reads the server's error reply on a raw connection.
async fn error_reply(s: &mut TcpStream) -> FsError {
    let body = tokio::time::timeout(Duration::from_secs(5), read_frame(s, MAX_FRAME_LEN))
        .await
        .expect("no reply within 5 s")
        .expect("reading the reply")
        .expect("connection closed without a reply");
    let reply: Reply<Response> = decode(&body).unwrap();
    match reply.result {
        Err(e) => e,
        Ok(r) => panic!("expected an error, got {r:?}"),
    }
}

/// Peak virtual memory of this process, in KiB.
fn vm_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmPeak:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmPeak in /proc/self/status")
}

fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_connections_are_cut_off_and_others_are_served() {
    let cluster = Cluster::start(1).await;
    cluster.wait_leader(&[1], Duration::from_secs(10)).await;
    let addr = cluster.addrs[&1].clone();
    let good = connect(&addr).await;
    assert_served(&good, 1).await;

    // A peer that stalls half-way through its hello is cut off by the
    // handshake timeout; checked at the end, running meanwhile.
    let stalled_hello = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.write_all(&[0, 0]).await.unwrap();
            closed_within(
                &mut s,
                HANDSHAKE_TIMEOUT + Duration::from_secs(3),
                "stalled handshake",
            )
            .await
        })
    };

    // (a) Garbage instead of a handshake: the server hangs up at once.
    let mut garbage: Vec<(&str, Vec<u8>)> = vec![
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a hello with a bad magic", {
            let mut f = 24u32.to_be_bytes().to_vec();
            f.extend(noise(7, 24));
            f
        }),
        ("zero-length frames", vec![0; 16]),
    ];
    for seed in 1..=5 {
        garbage.push(("random bytes", noise(seed * 7919, 64 + seed as usize * 100)));
    }
    for (what, bytes) in &garbage {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        // The server may hang up before it has read everything.
        let _ = s.write_all(bytes).await;
        let took = closed_within(&mut s, Duration::from_secs(2), what).await;
        assert!(
            took < HANDSHAKE_TIMEOUT,
            "{what}: closed only by the timeout"
        );
        assert_served(&good, 1).await;
    }

    // (b) A valid handshake, then frames announcing absurd lengths: an
    // error reply, then the connection is closed, and nothing of that size
    // is allocated.
    let peak_before = vm_peak_kib();
    for len in [u32::MAX, 0x8000_0000, (MAX_FRAME_LEN + 1) as u32] {
        let mut s = handshaken(&addr).await;
        s.write_all(&len.to_be_bytes()).await.unwrap();
        let e = error_reply(&mut s).await;
        assert!(
            matches!(&e, FsError::Protocol(m) if m.contains("exceeds the limit")),
            "frame of {len}: {e:?}"
        );
        closed_within(&mut s, Duration::from_secs(2), "oversized frame").await;
        assert_served(&good, 1).await;
    }

    // A frame of a sane length whose body is not an envelope: error reply
    // and close. Also an envelope whose Raft payload claims 2^60 bytes in a
    // few: id 1, deadline 0, Request::Raft (3), AppendEntries (0), then a
    // u64 length (0xfd + 8 bytes little-endian).
    let huge_vec = vec![1, 0, 3, 0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10];
    for body in [noise(99, 40), huge_vec] {
        let mut s = handshaken(&addr).await;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        s.write_all(&frame).await.unwrap();
        let e = error_reply(&mut s).await;
        assert!(matches!(e, FsError::Protocol(_)), "{e:?}");
        closed_within(&mut s, Duration::from_secs(2), "undecodable frame").await;
        assert_served(&good, 1).await;
    }
    let grown_mib = (vm_peak_kib() - peak_before) / 1024;
    assert!(
        grown_mib < 1024,
        "peak virtual memory grew by {grown_mib} MiB while refusing huge frames"
    );

    // (c) Header sent, then the body stalls: that connection waits, every
    // other one is served, including new ones and real namespace calls.
    let mut stalled = handshaken(&addr).await;
    stalled.write_all(&1000u32.to_be_bytes()).await.unwrap();
    stalled.write_all(&[0u8; 10]).await.unwrap();
    let mut header_only = handshaken(&addr).await;
    header_only.write_all(&[0, 0]).await.unwrap();
    let until = Instant::now() + Duration::from_secs(1);
    let mut seq = 0;
    let client = client_id();
    while Instant::now() < until {
        assert_served(&good, 1).await;
        let fresh = connect(&addr).await;
        assert_served(&fresh, 1).await;
        seq += 1;
        let r = meta(
            &fresh,
            Some(tdfs_proto::ids::CallId { client, seq }),
            mkdirs(&format!("/m/{seq}"), true),
            Duration::from_secs(2),
        )
        .await;
        assert!(r.is_ok(), "{r:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The stalled connections got no reply in the meantime.
    let mut buf = [0u8; 1];
    for s in [&mut stalled, &mut header_only] {
        let r = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await;
        assert!(r.is_err(), "a stalled connection got {r:?}");
    }
    drop(stalled);
    drop(header_only);

    let took = stalled_hello.await.unwrap();
    assert!(
        took >= HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        "a stalled hello was cut after only {took:?}"
    );
    assert_served(&good, 1).await;
    let fresh = connect(&addr).await;
    assert_served(&fresh, 1).await;
    cluster.shutdown().await;
}
