//! Progress under faults: each fault's window, from just before it is
//! injected until [`TAIL`] after the cluster settled once it was healed,
//! must hold a minimum of successful operations. A fault that stalls the
//! workload (a leader that heartbeats but cannot serve, a client stuck on
//! a dead node, a lock never released) then fails the run instead of
//! passing with an empty history.
//!
//! The tail is there because a fault that cuts off the leader legitimately
//! stops the namespace for about as long as it is held (measured: 3–31
//! answered namespace calls in 2.8–5 s windows of PauseLeader and
//! PartitionLeader without it): the floor asks that the workload is
//! making progress again within two seconds of the cluster settling.

use super::history::{Op, Ret};
use super::nemesis::Fault;

/// One fault's window, µs on the history's clock: from just before the
/// injection to [`TAIL`] after the cluster settled.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub fault: Fault,
    pub from: u64,
    pub to: u64,
}

/// How long after settling a window still counts (µs).
pub const TAIL: u64 = 2_000_000;

/// Successful namespace calls (a definite answer) and data operations
/// every window must hold: about a tenth of the fewest measured in a
/// window on the 2-core machine (see docs/chaos.md, "Progress").
pub const NS_FLOOR: u64 = 30;
pub const DATA_FLOOR: u64 = 3;

impl Window {
    /// The window of a fault injected at `from` whose cluster settled at
    /// `settled`.
    pub fn new(fault: Fault, from: u64, settled: u64) -> Window {
        Window {
            fault,
            from,
            to: settled + TAIL,
        }
    }
}

/// Successful operations in one window.
#[derive(Clone, Copy, Debug)]
pub struct Count {
    pub w: Window,
    pub ns: u64,
    pub data: u64,
    /// Of `ns`, those of the stat workers pinned to one node (workers
    /// 10..99) and the final reads (99: never inside a window).
    pub pinned: u64,
}

impl Count {
    pub fn secs(&self) -> f64 {
        (self.w.to - self.w.from) as f64 / 1e6
    }

    /// The floors this window must reach.
    pub fn floors(&self) -> (u64, u64) {
        (NS_FLOOR, DATA_FLOOR)
    }
}

/// Counts, per window, the namespace operations with a definite answer
/// and the successful data operations (`data_acks`: completion times)
/// that completed inside it.
pub fn count(windows: &[Window], ops: &[Op], data_acks: &[u64]) -> Vec<Count> {
    windows
        .iter()
        .map(|w| {
            let inside = |t: u64| t >= w.from && t <= w.to;
            Count {
                w: *w,
                ns: ops
                    .iter()
                    .filter(|o| o.res != Ret::Unknown && inside(o.ret))
                    .count() as u64,
                data: data_acks.iter().filter(|&&t| inside(t)).count() as u64,
                pinned: ops
                    .iter()
                    .filter(|o| o.res != Ret::Unknown && inside(o.ret) && o.worker >= 10)
                    .count() as u64,
            }
        })
        .collect()
}

/// One violation per window below its floor.
pub fn violations(counts: &[Count]) -> Vec<String> {
    let mut out = Vec::new();
    for c in counts {
        let (ns_min, data_min) = c.floors();
        if c.ns < ns_min || c.data < data_min {
            out.push(format!(
                "fault {:?} at {:.1} s ({:.1} s long) had only {} successful namespace ops \
                 (floor {ns_min}) and {} data ops (floor {data_min})",
                c.w.fault,
                c.w.from as f64 / 1e6,
                c.secs(),
                c.ns,
                c.data
            ));
        }
    }
    out
}

/// The fewest namespace and data operations in any window, for the
/// summary.
pub fn fewest(counts: &[Count]) -> Option<(u64, u64)> {
    let ns = counts.iter().map(|c| c.ns).min()?;
    let data = counts.iter().map(|c| c.data).min()?;
    Some((ns, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::NsOp;

    fn op(ret: u64, res: Ret) -> Op {
        Op {
            key: 0,
            op: NsOp::Stat(0),
            invoke: ret.saturating_sub(10),
            ret,
            res,
            worker: 0,
        }
    }

    #[test]
    fn a_stalled_window_is_a_violation_and_a_busy_one_is_not() {
        // Settled at 1 s and 4 s: windows [0, 3 s] and [3.5 s, 6 s].
        let windows = [
            Window::new(Fault::KillLeader, 0, 1_000_000),
            Window::new(Fault::PauseLeader, 3_500_000, 4_000_000),
        ];
        // 300 answered reads in the first window; in the second only
        // unknown results and a handful of answers.
        let mut ops: Vec<Op> = (0..300)
            .map(|i| op(1000 + i * 5000, Ret::IsFile(0)))
            .collect();
        ops.extend((0..50).map(|i| op(3_600_000 + i * 1000, Ret::Unknown)));
        ops.extend((0..5).map(|i| op(4_000_000 + i, Ret::NotFound)));
        let data: Vec<u64> = (0..4).map(|i| 10 + i * 400_000).collect();
        let counts = count(&windows, &ops, &data);
        assert_eq!((counts[0].ns, counts[0].data), (300, 4));
        assert_eq!((counts[1].ns, counts[1].data), (5, 0));
        let v = violations(&counts);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("PauseLeader") && v[0].contains("had only 5 successful namespace ops"),
            "{v:?}"
        );
        assert_eq!(fewest(&counts), Some((5, 0)));
    }
}
