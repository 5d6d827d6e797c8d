//! Waiting on conditions with deadlines: the one way tdfs's tests wait.
//!
//! A test never sleeps and hopes: it names what it waits for, polls a
//! condition (every [`POLL`]) and fails with that name once the deadline
//! passes. Where a server publishes an event for the change, tests wait on
//! the event stream instead (`EventBus::poll`), which wakes at once.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(10);

/// Waits until `f` yields a value; panics naming `what` after `within`.
pub async fn wait_for<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    wait_for_async(what, within, || std::future::ready(f())).await
}

/// Waits until `cond` holds; panics naming `what` after `within`.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, within, || cond().then_some(())).await
}

/// [`wait_for`] with a condition that is itself async (an RPC, a read).
pub async fn wait_for_async<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_for_async(within, f).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls async `f` until it yields a value or `within` passes; `None` then.
/// For checks whose timeout is an outcome to report, not a test failure.
pub async fn poll_for_async<T, F, Fut>(within: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for synchronous tests (blocks the thread between polls).
pub fn wait_until_blocking(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_first_value_and_fails_after_the_deadline() {
        let mut n = 0;
        let v = wait_for("the third poll", Duration::from_secs(5), || {
            n += 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(v, 3);
        let r = tokio::spawn(wait_until("never", Duration::from_millis(30), || false)).await;
        let msg = r.unwrap_err().into_panic();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(msg.contains("waiting for never"), "{msg}");
    }

    #[test]
    fn blocking_wait_fails_after_the_deadline() {
        let r = std::panic::catch_unwind(|| {
            wait_until_blocking("never", Duration::from_millis(30), || false)
        });
        assert!(r.is_err());
        let mut n = 0;
        wait_until_blocking("two polls", Duration::from_secs(5), || {
            n += 1;
            n == 2
        });
    }
}
