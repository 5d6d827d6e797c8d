//! Thousands of idle connections against one `tdfs_rpc::serve` server:
//! well-behaved clients are still served, memory stays bounded, connections
//! that never finish their handshake are closed by the handshake timeout,
//! and past `max_connections` new connections are refused rather than
//! queued. (Garbage, absurd frame lengths and stalls mid-frame are covered
//! by crates/meta-raft/tests/t23_malformed_frames.rs.)

use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_proto::FsError;
use tdfs_rpc::handshake::HANDSHAKE_TIMEOUT;
use tdfs_rpc::{serve, Handler, Peer, RpcClient, ServerConfig, Shutdown};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

struct Echo;

/// The tests run one at a time: they count this process's memory and file
/// descriptors.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Handler<u64, u64> for Echo {
    async fn handle(&self, _peer: &Peer, req: u64) -> Result<u64, FsError> {
        Ok(req + 1)
    }
}

async fn start(config: ServerConfig) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, shutdown) = Shutdown::new();
    tokio::spawn(serve::<u64, u64, Echo>(
        listener,
        Arc::new(Echo),
        config,
        shutdown,
    ));
    (addr, tx)
}

async fn assert_served(addr: &str) {
    let c = RpcClient::<u64, u64>::connect(addr, None, Duration::from_secs(5))
        .await
        .expect("a normal client connects");
    let r = c.call(41, Duration::from_secs(5)).await;
    assert!(matches!(r, Ok(42)), "{r:?}");
}

/// A field of /proc/self/status, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// The soft limit on open files, from /proc/self/limits.
fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// How many idle connections to open: 2000, or fewer if the open-files
/// limit would not hold both ends of each (client and server live in this
/// one process) plus some spare.
fn idle_count() -> usize {
    let n = 2000.min(open_files_limit().saturating_sub(256) / 2);
    assert!(n >= 200, "open-files limit too low for this test");
    n
}

/// Whether the server has closed `s` (EOF or an error) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_neither_starve_nor_bloat_the_server() {
    let _serial = SERIAL.lock().await;
    let (addr, stop) = start(ServerConfig::default()).await;
    assert_served(&addr).await;
    let n = idle_count();
    let rss_before = status_kib("VmRSS:");

    // Connections that say nothing at all, opened in one go.
    let mut idle = Vec::with_capacity(n);
    let opened = Instant::now();
    for _ in 0..n {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // While they sit there, normal clients are served, new and old.
    let keeper = RpcClient::<u64, u64>::connect(&addr, None, Duration::from_secs(5))
        .await
        .unwrap();
    for _ in 0..20 {
        assert_served(&addr).await;
        assert!(matches!(
            keeper.call(1, Duration::from_secs(5)).await,
            Ok(2)
        ));
    }
    let rss_with_idle = status_kib("VmRSS:");
    let grown_kib = rss_with_idle.saturating_sub(rss_before);
    // Both ends of every connection live in this process; a few KiB each
    // is expected, the bound is generous.
    assert!(
        grown_kib < 128 * 1024,
        "RSS grew by {grown_kib} KiB for {n} idle connections"
    );
    eprintln!(
        "{n} idle connections: RSS {rss_before} KiB -> {rss_with_idle} KiB (+{} B per connection)",
        grown_kib * 1024 / n as u64
    );

    // None of them finished a handshake, so each is closed once the
    // handshake timeout has passed since it was accepted.
    let wait_until = opened + HANDSHAKE_TIMEOUT + Duration::from_secs(10);
    let mut closed = 0;
    for s in &mut idle {
        let left = wait_until.saturating_duration_since(Instant::now());
        if closed_within(s, left.max(Duration::from_millis(50))).await {
            closed += 1;
        }
    }
    assert_eq!(closed, n, "idle unauthenticated connections left open");
    assert!(
        opened.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(500),
        "closed before the handshake timeout"
    );
    drop(idle);

    // The connection that did handshake is still there and served.
    assert!(matches!(
        keeper.call(5, Duration::from_secs(5)).await,
        Ok(6)
    ));
    assert_served(&addr).await;
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_new_connections_are_refused_until_idle_ones_time_out() {
    let _serial = SERIAL.lock().await;
    let max = 100;
    let config = ServerConfig {
        max_connections: max,
        ..ServerConfig::default()
    };
    let (addr, stop) = start(config).await;
    assert_served(&addr).await;

    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..max {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept them all (each holds a slot while it waits for
    // its hello).
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One more is accepted by the kernel, then dropped by the server at
    // once: refused, not queued.
    let mut extra = TcpStream::connect(&addr).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(2)).await,
        "a connection past max_connections was kept"
    );
    let r = RpcClient::<u64, u64>::connect(&addr, None, Duration::from_secs(2)).await;
    assert!(r.is_err(), "a client got in past max_connections");

    // The idle ones are cut by the handshake timeout, which frees their
    // slots: clients get in again.
    for s in &mut idle {
        let left = (opened + HANDSHAKE_TIMEOUT + Duration::from_secs(10))
            .saturating_duration_since(Instant::now());
        assert!(closed_within(s, left.max(Duration::from_millis(50))).await);
    }
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match RpcClient::<u64, u64>::connect(&addr, None, Duration::from_secs(2)).await {
            Ok(c) => {
                assert!(matches!(c.call(1, Duration::from_secs(5)).await, Ok(2)));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("not served after the idle connections were closed: {e}"),
        }
    }
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_past_the_handshake_cost_little_memory() {
    let _serial = SERIAL.lock().await;
    let (addr, stop) = start(ServerConfig::default()).await;
    assert_served(&addr).await;
    // Each connection here is a client and a server connection in this one
    // process, both with their tasks and buffers.
    let n = idle_count() / 2;
    let rss_before = status_kib("VmRSS:");
    let mut idle = Vec::with_capacity(n);
    for _ in 0..n {
        let c = RpcClient::<u64, u64>::connect(&addr, None, Duration::from_secs(5))
            .await
            .expect("connect");
        idle.push(c);
    }
    assert_served(&addr).await;
    let rss_after = status_kib("VmRSS:");
    let grown_kib = rss_after.saturating_sub(rss_before);
    eprintln!(
        "{n} idle clients: RSS {rss_before} KiB -> {rss_after} KiB (+{} B per connection)",
        grown_kib * 1024 / n as u64
    );
    assert!(
        grown_kib < 256 * 1024,
        "RSS grew by {grown_kib} KiB for {n} idle clients"
    );
    // They all still work.
    for c in idle.iter().step_by(97) {
        assert!(matches!(c.call(7, Duration::from_secs(5)).await, Ok(8)));
    }
    let _ = stop.send(true);
}
