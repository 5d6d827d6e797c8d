//! Gossip membership of a metadata node: datanode liveness and usage feed
//! the soft cluster state.

use crate::config::MetaConfig;
use crate::node::MetaNode;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tdfs_gossip::{MemberEvent, MemberSnapshot, MemberState, Role};
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

/// Feeds gossip's view of the datanodes into the soft cluster state: each
/// event at once, and the whole member table whenever gossip republishes it
/// (every probe period), so a lost or lagged event costs one period.
pub async fn follow(
    node: Arc<MetaNode>,
    mut events: tokio::sync::broadcast::Receiver<MemberEvent>,
    mut table: tokio::sync::watch::Receiver<Arc<MemberSnapshot>>,
    mut shutdown: Shutdown,
) {
    let mut unknown = HashSet::new();
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            e = events.recv() => if !on_event(&node, e) {
                return;
            },
            r = table.changed() => {
                if r.is_err() {
                    return;
                }
                let snap = table.borrow_and_update().clone();
                reconcile(&node, &snap, &mut unknown);
            }
        }
    }
}

/// One member event; false once the gossip service is gone.
fn on_event(
    node: &MetaNode,
    ev: Result<MemberEvent, tokio::sync::broadcast::error::RecvError>,
) -> bool {
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
            tracing::warn!(
                fault = "local",
                "gossip: {n} membership events were missed; the next member table catches up"
            );
        }
        Err(_) => return false,
    }
    true
}

/// Applies gossip's member table to every registered datanode; logs each
/// datanode gossip does not know (then judged by its calls) once.
fn reconcile(node: &MetaNode, snap: &MemberSnapshot, unknown: &mut HashSet<DatanodeId>) {
    let rows: HashMap<&str, bool> = snap
        .members
        .iter()
        .filter(|m| m.identity.role == Role::Datanode)
        .map(|m| (m.identity.id.as_str(), m.state == MemberState::Down))
        .collect();
    let core = node.core();
    let now = core.now();
    let mut missing = HashSet::new();
    core.view(|v| {
        v.gossip_table(
            |id| {
                let r = rows.get(id.0.as_str()).copied();
                if r.is_none() {
                    missing.insert(id.clone());
                }
                r
            },
            now,
        )
    });
    for id in missing.difference(unknown) {
        tracing::info!(peer = %id.0, "gossip has not heard of registered datanode; judged by its calls until it does");
    }
    *unknown = missing;
}
