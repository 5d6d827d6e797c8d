//! A metadata node's Prometheus metrics: Raft state, operations by type with
//! latency histograms, and (on the leader) datanode liveness and block health
//! as the last policy round saw them.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// A [`MetaRequest::name`](tdfs_proto::meta::MetaRequest::name): no
    /// allocation per observed operation.
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

type HistogramFamily = Family<OpLabel, Histogram, fn() -> Histogram>;

/// A new metric of type `M`, registered under `name`.
fn reg<M: Clone + Default + Metric>(r: &mut Registry, name: &str, help: &str) -> M {
    let m = M::default();
    r.register(name, help, m.clone());
    m
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// Block health and datanode liveness from the leader's last policy round.
#[derive(Clone, Copy, Debug, Default)]
pub struct Health {
    pub live: u64,
    pub stale: u64,
    pub dead: u64,
    pub blocks: u64,
    pub under_replicated: u64,
    pub missing: u64,
    pub corrupt: u64,
}

/// One node's metrics; render with [`MetaMetrics::render`].
pub struct MetaMetrics {
    registry: Registry,
    ops: Family<OpLabel, Counter>,
    op_errors: Family<OpLabel, Counter>,
    op_seconds: HistogramFamily,
    datanode_requests: Family<OpLabel, Counter>,
    term: Gauge,
    role: Family<StateLabel, Gauge>,
    last_log_index: Gauge,
    applied_index: Gauge,
    datanodes: Family<StateLabel, Gauge>,
    blocks: Gauge,
    under_replicated: Gauge,
    missing: Gauge,
    corrupt: Gauge,
    alarm: Gauge,
    resident: Gauge,
}

impl Default for MetaMetrics {
    fn default() -> Self {
        Self::new(Gauge::default())
    }
}

impl MetaMetrics {
    /// `commit_index` is the log store's gauge (`LogStore::committed_index`).
    pub fn new(commit_index: Gauge) -> Self {
        let mut r = Registry::with_prefix("tdfs_meta");
        let ops = reg(&mut r, "operations", "Namespace operations served, by type");
        let op_errors = reg(
            &mut r,
            "operation_errors",
            "Namespace operations answered with an error, by type",
        );
        let op_seconds: HistogramFamily = Family::new_with_constructor(latency_histogram);
        r.register(
            "operation_seconds",
            "Latency of namespace operations, by type",
            op_seconds.clone(),
        );
        let datanode_requests = reg(
            &mut r,
            "datanode_requests",
            "Calls from datanodes (register, full_report, incremental_report, poll): \
             there is no heartbeat, so an idle datanode makes only its long polls",
        );
        let term = reg(&mut r, "raft_term", "Current Raft term");
        let last_log_index = reg(&mut r, "raft_last_log_index", "Last Raft log index");
        r.register(
            "raft_commit_index",
            "Last committed Raft log index (as the log store last saved it)",
            commit_index,
        );
        MetaMetrics {
            ops,
            op_errors,
            op_seconds,
            datanode_requests,
            term,
            last_log_index,
            applied_index: reg(&mut r, "raft_applied_index", "Last applied Raft log index"),
            role: reg(&mut r, "raft_role", "1 for this node's Raft role"),
            datanodes: reg(&mut r, "datanodes", "Datanodes by liveness (leader only)"),
            blocks: reg(&mut r, "blocks", "Committed blocks (leader only)"),
            under_replicated: reg(
                &mut r,
                "blocks_under_replicated",
                "Blocks with fewer live replicas than their replication factor (leader only)",
            ),
            missing: reg(
                &mut r,
                "blocks_missing",
                "Blocks without a live replica (leader only)",
            ),
            corrupt: reg(
                &mut r,
                "blocks_corrupt",
                "Blocks whose every replica failed verification (leader only)",
            ),
            alarm: reg(
                &mut r,
                "consistency_alarm",
                "1 once this node found a member whose namespace hash differs at the same applied index",
            ),
            resident: reg(
                &mut r,
                "process_resident_memory_bytes",
                "Resident memory of this process (from /proc/self/statm)",
            ),
            registry: r,
        }
    }

    /// Counts one call from a datanode.
    pub fn datanode_request(&self, kind: &'static str) {
        self.datanode_requests
            .get_or_create(&OpLabel { op: kind })
            .inc();
    }

    /// Counts one operation and its latency.
    pub fn observe(&self, op: &'static str, took: Duration, ok: bool) {
        let l = OpLabel { op };
        self.ops.get_or_create(&l).inc();
        if !ok {
            self.op_errors.get_or_create(&l).inc();
        }
        self.op_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// Records what the leader's policy round saw.
    /// Raises (or clears) the consistency alarm gauge.
    pub fn set_alarm(&self, on: bool) {
        self.alarm.set(on as i64);
    }

    pub fn set_health(&self, h: Health) {
        for (s, v) in [("live", h.live), ("stale", h.stale), ("dead", h.dead)] {
            self.datanodes
                .get_or_create(&StateLabel { state: s.into() })
                .set(v as i64);
        }
        self.blocks.set(h.blocks as i64);
        self.under_replicated.set(h.under_replicated as i64);
        self.missing.set(h.missing as i64);
        self.corrupt.set(h.corrupt as i64);
    }

    /// Renders the metrics, Raft state read from `raft` now.
    pub fn render(&self, raft: &crate::types::Raft) -> String {
        let m = raft.metrics().borrow().clone();
        self.term.set(m.current_term as i64);
        self.last_log_index
            .set(m.last_log_index.unwrap_or(0) as i64);
        self.applied_index
            .set(m.last_applied.map(|l| l.index).unwrap_or(0) as i64);
        let role = format!("{:?}", m.state).to_ascii_lowercase();
        for r in ["leader", "follower", "candidate", "learner", "shutdown"] {
            self.role
                .get_or_create(&StateLabel { state: r.into() })
                .set((r == role) as i64);
        }
        if role != "leader" {
            // Only the leader knows the datanodes and the blocks' health.
            self.set_health(Health::default());
        }
        self.render_registry()
    }

    fn render_registry(&self) -> String {
        self.resident.set(resident_bytes() as i64);
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// This process's resident memory in bytes (`VmRSS` of `/proc/self/status`);
/// 0 where that file is unreadable.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_vm_rss(&s))
        .unwrap_or(0)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_proc() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t  2048 kB\nVmHWM: 9 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        // This test process has touched memory, so it is resident.
        assert!(resident_bytes() > 1 << 20);
        let text = MetaMetrics::default().render_registry();
        assert!(text.contains("tdfs_meta_process_resident_memory_bytes"));
    }
}
