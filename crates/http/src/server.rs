//! Starting the HTTP server of a metadata node or a datanode. The caller
//! (the daemon or the in-process cluster) binds the socket and hands over
//! plain values: where the cluster is, and how to render its own metrics.
//! This crate never reaches into the metadata node or the block store.

use crate::{
    datanode_router, meta_router, Clients, DataCounters, DataHttp, Gateway, HttpLimits, MetaHttp,
    MetricsFn, ServerDefaults,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::ClientConfig;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a metadata node's HTTP server is given.
pub struct MetaHttpConfig {
    /// Template of the gateway's clients (one per user): the metadata
    /// nodes, this one first, and the cluster key.
    pub client: ClientConfig,
    /// This node's RPC address (the status page asks it for its state).
    pub self_rpc: String,
    /// The node's own metrics; WebHDFS counters are appended.
    pub metrics: MetricsFn,
    /// What GETSERVERDEFAULTS reports (FsShell's `-rm` reads the trash
    /// interval from it).
    pub defaults: ServerDefaults,
    /// Connection, header, body and time limits of the server.
    pub limits: HttpLimits,
}

/// A running HTTP server; [`stop`](Self::stop) ends it.
pub struct HttpServer {
    pub addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl HttpServer {
    fn spawn(
        listener: TcpListener,
        router: axum::Router,
        limits: HttpLimits,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, mut rx) = watch::channel(false);
        let task = crate::spawn_with(listener, router, limits, async move {
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

/// Adds the WebHDFS counters to a node's own metrics.
fn with_counters(own: MetricsFn, counters: &Arc<DataCounters>) -> MetricsFn {
    let c = counters.clone();
    Arc::new(move || join_metrics(own(), &c))
}

/// Serves WebHDFS, the status page and `/metrics` for a metadata node.
pub fn start_meta(cfg: MetaHttpConfig, listener: TcpListener) -> std::io::Result<HttpServer> {
    let self_http = listener.local_addr()?.to_string();
    let counters = Arc::new(DataCounters::default());
    let st = Arc::new(MetaHttp {
        gateway: Gateway::new(Clients::new(cfg.client), self_http, cfg.defaults),
        self_rpc: cfg.self_rpc,
        metrics: with_counters(cfg.metrics, &counters),
        counters,
    });
    HttpServer::spawn(listener, meta_router(st), cfg.limits)
}

/// Serves `/metrics` and the WebHDFS data endpoints for a datanode; its
/// clients reach the metadata nodes `client` names.
pub fn start_datanode(
    client: ClientConfig,
    metrics: MetricsFn,
    limits: HttpLimits,
    listener: TcpListener,
) -> std::io::Result<HttpServer> {
    let counters = Arc::new(DataCounters::default());
    let st = Arc::new(DataHttp {
        clients: Clients::new(client),
        metrics: with_counters(metrics, &counters),
        counters,
    });
    HttpServer::spawn(listener, datanode_router(st), limits)
}
