//! Bug switches: deliberate defects the chaos suite turns on to prove that
//! it catches what they break. Compiled only with the `bugs` feature (on in
//! test builds through a dev-dependency, off in releases); each is enabled
//! at run time by naming it in `TDFS_BUGS` (comma-separated).

/// The defects that can be switched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// The Raft log acknowledges appends before they are fsync'd.
    AckBeforeFsync,
    /// Followers serve reads without a read index (stale reads).
    FollowerReadWithoutIndex,
    /// Datanodes run commands from any term (no fencing).
    SkipFencing,
    /// The state machine ignores the retry cache (retries apply twice).
    ForgetRetryCache,
    /// The leader deletes corrupt replicas even when no good copy exists.
    DeleteLastCorrupt,
    /// A damaged Raft log record anywhere truncates the log there.
    TruncateAtFirstBadRecord,
}

impl Bug {
    pub const ALL: [Bug; 6] = [
        Bug::AckBeforeFsync,
        Bug::FollowerReadWithoutIndex,
        Bug::SkipFencing,
        Bug::ForgetRetryCache,
        Bug::DeleteLastCorrupt,
        Bug::TruncateAtFirstBadRecord,
    ];

    /// The name used in `TDFS_BUGS`.
    pub fn name(&self) -> &'static str {
        match self {
            Bug::AckBeforeFsync => "ack-before-fsync",
            Bug::FollowerReadWithoutIndex => "follower-read-without-index",
            Bug::SkipFencing => "skip-fencing",
            Bug::ForgetRetryCache => "forget-retry-cache",
            Bug::DeleteLastCorrupt => "delete-last-corrupt",
            Bug::TruncateAtFirstBadRecord => "truncate-at-first-bad-record",
        }
    }
}

/// Whether `bug` is switched on in this process.
#[cfg(feature = "bugs")]
pub fn on(bug: Bug) -> bool {
    use std::sync::OnceLock;
    static ENABLED: OnceLock<Vec<String>> = OnceLock::new();
    let enabled = ENABLED.get_or_init(|| {
        let v: Vec<String> = std::env::var("TDFS_BUGS")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !v.is_empty() {
            tracing::warn!(
                fault = "local",
                "BUG SWITCHES ON (test build): {}",
                v.join(", ")
            );
        }
        v
    });
    enabled.iter().any(|n| n == bug.name())
}

/// Whether `bug` is switched on: never, in a build without the `bugs` feature.
#[cfg(not(feature = "bugs"))]
#[inline(always)]
pub fn on(_bug: Bug) -> bool {
    false
}

/// The test disk `TDFS_TEST_DISK` asks for (test builds only: without the
/// `bugs` feature the variable is not even read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestDisk {
    /// The real disk (unset).
    Real,
    /// `forget-unsynced`: `tdfs_disk::ForgetfulDisk`, forgetting from the
    /// start: a kill -9 loses what was not fsync'd, as a power loss does.
    ForgetUnsynced,
    /// `forget-unsynced-on-sigusr1`: writes through to the real disk until
    /// the process receives SIGUSR1, forgets unsynced writes from then on
    /// (the chaos suite's `PowerLoss` fault).
    ForgetUnsyncedOnSignal,
}

/// The test disk `TDFS_TEST_DISK` names; an unknown name is an error. Logs
/// a loud local-fault warning when one is on, as the bug switches do.
#[cfg(feature = "bugs")]
pub fn test_disk() -> Result<TestDisk, String> {
    let d = match std::env::var("TDFS_TEST_DISK").as_deref().map(str::trim) {
        Err(_) | Ok("") => return Ok(TestDisk::Real),
        Ok("forget-unsynced") => TestDisk::ForgetUnsynced,
        Ok("forget-unsynced-on-sigusr1") => TestDisk::ForgetUnsyncedOnSignal,
        Ok(other) => {
            return Err(format!(
                "TDFS_TEST_DISK={other}: unknown test disk (known: forget-unsynced, \
                 forget-unsynced-on-sigusr1)"
            ))
        }
    };
    tracing::warn!(
        fault = "local",
        "TEST DISK ON (test build): {d:?}: writes not fsync'd are lost when this process dies"
    );
    Ok(d)
}

/// The test disk: always the real one in a build without the `bugs`
/// feature.
#[cfg(not(feature = "bugs"))]
#[inline(always)]
pub fn test_disk() -> Result<TestDisk, String> {
    Ok(TestDisk::Real)
}
