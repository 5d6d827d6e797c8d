//! The clock seam: monotonic and wall time, with an offset a test can set
//! per node so clock skew and jumps can be injected. Everything that reads
//! time for a decision (leases, liveness, token expiry, retry cache stamps)
//! takes it from a [`Clock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node's clock; clones share the offsets.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to both readings (negative: behind).
    offset_ms: Arc<AtomicI64>,
    /// Milliseconds added to wall time only, as an NTP step or a skewed
    /// wall clock would (monotonic time is not moved by either).
    wall_offset_ms: Arc<AtomicI64>,
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
        let off =
            self.offset_ms.load(Ordering::Relaxed) + self.wall_offset_ms.load(Ordering::Relaxed);
        (real + off).max(0) as u64
    }

    /// Sets the wall-only offset (tests: an NTP step or a skewed wall
    /// clock), in milliseconds; monotonic readings are unaffected.
    pub fn set_wall_offset_ms(&self, ms: i64) {
        self.wall_offset_ms.store(ms, Ordering::Relaxed);
    }

    pub fn wall_offset_ms(&self) -> i64 {
        self.wall_offset_ms.load(Ordering::Relaxed)
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

/// Test builds only (the `bugs` feature): if `TDFS_CLOCK_FILE=PATH` is set,
/// a thread polls PATH every 50 ms and sets `clock`'s wall-only offset to
/// the integer (milliseconds) it holds, so a test can jump or skew a
/// running daemon's wall clock from outside. Each applied value is written
/// back to `PATH.applied`, so the test can wait until it took effect. A
/// missing or unparsable file leaves the offset as it is.
#[cfg(feature = "bugs")]
pub fn watch_offset_file(clock: &Clock) {
    let Some(path) = std::env::var_os("TDFS_CLOCK_FILE") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let mut applied = path.clone().into_os_string();
    applied.push(".applied");
    let clock = clock.clone();
    let mut acked = None;
    let spawned = std::thread::Builder::new()
        .name("clock-file".into())
        .spawn(move || loop {
            let read = std::fs::read_to_string(&path).ok();
            if let Some(ms) = read.and_then(|s| s.trim().parse::<i64>().ok()) {
                if ms != clock.wall_offset_ms() {
                    tracing::warn!(
                        fault = "local",
                        "test clock hook: wall clock offset {ms} ms"
                    );
                    clock.set_wall_offset_ms(ms);
                }
                if acked != Some(ms) && std::fs::write(&applied, ms.to_string()).is_ok() {
                    acked = Some(ms);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        });
    if let Err(e) = spawned {
        tracing::warn!(fault = "local", "test clock hook not started: {e}");
    }
}

/// Without the `bugs` feature (releases) the clock hook does nothing.
#[cfg(not(feature = "bugs"))]
pub fn watch_offset_file(_clock: &Clock) {}

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

    #[test]
    fn a_wall_offset_leaves_monotonic_time_alone() {
        let c = Clock::real();
        let w0 = c.wall_ms();
        c.set_wall_offset_ms(-300_000);
        assert!(c.wall_ms() <= w0 - 299_000);
        let t = Instant::now();
        let m = c.now();
        assert!(m >= t && m < t + Duration::from_secs(5));
        c.set_wall_offset_ms(0);
        assert!(c.wall_ms() >= w0);
    }
}
