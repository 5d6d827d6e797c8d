//! The timer queue: foca's timers and the core's own periodic work, fired in
//! deadline order (foca misbehaves when its timers fire out of order).

use foca::Timer;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::identity::NodeIdentity;

/// Something due at a point in time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CoreTimer {
    /// A timer foca asked for.
    Foca(Timer<NodeIdentity>),
    /// Announce to seeds; only the newest round (by number) counts.
    Announce(u64),
    /// Re-spread our unchanged usage record; only the newest round counts.
    UsageRefresh(u64),
    /// Review suspects; size retransmissions to the cluster.
    Housekeeping,
    /// Send our usage record to the metadata node with this stable id, which
    /// just came up.
    Welcome(String),
}

/// A min-heap of timers by deadline; ties go by foca's timer order.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    heap: BinaryHeap<Reverse<(Instant, CoreTimer)>>,
}

impl TimerQueue {
    pub(crate) fn push(&mut self, at: Instant, timer: CoreTimer) {
        self.heap.push(Reverse((at, timer)));
    }

    /// The earliest deadline, if any timer is pending.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<CoreTimer> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, timer))| timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fires_in_deadline_order_and_not_early() {
        let t0 = Instant::now();
        let mut q = TimerQueue::default();
        q.push(t0 + Duration::from_millis(30), CoreTimer::UsageRefresh(1));
        q.push(t0 + Duration::from_millis(10), CoreTimer::Announce(2));
        q.push(t0 + Duration::from_millis(20), CoreTimer::Announce(1));
        assert_eq!(q.pop_due(t0), None);
        let now = t0 + Duration::from_millis(25);
        assert_eq!(q.pop_due(now), Some(CoreTimer::Announce(2)));
        assert_eq!(q.pop_due(now), Some(CoreTimer::Announce(1)));
        assert_eq!(q.pop_due(now), None);
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(30)));
    }
}
