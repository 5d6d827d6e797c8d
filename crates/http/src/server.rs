//! Starting the HTTP server of a metadata node or a datanode.

use crate::{datanode_router, meta_router, Clients, DataCounters, DataHttp, Gateway, MetaHttp};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::ClientConfig;
use tdfs_datanode::metrics::DatanodeMetrics;
use tdfs_datanode::node::DatanodeConfig;
use tdfs_datanode::BlockStore;
use tdfs_meta_raft::MetaNode;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running HTTP server; [`stop`](Self::stop) ends it.
pub struct HttpServer {
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    fn spawn(listener: TcpListener, router: axum::Router) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, mut rx) = watch::channel(false);
        let task = crate::spawn(listener, router, async move {
            let _ = rx.wait_for(|s| *s).await;
        });
        Ok(HttpServer { addr, stop, task })
    }

    /// Stops accepting, lets requests in flight finish for a moment, then
    /// cuts the rest.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(2), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// WebHDFS counters rendered after a node's own metrics.
fn webhdfs_metrics(c: &DataCounters) -> String {
    format!(
        "# HELP tdfs_webhdfs_bytes_written Bytes uploaded through WebHDFS here.\n\
         # TYPE tdfs_webhdfs_bytes_written counter\n\
         tdfs_webhdfs_bytes_written_total {}\n\
         # HELP tdfs_webhdfs_bytes_read Bytes downloaded through WebHDFS here.\n\
         # TYPE tdfs_webhdfs_bytes_read counter\n\
         tdfs_webhdfs_bytes_read_total {}\n# EOF\n",
        c.bytes_written.load(Ordering::Relaxed),
        c.bytes_read.load(Ordering::Relaxed)
    )
}

fn join_metrics(own: String, c: &DataCounters) -> String {
    let mut s = own.trim_end().trim_end_matches("# EOF").to_string();
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s + &webhdfs_metrics(c)
}

/// Serves WebHDFS, the status page and `/metrics` for metadata node `node`.
pub fn start_meta(node: Arc<MetaNode>, listener: TcpListener) -> std::io::Result<HttpServer> {
    let cfg = node.config();
    let mut meta = vec![cfg.addr.clone()];
    meta.extend(
        cfg.peers
            .iter()
            .filter(|(id, _)| **id != cfg.id)
            .map(|(_, a)| a.clone()),
    );
    let mut cc = ClientConfig::new(meta, "dr.who");
    cc.key = cfg.key.clone();
    let self_http = listener.local_addr()?.to_string();
    let counters = Arc::new(DataCounters::default());
    let c2 = counters.clone();
    let n2 = node.clone();
    let st = Arc::new(MetaHttp {
        gateway: Gateway::new(Clients::new(cc), self_http),
        self_rpc: cfg.addr.clone(),
        counters,
        metrics: Arc::new(move || join_metrics(n2.metrics().render(n2.raft()), &c2)),
    });
    HttpServer::spawn(listener, meta_router(st))
}

/// Serves `/metrics` and the WebHDFS data endpoints for a datanode.
pub fn start_datanode(
    cfg: &DatanodeConfig,
    store: Arc<BlockStore>,
    listener: TcpListener,
) -> std::io::Result<HttpServer> {
    let mut cc = ClientConfig::new(cfg.meta.clone(), "dr.who");
    cc.key = cfg.key.clone();
    let counters = Arc::new(DataCounters::default());
    let c2 = counters.clone();
    let m = DatanodeMetrics::new(store);
    let st = Arc::new(DataHttp {
        clients: Clients::new(cc),
        counters,
        metrics: Arc::new(move || join_metrics(m.render(), &c2)),
    });
    HttpServer::spawn(listener, datanode_router(st))
}
