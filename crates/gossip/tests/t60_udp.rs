//! Three members over real UDP on loopback through [`tdfs_gossip::start_on`]:
//! datanodes started before their seed join once it is up, usage spreads, a
//! crashed member is seen down within 3 s and a member that shuts down
//! cleanly is seen down at once. Every wait is on a condition, with a
//! deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_gossip::{
    start_on, ClusterKey, DatanodeUsage, GossipConfig, GossipHandle, MemberEvent, MemberSnapshot,
    MemberState, NodeIdentity, Role,
};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use tokio::time::timeout;

async fn socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

async fn start(
    socket: UdpSocket,
    id: &str,
    role: Role,
    seed: std::net::SocketAddr,
) -> GossipHandle {
    let addr = socket.local_addr().expect("bound");
    let mut config = GossipConfig::new(NodeIdentity::new(id, role, addr), vec![seed]);
    config.key = Some(ClusterKey::new(vec![42; 32]).expect("long enough"));
    start_on(socket, config).await.expect("gossip starts")
}

/// Waits until `cond` holds on `handle`'s member table.
async fn wait_for(
    handle: &GossipHandle,
    limit: Duration,
    what: &str,
    cond: impl FnMut(&Arc<MemberSnapshot>) -> bool,
) {
    let mut watch = handle.watch();
    timeout(limit, watch.wait_for(cond))
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
        .expect("gossip task alive");
}

fn alive(snapshot: &MemberSnapshot, ids: &[&str]) -> bool {
    ids.iter().all(|id| {
        snapshot
            .members
            .iter()
            .any(|m| m.identity.id == *id && m.state == MemberState::Alive)
    })
}

/// Waits for `Down(id)` on `events`; returns when it came.
async fn down_event(
    events: &mut broadcast::Receiver<MemberEvent>,
    id: &str,
    limit: Duration,
) -> Instant {
    timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(MemberEvent::Down(who)) if who.id == id => return Instant::now(),
                Ok(_) => {}
                Err(err) => panic!("event stream broke: {err}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} not seen down within {limit:?}"))
}

#[tokio::test]
async fn three_members_over_udp_join_spread_usage_and_detect_failures() {
    let (seed_socket, a_socket, b_socket) = (socket().await, socket().await, socket().await);
    let seed_addr = seed_socket.local_addr().expect("bound");
    // The datanodes come first: they must keep trying the seed.
    let dn_a = start(a_socket, "dn-a", Role::Datanode, seed_addr).await;
    let dn_b = start(b_socket, "dn-b", Role::Datanode, seed_addr).await;
    wait_for(&dn_a, Duration::from_secs(2), "a first announce", |s| {
        s.stats.sent_packets > 0
    })
    .await;
    let meta = start(seed_socket, "meta-1", Role::Meta, seed_addr).await;
    let joined = Instant::now();
    wait_for(&meta, Duration::from_secs(5), "meta to see both", |s| {
        alive(s, &["dn-a", "dn-b"])
    })
    .await;
    wait_for(&dn_a, Duration::from_secs(5), "dn-a to see all", |s| {
        alive(s, &["meta-1", "dn-b"])
    })
    .await;
    wait_for(&dn_b, Duration::from_secs(5), "dn-b to see all", |s| {
        alive(s, &["meta-1", "dn-a"])
    })
    .await;
    println!("udp: joined {:?} after the seed started", joined.elapsed());

    let usage = DatanodeUsage {
        capacity: 1000,
        used: 250,
        pending: 5,
        blocks: 7,
    };
    dn_b.set_usage(usage);
    wait_for(&meta, Duration::from_secs(3), "dn-b's usage at meta", |s| {
        s.members
            .iter()
            .any(|m| m.identity.id == "dn-b" && m.usage == Some(usage) && m.data_addr.is_some())
    })
    .await;

    let mut meta_events = meta.subscribe();
    let mut b_events = dn_b.subscribe();
    let killed = Instant::now();
    dn_a.abort().await;
    let at_meta = down_event(&mut meta_events, "dn-a", Duration::from_secs(3)).await;
    let at_b = down_event(&mut b_events, "dn-a", Duration::from_secs(3)).await;
    println!(
        "udp: crash -> Down at meta-1 after {:?}, at dn-b after {:?}",
        at_meta - killed,
        at_b - killed
    );

    let left = Instant::now();
    dn_b.shutdown().await;
    let at_meta = down_event(&mut meta_events, "dn-b", Duration::from_secs(1)).await;
    println!(
        "udp: clean shutdown -> Down at meta-1 after {:?}",
        at_meta - left
    );
    let stats = meta.stats();
    assert_eq!(
        stats.dropped_bad_mac + stats.dropped_replay + stats.foca_errors,
        0,
        "{stats:?}"
    );
    meta.shutdown().await;
}

/// Like [`start`], with every datagram sent through `net`'s filters.
async fn start_filtered(
    socket: UdpSocket,
    id: &str,
    role: Role,
    seed: std::net::SocketAddr,
    net: &Arc<tdfs_rpc::FaultNet>,
) -> GossipHandle {
    let addr = socket.local_addr().expect("bound");
    let mut config = GossipConfig::new(NodeIdentity::new(id, role, addr), vec![seed]);
    config.key = Some(ClusterKey::new(vec![42; 32]).expect("long enough"));
    config.connector = tdfs_rpc::Connector::filtered(id, net.clone());
    start_on(socket, config).await.expect("gossip starts")
}

/// Up again after a heal: an Up event for `id` on `events`.
async fn up_event(events: &mut broadcast::Receiver<MemberEvent>, id: &str, limit: Duration) {
    timeout(limit, async {
        loop {
            match events.recv().await {
                Ok(MemberEvent::Up(who)) if who.id == id => return,
                Ok(_) => {}
                Err(err) => panic!("event stream broke: {err}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{id} not seen up again within {limit:?}"))
}

/// Gossip goes through the connector like every other link: a member the
/// fault table isolates is declared down by the others (its own process
/// is fine), comes back when the table heals, and a one-way cut counts
/// the datagrams it swallowed.
#[tokio::test]
async fn a_member_the_fault_table_isolates_is_seen_down_and_back_after_the_heal() {
    let net = tdfs_rpc::FaultNet::new(60);
    let (seed_socket, a_socket, b_socket) = (socket().await, socket().await, socket().await);
    let seed_addr = seed_socket.local_addr().expect("bound");
    for (s, id) in [
        (&seed_socket, "meta-1"),
        (&a_socket, "dn-a"),
        (&b_socket, "dn-b"),
    ] {
        net.name(&s.local_addr().expect("bound").to_string(), id);
    }
    let meta = start_filtered(seed_socket, "meta-1", Role::Meta, seed_addr, &net).await;
    let dn_a = start_filtered(a_socket, "dn-a", Role::Datanode, seed_addr, &net).await;
    let dn_b = start_filtered(b_socket, "dn-b", Role::Datanode, seed_addr, &net).await;
    wait_for(&meta, Duration::from_secs(5), "meta to see both", |s| {
        alive(s, &["dn-a", "dn-b"])
    })
    .await;

    let mut meta_events = meta.subscribe();
    let cut = Instant::now();
    net.isolate("dn-a");
    let at_meta = down_event(&mut meta_events, "dn-a", Duration::from_secs(5)).await;
    println!(
        "gossip filter: isolated -> Down at meta-1 after {:?}",
        at_meta - cut
    );
    wait_for(
        &dn_a,
        Duration::from_secs(5),
        "dn-a's sends filtered",
        |s| s.stats.filtered_out > 0,
    )
    .await;
    wait_for(
        &dn_b,
        Duration::from_secs(5),
        "dn-b to see dn-a down",
        |s| !alive(s, &["dn-a"]),
    )
    .await;

    net.heal();
    up_event(&mut meta_events, "dn-a", Duration::from_secs(10)).await;
    wait_for(
        &dn_b,
        Duration::from_secs(5),
        "dn-b to see dn-a again",
        |s| alive(s, &["dn-a", "meta-1"]),
    )
    .await;

    // Cut one way only (meta-1 hears nothing from dn-b, dn-b hears
    // meta-1): SWIM's indirect probes through dn-a keep dn-b alive or
    // get it declared down; either way meta-1's own datagrams to dn-b
    // still pass and dn-b's to meta-1 are the ones swallowed.
    let before = (meta.stats().filtered_out, dn_b.stats().filtered_out);
    net.cut_one_way(
        tdfs_rpc::Sel::One("dn-b".into()),
        tdfs_rpc::Sel::One("meta-1".into()),
    );
    wait_for(
        &dn_b,
        Duration::from_secs(5),
        "dn-b's datagrams to meta-1 swallowed",
        |s| s.stats.filtered_out > before.1,
    )
    .await;
    assert_eq!(
        meta.stats().filtered_out,
        before.0,
        "meta-1's sends were filtered"
    );
    net.heal();
    for h in [meta, dn_a, dn_b] {
        h.shutdown().await;
    }
}
