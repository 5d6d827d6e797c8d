//! The source of the log tick (`Stamp::tick`, the time the retry cache
//! expires by) on a leader.
//!
//! A leader issues `tick = max(namespace's applied tick, tick issued last,
//! base + monotonic time since base)`, where base is the applied tick when
//! it took office. So log time advances with the leader's monotonic clock
//! only (the seam's `now()`, never its wall clock: a step of the wall clock
//! changes nothing), and never goes back across leaders: a new leader
//! starts from what it applied, and the namespace keeps the largest tick
//! applied. The time between two leaders is not counted, which only makes
//! expiry later (safe: a retry is answered longer, never applied twice).

use std::sync::Mutex;
use std::time::Instant;

/// A node's log clock; only a leader advances it.
#[derive(Debug, Default)]
pub struct LogClock {
    st: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// While leading: the monotonic instant and the applied tick at the
    /// start of the term.
    base: Option<(Instant, u64)>,
    /// The largest tick this node issued.
    issued: u64,
}

impl LogClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node became leader at monotonic `now`, having applied `applied`.
    pub fn lead(&self, now: Instant, applied: u64) {
        self.lock().base = Some((now, applied));
    }

    /// The node is no longer leader: its ticks stop advancing.
    pub fn step_down(&self) {
        self.lock().base = None;
    }

    /// The tick for a stamp taken at monotonic `now`, the namespace having
    /// applied `applied`. A node not leading issues the applied tick (its
    /// proposal is refused anyway, unless it has just been elected).
    pub fn issue(&self, now: Instant, applied: u64) -> u64 {
        let mut st = self.lock();
        let run = st.base.map_or(0, |(at, base)| {
            base + now.saturating_duration_since(at).as_millis() as u64
        });
        let tick = applied.max(st.issued).max(run);
        st.issued = tick;
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ticks_follow_the_monotonic_clock_from_the_applied_tick() {
        let c = LogClock::default();
        let t0 = Instant::now();
        assert_eq!(c.issue(t0, 500), 500, "not leading: the applied tick");
        c.lead(t0, 1_000);
        assert_eq!(c.issue(t0, 1_000), 1_000);
        assert_eq!(c.issue(t0 + 3 * S, 1_000), 4_000);
        // Applied entries of a previous leader with later ticks win.
        assert_eq!(c.issue(t0 + 4 * S, 9_000), 9_000);
        // Never back: an earlier reading (a racing stamp) gets the last.
        assert_eq!(c.issue(t0 + S, 1_000), 9_000);
    }

    #[test]
    fn a_new_term_never_goes_back() {
        let c = LogClock::default();
        let t0 = Instant::now();
        c.lead(t0, 0);
        assert_eq!(c.issue(t0 + 10 * S, 0), 10_000);
        c.step_down();
        assert_eq!(c.issue(t0 + 20 * S, 10_000), 10_000, "stopped");
        // Leading again with a stale applied tick: not below what it issued.
        c.lead(t0 + 30 * S, 2_000);
        assert_eq!(c.issue(t0 + 31 * S, 2_000), 10_000);
        assert_eq!(c.issue(t0 + 40 * S, 2_000), 12_000);
    }
}
