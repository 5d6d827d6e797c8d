//! The retry cache expires by the log tick, not by wall time (issue 11,
//! item 4), and snapshots of the previous format (no tick) still load.

use crate::op::{LogOp, Outcome, Stamp, FORMAT_VERSION};
use crate::persist::SnapshotError;
use crate::retry::{CLIENT_TTL_MS, SWEEP_MS};
use crate::Namespace;
use tdfs_proto::ids::CallId;
use tdfs_proto::FsError;

const ROOT: &str = "hdfs";
const MIN: u64 = 60_000;
/// A wall time in 2025, ms since the epoch.
const WALL: u64 = 1_750_000_000_000;

fn stamp(call: Option<(u64, u64)>, now: u64, tick: u64) -> Stamp {
    Stamp {
        user: ROOT.into(),
        call: call.map(|(client, seq)| CallId { client, seq }),
        now,
        tick,
    }
}

fn mkdir(p: &str) -> LogOp {
    LogOp::Mkdirs {
        path: p.into(),
        mode: 0o755,
        parents: false,
    }
}

/// A namespace with `/a` made by call (7, 1) at wall `WALL`, tick 1000.
fn with_a_call() -> Namespace {
    let mut ns = Namespace::new();
    let init = LogOp::Init {
        superuser: ROOT.into(),
        supergroup: "supergroup".into(),
    };
    ns.apply(&stamp(None, WALL, 1_000), &init, &mut Vec::new())
        .unwrap();
    let r = ns.apply(
        &stamp(Some((7, 1)), WALL, 1_000),
        &mkdir("/a"),
        &mut Vec::new(),
    );
    assert_eq!(r, Ok(Outcome::Bool(true)));
    ns
}

/// Calls of client 8, one per `step` ticks, `n` of them, stamped with
/// wall time `wall` onwards.
fn other_calls(ns: &mut Namespace, wall: u64, n: u64, step: u64) {
    let t0 = ns.tick();
    for i in 1..=n {
        let s = stamp(Some((8, i + 100 * t0)), wall + i * 1_000, t0 + i * step);
        let r = ns.apply(&s, &mkdir(&format!("/o{t0}-{i}")), &mut Vec::new());
        assert_eq!(r, Ok(Outcome::Bool(true)));
    }
}

#[test]
fn a_wall_clock_step_does_not_expire_a_retried_call() {
    let mut ns = with_a_call();
    // The wall clock steps 30 minutes forward; the ticks advance a few
    // minutes (sweeps run, one per SWEEP_MS of ticks).
    other_calls(&mut ns, WALL + 30 * MIN, 4, SWEEP_MS + 1_000);
    assert!(ns.clock() >= WALL + 30 * MIN);
    assert!(ns.tick() < 1_000 + CLIENT_TTL_MS);
    // The retry of (7, 1), its reply lost: the first answer, not a second
    // mkdir (AlreadyExists).
    let retry = stamp(Some((7, 1)), WALL + 31 * MIN, ns.tick() + 1_000);
    let r = ns.apply(&retry, &mkdir("/a"), &mut Vec::new());
    assert_eq!(r, Ok(Outcome::Bool(true)));
}

#[test]
fn a_client_silent_for_the_ttl_in_ticks_is_forgotten() {
    let mut ns = with_a_call();
    // The wall clock stands still (or goes back); the ticks pass the TTL.
    other_calls(&mut ns, WALL - 30 * MIN, 20, MIN);
    assert!(ns.tick() > 1_000 + CLIENT_TTL_MS + SWEEP_MS);
    assert_eq!(ns.retry_result(CallId { client: 7, seq: 1 }), None);
    let retry = stamp(Some((7, 1)), WALL, ns.tick() + 1_000);
    let r = ns.apply(&retry, &mkdir("/a"), &mut Vec::new());
    assert!(matches!(r, Err(FsError::AlreadyExists(_))), "{r:?}");
}

#[test]
fn the_tick_never_goes_back_and_survives_a_snapshot() {
    let mut ns = with_a_call();
    other_calls(&mut ns, WALL, 2, 5_000);
    let t = ns.tick();
    // A stamp with an older tick (a new leader that has not applied the
    // old one's last entries yet) does not move it back.
    let s = stamp(Some((9, 1)), WALL, 5);
    ns.apply(&s, &mkdir("/late"), &mut Vec::new()).unwrap();
    assert_eq!(ns.tick(), t);
    let mut bytes = Vec::new();
    ns.freeze().write(&mut bytes).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), FORMAT_VERSION);
    let back = Namespace::read_snapshot(&mut bytes.as_slice()).unwrap();
    assert_eq!((back.tick(), back.clock()), (ns.tick(), ns.clock()));
}

/// Written by the version-1 build (commit 541b6a5): Init, then `/a` by
/// call (7, 1) and `/a/f` created by call (7, 2), stamped 1_764_000_000_000
/// + 0, 1 and 2 seconds.
const V1: &[u8] = include_bytes!("fixtures/ns-v1.snap");
const V1_T0: u64 = 1_764_000_000_000;

/// A stamp by the fixture's superuser.
fn v1_stamp(call: Option<(u64, u64)>, now: u64, tick: u64) -> Stamp {
    Stamp {
        user: "tdfs".into(),
        ..stamp(call, now, tick)
    }
}

#[test]
fn a_version_1_snapshot_loads_with_its_wall_clock_as_the_tick() {
    assert_eq!(u16::from_le_bytes([V1[8], V1[9]]), 1);
    let mut ns = Namespace::read_snapshot(&mut &V1[..]).unwrap();
    assert_eq!(ns.clock(), V1_T0 + 2_000);
    assert_eq!(ns.tick(), V1_T0 + 2_000, "the tick continues the v1 clock");
    assert!(ns.stat(ROOT, "/a/f").is_ok());
    let created = ns.retry_result(CallId { client: 7, seq: 2 });
    assert!(
        matches!(created, Some(Ok(Outcome::Status(_)))),
        "{created:?}"
    );
    // The cached calls' times (v1: wall times) are in the tick's units: a
    // tick a minute later keeps them, past the TTL drops them.
    let s = v1_stamp(Some((8, 1)), V1_T0, V1_T0 + 2_000 + SWEEP_MS);
    ns.apply(&s, &mkdir("/b"), &mut Vec::new()).unwrap();
    assert!(ns.retry_result(CallId { client: 7, seq: 1 }).is_some());
    let late = V1_T0 + 2_000 + CLIENT_TTL_MS + 2 * SWEEP_MS;
    let s = v1_stamp(Some((8, 2)), V1_T0, late);
    ns.apply(&s, &mkdir("/c"), &mut Vec::new()).unwrap();
    assert_eq!(ns.retry_result(CallId { client: 7, seq: 1 }), None);
}

#[test]
fn an_unknown_snapshot_version_is_refused_naming_the_versions() {
    let mut bytes = V1.to_vec();
    bytes[8..10].copy_from_slice(&3u16.to_le_bytes());
    let Err(e) = Namespace::read_snapshot(&mut bytes.as_slice()) else {
        panic!("a version-3 snapshot was read");
    };
    assert!(
        matches!(e, SnapshotError::Version { found: 3, .. }),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("version 3") && msg.contains("versions 1 and 2"),
        "{msg}"
    );
}
