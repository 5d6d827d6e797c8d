//! Failpoints in a daemon: with the `failpoints` feature (test builds only),
//! `FAILPOINTS="name=actions;name=actions"` configures them at start-up, so
//! a test can make one `tdfs meta` process fail at a named step (e.g.
//! `meta::leader-driver=1*panic`). In-process tests call `fail::cfg`.

/// Applies `FAILPOINTS` once per process; nothing without the feature.
pub fn from_env() {
    #[cfg(feature = "failpoints")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let Ok(spec) = std::env::var("FAILPOINTS") else {
                return;
            };
            for (name, actions) in spec.split(';').filter_map(|p| p.split_once('=')) {
                match fail::cfg(name.trim(), actions.trim()) {
                    Ok(()) => tracing::warn!(
                        fault = "local",
                        "FAILPOINT {name} set to {actions} (test build)"
                    ),
                    Err(e) => {
                        tracing::error!(fault = "local", "bad failpoint {name}={actions}: {e}")
                    }
                }
            }
        });
    }
}
