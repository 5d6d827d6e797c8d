//! Gossip membership of a metadata node: datanode liveness and usage feed
//! the soft cluster state.

use crate::config::MetaConfig;
use crate::node::MetaNode;
use std::sync::Arc;
use tdfs_gossip::{MemberEvent, Role};
use tdfs_proto::DatanodeId;
use tdfs_rpc::Shutdown;

/// Joins the gossip cluster on UDP at this node's port, seeded with the
/// other metadata nodes; its datagrams pass `connector`'s filters.
pub async fn start(
    config: &MetaConfig,
    connector: &tdfs_rpc::Connector,
) -> anyhow::Result<tdfs_gossip::GossipHandle> {
    use tdfs_gossip::{GossipConfig, NodeIdentity};
    let addr: std::net::SocketAddr = tokio::net::lookup_host(&config.addr)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {}", config.addr))?;
    let mut seeds = Vec::new();
    for (id, a) in &config.peers {
        if *id != config.id {
            if let Some(s) = tokio::net::lookup_host(a).await?.next() {
                seeds.push(s);
            }
        }
    }
    let ident = NodeIdentity::new(format!("meta-{}", config.id), Role::Meta, addr);
    let mut gc = GossipConfig::new(ident, seeds);
    gc.key = config.key.clone();
    gc.connector = connector.clone();
    Ok(tdfs_gossip::start(gc).await?)
}

/// Feeds gossip's view of the datanodes into the soft cluster state.
pub async fn follow(
    node: Arc<MetaNode>,
    mut events: tokio::sync::broadcast::Receiver<MemberEvent>,
    mut shutdown: Shutdown,
) {
    loop {
        let ev = tokio::select! {
            _ = shutdown.wait() => return,
            e = events.recv() => e,
        };
        let core = node.core();
        let now = core.now();
        match ev {
            Ok(MemberEvent::Down(m)) if m.role == Role::Datanode => {
                tracing::info!(peer = %m.id, "gossip: datanode is down");
                core.view(|v| v.gossip(&DatanodeId(m.id), true, now));
            }
            Ok(MemberEvent::Up(m)) if m.role == Role::Datanode => {
                core.view(|v| v.gossip(&DatanodeId(m.id), false, now));
            }
            Ok(MemberEvent::Usage(id, u)) => core.view(|v| v.usage(&DatanodeId(id), u)),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(fault = "local", "gossip: {n} membership events were missed");
            }
            Err(_) => return,
        }
    }
}
