//! Wiring a node's HTTP server: what the WebHDFS gateway, the status page
//! and `/metrics` need from a metadata node or a datanode, handed to
//! `tdfs-http` as plain values, so that crate depends on the client library
//! only. Used by `tdfs local` and by the `tdfs meta`/`tdfs datanode` daemons.

use std::sync::Arc;
use tdfs_client::ClientConfig;
use tdfs_datanode::metrics::DatanodeMetrics;
use tdfs_datanode::node::DatanodeConfig;
use tdfs_datanode::BlockStore;
use tdfs_http::{HttpLimits, HttpServer, MetaHttpConfig, ServerDefaults};
use tdfs_meta_raft::MetaNode;
use tokio::net::TcpListener;

/// The user the gateway's template client acts as; each request then gets
/// a client for the user it names.
const ANONYMOUS: &str = "dr.who";

/// Serves WebHDFS, the status page and `/metrics` for metadata node `node`.
pub fn start_meta_http(
    node: &Arc<MetaNode>,
    listener: TcpListener,
    limits: HttpLimits,
) -> std::io::Result<HttpServer> {
    let cfg = node.config();
    // This node first: namespace reads are answered here when it can.
    let mut meta = vec![cfg.addr.clone()];
    meta.extend(
        cfg.peers
            .iter()
            .filter(|(id, _)| **id != cfg.id)
            .map(|(_, a)| a.clone()),
    );
    let mut client = ClientConfig::new(meta, ANONYMOUS);
    client.key = cfg.key.clone();
    client.connector = node.connector().clone();
    let n = node.clone();
    let http = MetaHttpConfig {
        client,
        self_rpc: cfg.addr.clone(),
        metrics: Arc::new(move || n.metrics().render(n.raft())),
        defaults: ServerDefaults {
            block_size: cfg.defaults.block_size,
            replication: cfg.defaults.replication,
            // Minutes, rounded up: a shorter interval (tests) still means on.
            trash_interval_minutes: cfg.trash_interval_ms.div_ceil(60_000),
        },
        limits,
    };
    tdfs_http::start_meta(http, listener)
}

/// Serves `/metrics` and the WebHDFS data endpoints for a datanode.
pub fn start_datanode_http(
    cfg: &DatanodeConfig,
    store: Arc<BlockStore>,
    listener: TcpListener,
    limits: HttpLimits,
) -> std::io::Result<HttpServer> {
    let mut client = ClientConfig::new(cfg.meta.clone(), ANONYMOUS);
    client.key = cfg.key.clone();
    client.connector = cfg.connector.clone();
    let m = DatanodeMetrics::new(store);
    let render = Arc::new(move || m.render());
    tdfs_http::start_datanode(client, render, limits, listener)
}
