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
