//! The clock seam: monotonic and wall time, with an offset a test can set
//! per node so clock skew and jumps can be injected. Everything that reads
//! time for a decision (leases, liveness, token expiry, retry cache stamps)
//! takes it from a [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node's clock; clones share the offset.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to both readings (negative: behind).
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The real clock, no offset.
    pub fn real() -> Self {
        Clock::default()
    }

    /// Monotonic time, shifted by the offset.
    pub fn now(&self) -> Instant {
        let base = Instant::now();
        let off = self.offset_ms.load(Ordering::Relaxed);
        if off >= 0 {
            base + Duration::from_millis(off as u64)
        } else {
            base.checked_sub(Duration::from_millis(off.unsigned_abs()))
                .unwrap_or(base)
        }
    }

    /// Wall time in milliseconds since the Unix epoch, shifted by the offset.
    pub fn wall_ms(&self) -> u64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (real + self.offset_ms.load(Ordering::Relaxed)).max(0) as u64
    }

    /// Sets the offset (tests: skew), in milliseconds.
    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms.store(ms, Ordering::Relaxed);
    }

    /// Moves the clock by `ms` at once (tests: a jump).
    pub fn jump_ms(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_shift_both_clocks() {
        let c = Clock::real();
        let w0 = c.wall_ms();
        c.set_offset_ms(60_000);
        assert!(c.wall_ms() >= w0 + 59_000);
        let t = Instant::now();
        assert!(c.now() >= t + Duration::from_secs(59));
        c.jump_ms(-120_000);
        assert!(c.wall_ms() < w0);
        assert_eq!(c.offset_ms(), -60_000);
    }
}
