//! Frame authentication on key-proved connections, over real sockets: a
//! byte flipped in a MACed frame, or a frame replayed, by a proxy between
//! client and server is rejected and the connection closed; a caller with
//! the wrong key cannot connect; a caller without the key is not a peer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::FsError;
use tdfs_rpc::{serve, ClusterKey, Handler, Peer, RpcClient, RpcError, ServerConfig, Shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Counter {
    calls: AtomicU64,
}

impl Handler<u64, (u64, bool)> for Counter {
    async fn handle(&self, peer: &Peer, req: u64) -> Result<(u64, bool), FsError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok((req + 1, peer.authenticated))
    }
}

fn key(b: u8) -> ClusterKey {
    ClusterKey::new(vec![b; 32]).unwrap()
}

async fn server(k: Option<ClusterKey>) -> (String, Arc<Counter>, tokio::sync::watch::Sender<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let h = Arc::new(Counter {
        calls: AtomicU64::new(0),
    });
    let (tx, sd) = Shutdown::new();
    let cfg = ServerConfig {
        key: k,
        ..Default::default()
    };
    tokio::spawn(serve::<u64, (u64, bool), _>(l, h.clone(), cfg, sd));
    (addr, h, tx)
}

/// What the proxy does to the client's frames after the handshake (the
/// client's first two frames: hello and proof).
#[derive(Clone, Copy)]
enum Attack {
    None,
    /// Flip one byte of the first call's frame.
    Tamper,
    /// Send the first call's frame twice.
    Replay,
}

/// A TCP proxy to `target` that parses the client-to-server direction into
/// frames and applies `attack`; the other direction is copied as is.
async fn proxy(target: String, attack: Attack) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let server = TcpStream::connect(&target).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
                let _ = cw.shutdown().await;
            });
            tokio::spawn(async move {
                let mut n = 0;
                while let Some(mut f) = read_frame_half(&mut cr).await {
                    n += 1;
                    match (n, attack) {
                        (3, Attack::Tamper) => {
                            // The first byte after the length prefix.
                            f[4] ^= 0x01;
                            sw.write_all(&f).await.ok();
                        }
                        (3, Attack::Replay) => {
                            sw.write_all(&f).await.ok();
                            sw.write_all(&f).await.ok();
                        }
                        _ => {
                            if sw.write_all(&f).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = sw.shutdown().await;
            });
        }
    });
    addr
}

type ReadHalf = tokio::net::tcp::OwnedReadHalf;

async fn read_frame_half(s: &mut ReadHalf) -> Option<Vec<u8>> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
    s.read_exact(&mut body).await.ok()?;
    let mut f = h.to_vec();
    f.extend_from_slice(&body);
    Some(f)
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn peers_with_the_key_talk_and_others_do_not_become_peers() {
    let (addr, h, _sd) = server(Some(key(1))).await;
    let c = RpcClient::<u64, (u64, bool)>::connect(&addr, Some(&key(1)), T)
        .await
        .unwrap();
    assert!(c.is_peer());
    for i in 0..50 {
        assert_eq!(c.call(i, T).await.unwrap(), (i + 1, true));
    }
    // A caller without the key is served, but not as a peer.
    let u = RpcClient::<u64, (u64, bool)>::connect(&addr, None, T)
        .await
        .unwrap();
    assert!(!u.is_peer());
    assert_eq!(u.call(1, T).await.unwrap(), (2, false));
    // The wrong key is refused in the handshake.
    let r = RpcClient::<u64, (u64, bool)>::connect(&addr, Some(&key(2)), T).await;
    assert!(
        matches!(r, Err(RpcError::Remote(FsError::Unauthenticated(_)))),
        "{:?}",
        r.err()
    );
    // A keyed caller refuses a server that cannot prove the key.
    let (open_addr, _, _sd2) = server(None).await;
    let r = RpcClient::<u64, (u64, bool)>::connect(&open_addr, Some(&key(1)), T).await;
    assert!(
        matches!(r, Err(RpcError::Remote(FsError::Unauthenticated(_)))),
        "{:?}",
        r.err()
    );
    assert_eq!(h.calls.load(Ordering::SeqCst), 51);
}

async fn attacked(
    attack: Attack,
    k: Option<ClusterKey>,
) -> (RpcClient<u64, (u64, bool)>, Arc<Counter>) {
    let (addr, h, sd) = server(k.clone()).await;
    std::mem::forget(sd);
    let p = proxy(addr, attack).await;
    let c = RpcClient::<u64, (u64, bool)>::connect(&p.to_string(), k.as_ref(), T)
        .await
        .unwrap();
    (c, h)
}

async fn wait_closed(c: &RpcClient<u64, (u64, bool)>) {
    let deadline = std::time::Instant::now() + T;
    while !c.is_closed() {
        assert!(
            std::time::Instant::now() < deadline,
            "the connection was not closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn proxy_without_attack_passes_calls() {
    let (c, h) = attacked(Attack::None, Some(key(1))).await;
    for i in 0..10 {
        assert_eq!(c.call(i, T).await.unwrap(), (i + 1, true));
    }
    assert_eq!(h.calls.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_tampered_frame_is_rejected_and_the_connection_closed() {
    let (c, h) = attacked(Attack::Tamper, Some(key(1))).await;
    assert!(c.call(41, T).await.is_err());
    wait_closed(&c).await;
    assert!(c.call(1, T).await.is_err());
    assert_eq!(h.calls.load(Ordering::SeqCst), 0, "a tampered call ran");
}

#[tokio::test]
async fn a_replayed_frame_is_rejected_and_the_connection_closed() {
    let (c, h) = attacked(Attack::Replay, Some(key(1))).await;
    // The original may be answered; its replay is not run, and the server
    // closes the connection.
    let _ = c.call(41, T).await;
    wait_closed(&c).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.calls.load(Ordering::SeqCst), 1, "the replayed call ran");
}

#[tokio::test]
async fn without_a_key_the_same_replay_goes_through() {
    // The contrast that shows the proxy works: an open cluster has no MACs.
    let (c, h) = attacked(Attack::Replay, None).await;
    assert_eq!(c.call(41, T).await.unwrap(), (42, true));
    let deadline = std::time::Instant::now() + T;
    while h.calls.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
