//! HDFS's trash layout (`TrashPolicyDefault`), shared by the shell that
//! moves paths into the trash and the leader that expires checkpoints:
//! `/user/USER/.Trash/Current/<full path>`, checkpoints named by their
//! time as `yyMMddHHmmss` (UTC here), a `-N` suffix when two fall in one
//! second.

use crate::path;

/// The directory trashed paths go into, under a trash root.
pub const CURRENT: &str = "Current";
/// The trash root's name under a home directory.
pub const TRASH: &str = ".Trash";
/// Permission of the directories made for the trash (owner only).
pub const TRASH_DIR_MODE: u16 = 0o700;

/// `/user/USER`.
pub fn home(user: &str) -> String {
    format!("/user/{user}")
}

/// `/user/USER/.Trash`.
pub fn trash_root(user: &str) -> String {
    format!("/user/{user}/{TRASH}")
}

/// Where `p` (canonical) goes in `user`'s trash: `Current` plus its full
/// path (Hadoop's `Path.mergePaths`).
pub fn trash_path(user: &str, p: &str) -> String {
    format!(
        "{}/{CURRENT}{}",
        trash_root(user),
        if p == "/" { "" } else { p }
    )
}

/// Whether `p` is already in `user`'s trash.
pub fn in_trash(user: &str, p: &str) -> bool {
    path::is_within(p, &trash_root(user))
}

fn civil(ms: u64) -> (i64, i64, i64, i64, i64, i64) {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, (rem % 3600) / 60, rem % 60)
}

/// A checkpoint's name for a time (ms since the epoch): `yyMMddHHmmss`.
pub fn checkpoint_name(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms);
    format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}", y.rem_euclid(100))
}

/// The time (ms) a checkpoint's name records, `-N` suffix allowed; `None`
/// for anything else (HDFS leaves such entries alone).
pub fn checkpoint_time(name: &str) -> Option<u64> {
    let base = name.split('-').next()?;
    if base.len() != 12 || !base.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| base[i..i + 2].parse::<i64>().ok();
    let (y, mo, d, h, mi, s) = (2000 + n(0)?, n(2)?, n(4)?, n(6)?, n(8)?, n(10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Whether a checkpoint made at `made` (ms) has outlived `interval_ms`
/// at `now` (HDFS: `now - interval > time`).
pub fn expired(made: u64, now: u64, interval_ms: u64) -> bool {
    now.saturating_sub(interval_ms) > made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trash_layout_is_hdfs() {
        assert_eq!(
            trash_path("bob", "/data/x"),
            "/user/bob/.Trash/Current/data/x"
        );
        assert!(in_trash("bob", "/user/bob/.Trash/Current/x"));
        assert!(!in_trash("bob", "/user/bob/x"));
        let t = 1_700_000_000_000;
        assert_eq!(checkpoint_name(t), "231114221320");
        assert_eq!(checkpoint_time("231114221320"), Some(t));
        assert_eq!(checkpoint_time("231114221320-3"), Some(t));
        assert_eq!(checkpoint_time(CURRENT), None);
        assert_eq!(checkpoint_time("239914221320"), None);
        assert!(expired(t, t + 61_000, 60_000));
        assert!(!expired(t, t + 59_000, 60_000));
    }
}
