//! The two-level logging check.
//!
//! [`init`] installs (once per test binary) a global subscriber: the usual
//! formatted output on the test writer (`RUST_LOG`, default
//! `info,openraft=warn`) plus [`FaultLayer`], which records every WARN or
//! ERROR event from a `tdfs` crate that is not `fault = "peer"`. The cluster
//! helpers call [`assert_no_local_faults`] when a test shuts its cluster
//! down, so such a warning fails the test that was running (tests in one
//! binary run in parallel threads sharing the recorder, so a report can name
//! a warning a neighbouring test caused; the message says where it came
//! from). A test that injects a local fault on purpose (a full disk, a
//! failpoint) declares the warnings it expects with [`allow_local`].

use std::fmt::Write as _;
use std::sync::{Mutex, Once};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

static INIT: Once = Once::new();
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
static ALLOWED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs the test subscriber with the fault check; idempotent. If another
/// global subscriber was installed first, the check is off for this binary
/// (and says so once).
pub fn init() {
    INIT.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
        let fmt = tracing_subscriber::fmt::layer()
            .with_test_writer()
            .with_filter(filter);
        if tracing_subscriber::registry()
            .with(fmt)
            .with(FaultLayer)
            .try_init()
            .is_err()
        {
            eprintln!("tdfs-testkit: a subscriber was already installed; the fault check is off");
        }
    });
}

/// Declares that warnings whose message (or fields) contain `pattern` are
/// expected in this binary: the test injects that local fault on purpose.
pub fn allow_local(pattern: &str) {
    ALLOWED.lock().unwrap().push(pattern.to_string());
}

/// Takes the local-fault warnings recorded since the last call.
pub fn take_local_faults() -> Vec<String> {
    std::mem::take(&mut *RECORDED.lock().unwrap())
}

/// Panics, listing them, if any local-fault (or fault-less) warning was
/// logged by a tdfs crate since the last check.
pub fn assert_no_local_faults() {
    let found = take_local_faults();
    if !found.is_empty() && !std::thread::panicking() {
        panic!(
            "{} warning(s) blame this process (fault = \"local\") or name no fault; a \
             test expecting them calls tdfs_testkit::log::allow_local:\n  {}",
            found.len(),
            found.join("\n  ")
        );
    }
}

/// Records WARN/ERROR events of tdfs crates that are not a peer's fault.
pub struct FaultLayer;

#[derive(Default)]
struct Fields {
    fault: Option<String>,
    text: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "fault" {
            self.fault = Some(value.to_string());
        }
        let _ = write!(self.text, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "fault" {
            self.fault = Some(v.trim_matches('"').to_string());
        }
        let _ = write!(self.text, " {}={v}", field.name());
    }
}

/// Whether an event is checked: a warning or error logged by a tdfs crate.
pub fn checked(level: &Level, target: &str) -> bool {
    *level <= Level::WARN && target.starts_with("tdfs")
}

impl<S: Subscriber> Layer<S> for FaultLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !checked(meta.level(), meta.target()) {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if f.fault.as_deref() == Some("peer") {
            return;
        }
        if ALLOWED.lock().unwrap().iter().any(|p| f.text.contains(p)) {
            return;
        }
        let what = match f.fault.as_deref() {
            Some("local") => "local fault",
            Some(_) => "unknown fault kind",
            None => "no fault field",
        };
        RECORDED.lock().unwrap().push(format!(
            "{} {} ({what}, {}:{}):{}",
            meta.level(),
            meta.target(),
            meta.file().unwrap_or("?"),
            meta.line().unwrap_or(0),
            f.text
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_fault_less_warnings_are_recorded_peer_ones_are_not() {
        let layer = FaultLayer;
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(target: "tdfs_x", fault = "peer", peer = "1.2.3.4:5", "sent garbage");
            tracing::warn!(target: "tdfs_x", fault = "local", "disk full");
            tracing::error!(target: "tdfs_x", "no fault named");
            tracing::warn!(target: "openraft", "not ours");
            tracing::info!(target: "tdfs_x", fault = "local", "info is not checked");
            allow_local("expected EIO");
            tracing::warn!(target: "tdfs_x", fault = "local", "expected EIO on purpose");
        });
        let got = take_local_faults();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("local fault") && got[0].contains("disk full"));
        assert!(got[1].contains("no fault field"));
        assert!(std::panic::catch_unwind(assert_no_local_faults).is_ok());
    }
}
