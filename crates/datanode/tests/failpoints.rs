//! A crash at every step of publishing and quarantining a replica (the
//! `failpoints` feature, on for this crate's tests through its
//! dev-dependency on itself): the crash point's callback crashes the
//! in-memory disk, the store is reopened on what the disk kept, and it
//! holds either no replica or a complete one, never one that reads wrong;
//! a replica acknowledged before the crash is always there.
//!
//! Failpoints are process-wide, so every test here holds
//! `fail::FailScenario` (one at a time) and this file is its own test
//! binary.

use std::path::Path;
use tdfs_datanode::block_store::failpoints::{PUBLISH, QUARANTINE};
use tdfs_datanode::block_store::Check;
use tdfs_disk::{Disk, MemDisk};
use tdfs_testkit::datanodes::pattern;
use tdfs_testkit::datanodes::store::*;

/// Whether the view of the disk the store used is dead (the point fired).
fn crashed(view: &MemDisk) -> bool {
    view.read_dir(Path::new("/"))
        .is_err_and(|e| e.raw_os_error() == Some(libc::EIO))
}

#[test]
fn a_crash_at_any_publish_step_leaves_no_replica_or_a_complete_one() {
    let scenario = fail::FailScenario::setup();
    for &point in PUBLISH {
        for with_old in [false, true] {
            let mem = MemDisk::new();
            let store = open_on(mem.shared());
            let bystander = pattern(CHUNK_3, 70);
            put(&store, 7, 1, &bystander).unwrap();
            let old = pattern(1000, 1);
            if with_old {
                put(&store, 1, 1, &old).unwrap();
            }
            let m = mem.clone();
            fail::cfg_callback(point, move || m.crash()).unwrap();
            let data = pattern(CHUNK_3, 2);
            let acked = put(&store, 1, 2, &data).is_ok();
            fail::remove(point);
            assert!(crashed(&mem), "{point} did not fire");
            drop(store);

            let disk = mem.restarted();
            let store = open_on(disk.shared());
            let case =
                format!("crash at {point} (older generation present: {with_old}, acked: {acked})");
            match store.get(1) {
                Some(r) if r.gen == 2 => {
                    assert_eq!(read_all(&store, 1, 2).unwrap(), data, "{case}");
                    assert!(store.verify(1).unwrap(), "{case}");
                }
                Some(r) => {
                    assert!(with_old && !acked, "{case}: gen {}", r.gen);
                    assert_eq!(read_all(&store, 1, 1).unwrap(), old, "{case}");
                }
                None => assert!(!with_old && !acked, "{case}: no replica"),
            }
            assert!(store.quarantined().is_empty(), "{case}");
            assert!(names(&disk, "rbw").is_empty(), "{case}");
            assert_eq!(read_all(&store, 7, 1).unwrap(), bystander, "{case}");
            println!("{case}: replica {:?}", store.get(1).map(|r| r.gen));
        }
    }
    scenario.teardown();
}

#[test]
fn a_crash_at_any_quarantine_step_keeps_the_replica_whole_in_one_place() {
    let scenario = fail::FailScenario::setup();
    for &point in QUARANTINE {
        let mem = MemDisk::new();
        let store = open_on(mem.shared());
        put(&store, 1, 1, &pattern(CHUNK_3, 3)).unwrap();
        flip(&mem, "current/blk_1_1.data", 17);
        let damaged = mem.read(Path::new("/dn/current/blk_1_1.data")).unwrap();
        let m = mem.clone();
        fail::cfg_callback(point, move || m.crash()).unwrap();
        let _ = store.check(1);
        fail::remove(point);
        assert!(crashed(&mem), "{point} did not fire");
        drop(store);

        let disk = mem.restarted();
        let store = open_on(disk.shared());
        let (cur, quar) = (names(&disk, "current"), names(&disk, "quarantine"));
        let both = vec!["blk_1_1.data".to_string(), "blk_1_1.meta".to_string()];
        let dir = if store.get(1).is_some() {
            // The move never became durable: the replica is as it was, and
            // the next check finds it again.
            assert!(store.quarantined().is_empty(), "{point}");
            assert_eq!((&cur, &quar), (&both, &vec![]), "{point}");
            "current"
        } else {
            assert_eq!(store.quarantined(), vec![(1, 1)], "{point}");
            assert_eq!((&cur, &quar), (&vec![], &both), "{point}");
            "quarantine"
        };
        let kept = disk
            .read(&Path::new(DIR).join(dir).join("blk_1_1.data"))
            .unwrap();
        assert_eq!(kept, damaged, "{point}: the bytes are kept");
        if dir == "current" {
            assert_eq!(store.check(1).unwrap(), Check::Quarantined { gen: 1 });
        }
        println!("crash at {point}: replica in {dir}");
    }
    scenario.teardown();
}

/// Three chunks and a bit.
const CHUNK_3: usize = 3 * tdfs_transfer::CHUNK + 11;

/// What the store must hold, as far as the test knows.
#[derive(Default)]
struct Model {
    /// Acknowledged replicas: block → (generation, bytes).
    held: std::collections::BTreeMap<u64, (u64, Vec<u8>)>,
    /// Quarantined replicas.
    quarantined: std::collections::BTreeSet<(u64, u64)>,
}

/// The operation under way when a crash point may fire.
enum Step {
    Put(u64, u64, Vec<u8>),
    Quarantine(u64, u64),
    Delete(u64, u64),
}

/// After a crash during `step`, checks the reopened store against the
/// model (the step's own outcome may go either way) and updates the model.
fn reconcile(store: &tdfs_datanode::BlockStore, model: &mut Model, step: &Step, seed: u64) {
    let uncertain = match step {
        Step::Put(id, ..) | Step::Quarantine(id, _) | Step::Delete(id, _) => *id,
    };
    for (id, (gen, data)) in &model.held {
        if *id != uncertain {
            assert_eq!(
                read_all(store, *id, *gen).as_ref(),
                Ok(data),
                "seed {seed}: acknowledged replica {id} gen {gen}"
            );
        }
    }
    let before = model.held.get(&uncertain).cloned();
    match (step, store.get(uncertain)) {
        (Step::Put(id, gen, data), Some(r)) if r.gen == *gen => {
            assert_eq!(&read_all(store, *id, *gen).unwrap(), data, "seed {seed}");
            model.held.insert(*id, (*gen, data.clone()));
        }
        (Step::Quarantine(id, gen), Some(r)) => {
            // The move never became durable: the damaged replica is back,
            // and the next check (the scanner's) finds it again.
            assert_eq!(r.gen, *gen, "seed {seed}");
            let found = store.check(*id).unwrap();
            assert_eq!(found, Check::Quarantined { gen: *gen }, "seed {seed}");
            model.held.remove(id);
        }
        (_, Some(r)) => {
            let (gen, data) = before.expect("a replica the test never wrote");
            assert_eq!(r.gen, gen, "seed {seed}");
            assert_eq!(
                read_all(store, uncertain, gen).unwrap(),
                data,
                "seed {seed}"
            );
        }
        (_, None) => {
            model.held.remove(&uncertain);
        }
    }
    let actual: std::collections::BTreeSet<(u64, u64)> = store.quarantined().into_iter().collect();
    for q in &model.quarantined {
        assert!(
            actual.contains(q) || matches!(step, Step::Delete(id, _) if *id == q.0),
            "seed {seed}: quarantined {q:?} lost"
        );
    }
    model.quarantined = actual;
    assert!(
        names(&*store.config().disk, "rbw").is_empty(),
        "seed {seed}"
    );
}

/// Random puts, newer generations, corruptions found by `check`, and
/// deletions, with a crash at a random crash point now and then. Replay a
/// failure with `TDFS_SEED=<seed>`.
#[test]
fn random_operations_with_crashes_never_lose_an_acknowledged_replica() {
    use rand::{Rng, SeedableRng};
    let scenario = fail::FailScenario::setup();
    let seed = std::env::var("TDFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("seed {seed} (replay with TDFS_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut mem = MemDisk::new();
    let mut store = open_on(mem.shared());
    let mut model = Model::default();
    let points: Vec<&str> = PUBLISH.iter().chain(QUARANTINE).copied().collect();
    for round in 0..150u64 {
        let armed = rng
            .gen_bool(0.2)
            .then(|| points[rng.gen_range(0..points.len())]);
        if let Some(p) = armed {
            let m = mem.clone();
            fail::cfg_callback(p, move || m.crash()).unwrap();
        }
        let id = rng.gen_range(1..=6u64);
        let step = match (rng.gen_range(0..10), model.held.get(&id).cloned()) {
            (0..=5, held) => {
                let gen = held.map_or(1, |(g, _)| g + 1);
                let len = rng.gen_range(0..3 * tdfs_transfer::CHUNK);
                Step::Put(id, gen, pattern(len, seed ^ round))
            }
            (6..=7, Some((gen, data))) if !data.is_empty() => {
                let at = rng.gen_range(0..data.len() as u64);
                flip(&mem, &format!("current/blk_{id}_{gen}.data"), at);
                Step::Quarantine(id, gen)
            }
            (_, held) => Step::Delete(id, held.map_or(rng.gen_range(1..4), |(g, _)| g)),
        };
        match &step {
            Step::Put(id, gen, data) => {
                if put(&store, *id, *gen, data).is_ok() {
                    model.held.insert(*id, (*gen, data.clone()));
                }
            }
            Step::Quarantine(id, gen) => {
                if let Ok(Check::Quarantined { gen }) = store.check(*id) {
                    model.held.remove(id);
                    model.quarantined.insert((*id, gen));
                } else if !crashed(&mem) {
                    panic!("seed {seed}: a flipped byte in {id} gen {gen} went unseen");
                }
            }
            Step::Delete(id, gen) => {
                if store.delete(*id, *gen).is_ok() {
                    model.held.remove(id);
                    model.quarantined.retain(|(b, g)| b != id || g > gen);
                }
            }
        }
        if let Some(p) = armed {
            fail::remove(p);
        }
        // Sometimes a plain crash between operations, sometimes the armed one.
        let plain = rng.gen_bool(0.1);
        if plain {
            mem.crash();
        }
        if crashed(&mem) {
            drop(store);
            mem = mem.restarted();
            store = open_on(mem.shared());
            reconcile(&store, &mut model, &step, seed);
        }
    }
    scenario.teardown();
}
