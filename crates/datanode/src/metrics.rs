//! A datanode's Prometheus metrics, read from the block store's counters and
//! usage at scrape time.

use crate::block_store::BlockStore;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The registry and the metrics it renders.
pub struct DatanodeMetrics {
    store: Arc<BlockStore>,
    inner: Mutex<Inner>,
}

struct Inner {
    registry: Registry,
    bytes_written: Counter,
    bytes_read: Counter,
    blocks_finalized: Counter,
    verify_failures: Counter,
    capacity: Gauge,
    used: Gauge,
    pending: Gauge,
    replicas: Gauge,
}

impl DatanodeMetrics {
    pub fn new(store: Arc<BlockStore>) -> Self {
        let mut r = Registry::with_prefix("tdfs_datanode");
        let c = |r: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let bytes_written = c(&mut r, "bytes_written", "Bytes received into replicas");
        let bytes_read = c(&mut r, "bytes_read", "Bytes read from replicas for callers");
        let blocks_finalized = c(&mut r, "blocks_finalized", "Replicas finalized");
        let verify_failures = c(
            &mut r,
            "verification_failures",
            "Replicas found corrupt (scanner, verify command or digest mismatch on finalize)",
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
                bytes_written,
                bytes_read,
                blocks_finalized,
                verify_failures,
                capacity,
                used,
                pending,
                replicas,
            }),
        }
    }

    pub fn render(&self) -> String {
        let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let s = &self.store.stats;
        let catch_up = |c: &Counter, v: u64| {
            let have = c.get();
            if v > have {
                c.inc_by(v - have);
            }
        };
        catch_up(&i.bytes_written, s.bytes_written.load(Ordering::Relaxed));
        catch_up(&i.bytes_read, s.bytes_read.load(Ordering::Relaxed));
        catch_up(
            &i.blocks_finalized,
            s.blocks_finalized.load(Ordering::Relaxed),
        );
        catch_up(
            &i.verify_failures,
            s.verify_failures.load(Ordering::Relaxed),
        );
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
