//! A datanode's Prometheus metrics: the block store's own counters, and its
//! usage read at scrape time.

use crate::block_store::BlockStore;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

/// The registry and the metrics it renders.
pub struct DatanodeMetrics {
    store: Arc<BlockStore>,
    inner: Mutex<Inner>,
}

struct Inner {
    registry: Registry,
    capacity: Gauge,
    used: Gauge,
    pending: Gauge,
    replicas: Gauge,
}

impl DatanodeMetrics {
    pub fn new(store: Arc<BlockStore>) -> Self {
        let mut r = Registry::with_prefix("tdfs_datanode");
        let s = &store.stats;
        r.register(
            "bytes_written",
            "Bytes received into replicas",
            s.bytes_written.clone(),
        );
        r.register(
            "bytes_read",
            "Bytes read from replicas for callers",
            s.bytes_read.clone(),
        );
        r.register(
            "blocks_finalized",
            "Replicas finalized",
            s.blocks_finalized.clone(),
        );
        r.register(
            "verification_failures",
            "Replicas found corrupt (scanner, verify command or digest mismatch on finalize)",
            s.verify_failures.clone(),
        );
        r.register(
            "replicas_quarantined",
            "Replicas moved into quarantine (found corrupt or unreadable)",
            s.quarantined.clone(),
        );
        let g = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let capacity = g(&mut r, "capacity_bytes", "Capacity of the data directory");
        let used = g(&mut r, "used_bytes", "Bytes held by replicas");
        let pending = g(
            &mut r,
            "pending_bytes",
            "Bytes reserved by replicas being written",
        );
        let replicas = g(&mut r, "replicas", "Finalized replicas held");
        DatanodeMetrics {
            store,
            inner: Mutex::new(Inner {
                registry: r,
                capacity,
                used,
                pending,
                replicas,
            }),
        }
    }

    pub fn render(&self) -> String {
        let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let u = self.store.usage();
        i.capacity.set(u.capacity as i64);
        i.used.set(u.used as i64);
        i.pending.set(u.pending as i64);
        i.replicas.set(u.blocks as i64);
        let mut out = String::new();
        if encode(&mut out, &i.registry).is_err() {
            out.clear();
        }
        out
    }
}
