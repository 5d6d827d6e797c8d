//! Connection limits over real sockets: on a keyed cluster, callers that
//! did not prove the key (users) share fewer slots than the server has and
//! a per-address cap, so they cannot lock the cluster's own nodes out; the
//! connector's fault filters cut, drop and delay calls per link.

use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::FsError;
use tdfs_rpc::connector::{Action, Rule};
use tdfs_rpc::{
    serve, ClusterKey, Connector, FaultNet, Handler, Peer, RpcClient, Sel, ServerConfig, Shutdown,
};
use tokio::net::TcpListener;

struct Echo;

impl Handler<u64, (u64, bool)> for Echo {
    async fn handle(&self, peer: &Peer, req: u64) -> Result<(u64, bool), FsError> {
        Ok((req, peer.authenticated))
    }
}

fn key() -> ClusterKey {
    ClusterKey::new(vec![7; 32]).unwrap()
}

async fn server(cfg: ServerConfig) -> (String, tokio::sync::watch::Sender<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, sd) = Shutdown::new();
    tokio::spawn(serve::<u64, (u64, bool), _>(l, Arc::new(Echo), cfg, sd));
    (addr, tx)
}

type C = RpcClient<u64, (u64, bool)>;

async fn works(c: &C) -> bool {
    matches!(c.call(1, Duration::from_secs(2)).await, Ok((1, _)))
}

#[tokio::test]
async fn users_cannot_take_the_slots_of_cluster_nodes() {
    let (addr, _stop) = server(ServerConfig {
        key: Some(key()),
        max_connections: 6,
        reserved_for_peers: 2,
        max_per_user_addr: 3,
        ..Default::default()
    })
    .await;
    let t = Duration::from_secs(2);
    // Three user connections from one address: the fourth is refused.
    let mut users = Vec::new();
    for _ in 0..3 {
        let c = C::connect(&addr, None, t).await.unwrap();
        assert!(works(&c).await);
        users.push(c);
    }
    let extra = C::connect(&addr, None, t).await.unwrap();
    assert!(
        !works(&extra).await,
        "a fourth user connection from one address was served"
    );
    // Key-proved nodes still get in, past the users' share.
    let mut peers = Vec::new();
    for _ in 0..3 {
        let c = C::connect(&addr, Some(&key()), t).await.unwrap();
        assert!(works(&c).await);
        peers.push(c);
    }
    // A user slot freed is usable again (once the server saw it close).
    drop(users.pop());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(c) = C::connect(&addr, None, t).await {
            if works(&c).await {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed slot never came back"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn the_connector_cuts_drops_and_delays_per_link() {
    let (addr, _stop) = server(ServerConfig::default()).await;
    let net = FaultNet::new(42);
    net.name(&addr, "server");
    let c = Connector::filtered("client", net.clone());
    let t = Duration::from_millis(300);
    // Cut: connecting fails at once.
    net.cut_one_way(Sel::One("client".into()), Sel::One("server".into()));
    assert!(C::connect_via(&c, &addr, None, t).await.is_err());
    net.heal();
    let conn = C::connect_via(&c, &addr, None, t).await.unwrap();
    assert!(works(&conn).await);
    // Replies dropped: calls time out, the connection stays.
    net.add(Rule {
        from: Sel::One("server".into()),
        to: Sel::One("client".into()),
        action: Action::Drop(1.0),
    });
    assert!(conn.call(5, t).await.is_err());
    net.heal();
    assert!(works(&conn).await);
    // Requests delayed past the call's patience: a timeout, then it works.
    net.add(Rule {
        from: Sel::Any,
        to: Sel::One("server".into()),
        action: Action::Delay(Duration::from_millis(600)),
    });
    assert!(conn.call(6, t).await.is_err());
    net.heal();
    let late = conn.call(7, Duration::from_secs(3)).await;
    assert_eq!(late.ok().map(|r| r.0), Some(7));
}

/// A raw TCP echo server (block streams are plain bytes after connecting).
async fn echo_stream_server() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn round_trip(s: &mut tdfs_rpc::LinkStream, byte: u8) -> std::io::Result<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(&[byte]).await?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await?;
    Ok(b[0])
}

#[tokio::test]
async fn rules_cut_delay_and_reset_open_streams() {
    use tokio::io::AsyncReadExt;
    let addr = echo_stream_server().await;
    let net = FaultNet::new(7);
    net.name(&addr, "dn");
    let c = Connector::filtered("client", net.clone());
    let t = Duration::from_secs(2);
    // A cut the far way refuses a new stream, as for RPC.
    net.cut_one_way(Sel::One("dn".into()), Sel::One("client".into()));
    let e = c.connect_stream(&addr, t).await.unwrap_err();
    assert!(e.to_string().contains("cut"), "{e}");
    net.heal();

    // A reader waiting on an idle stream is woken by a partition at once.
    let mut s = c.connect_stream(&addr, t).await.unwrap();
    assert_eq!(round_trip(&mut s, 1).await.unwrap(), 1);
    let (mut rd, _wr) = s.into_split();
    let waiting = tokio::spawn(async move {
        let mut b = [0u8; 1];
        rd.read_exact(&mut b).await.map(|_| ())
    });
    tokio::task::yield_now().await;
    net.partition(&["client"], &["dn"]);
    let r = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the blocked read ends at the cut")
        .unwrap();
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
    net.heal();

    // A one-way cut breaks an open stream in both directions.
    let mut s = c.connect_stream(&addr, t).await.unwrap();
    assert_eq!(round_trip(&mut s, 2).await.unwrap(), 2);
    net.cut_one_way(Sel::One("dn".into()), Sel::One("client".into()));
    assert!(round_trip(&mut s, 3).await.is_err());
    net.heal();
    // Healing does not revive it, a new stream works.
    assert!(round_trip(&mut s, 4).await.is_err());
    let mut s = c.connect_stream(&addr, t).await.unwrap();
    assert_eq!(round_trip(&mut s, 5).await.unwrap(), 5);

    // A delay holds every read and write back.
    net.add(Rule {
        from: Sel::Any,
        to: Sel::One("dn".into()),
        action: Action::Delay(Duration::from_millis(150)),
    });
    let start = tokio::time::Instant::now();
    assert_eq!(round_trip(&mut s, 6).await.unwrap(), 6);
    assert!(start.elapsed() >= Duration::from_millis(150));
    net.heal();

    // A drop resets the stream (a byte stream cannot skip bytes).
    net.add(Rule {
        from: Sel::One("client".into()),
        to: Sel::Any,
        action: Action::Drop(1.0),
    });
    let e = round_trip(&mut s, 7).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    net.heal();
    // A direct stream has no filters at all.
    let mut d = Connector::direct().connect_stream(&addr, t).await.unwrap();
    net.isolate("dn");
    assert_eq!(round_trip(&mut d, 8).await.unwrap(), 8);
}
