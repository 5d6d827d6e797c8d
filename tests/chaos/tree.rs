//! The tree keys' workload: in each subtree `/chaos/ns/t<i>` (its paths in
//! `history::TREE_SLOTS`), mkdir of `d0`/`d1`, create of a file beside or
//! inside them, renames of a file into a directory (HDFS's into-directory
//! rule) and back out, recursive deletes of a directory, non-recursive
//! deletes of files, real appends of a few bytes, and stats that return
//! kind and length.
//!
//! An append is an open, a write and a close; while it runs, nothing else
//! mutates its subtree (it holds the subtree's lock exclusively; other
//! mutations hold it shared, stats not at all; a worker that finds the
//! lock taken stats a path instead of waiting), and an append whose
//! outcome is unknown keeps the lock until its file is closed (lease
//! recovery decided how many of its bytes count). So an append never
//! races a rename or a delete of its own file, whose effect the model,
//! which names paths and not inodes, could not follow.

use super::history::{classify, tree_root, NsOp, Ret, PAIR_KEYS, SINGLE_KEYS};
use super::workload::{meta_op, Shared};
use rand::rngs::StdRng;
use rand::Rng;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tdfs_client::{FileWriter, MetaClient};

/// File slots of a tree key (beside and inside the directories).
const FILES: [u8; 6] = [2, 3, 4, 5, 6, 7];

/// How long an append of unknown outcome may leave its file open before
/// its subtree is frozen (no more mutations).
const CLOSE_WITHIN: Duration = Duration::from_secs(30);

/// One operation on a random path of tree key `key`, recorded.
pub async fn step(sh: &Shared, c: &Arc<MetaClient>, worker: usize, key: usize, rng: &mut StdRng) {
    let t = key - SINGLE_KEYS - PAIR_KEYS;
    let file = FILES[rng.gen_range(0..FILES.len())];
    let dir = rng.gen_range(0..2u8);
    let roll = if sh.tree_frozen[t].load(Ordering::Relaxed) {
        99
    } else {
        rng.gen_range(0..100)
    };
    let op = match roll {
        0..=14 => NsOp::Create(file),
        15..=24 => NsOp::Mkdir(dir),
        25..=32 => NsOp::DeleteAll(dir),
        33..=40 => NsOp::Delete(file),
        41..=51 => NsOp::Rename {
            from: 2 + rng.gen_range(0..2u8),
            to: dir,
        },
        52..=61 => {
            let from = 4 + rng.gen_range(0..4u8);
            NsOp::Rename {
                from,
                to: 2 + (from - 4) % 2,
            }
        }
        62..=77 => NsOp::Append(file, rng.gen_range(1..=64)),
        _ => NsOp::Stat(rng.gen_range(0..8u8)),
    };
    let lock = &sh.tree_locks[t];
    let stat = NsOp::Stat(rng.gen_range(0..8u8));
    match op {
        NsOp::Stat(_) => {
            meta_op(sh, c, worker, key, op).await;
        }
        NsOp::Append(slot, n) => {
            let Ok(_g) = lock.try_write() else {
                meta_op(sh, c, worker, key, stat).await;
                return;
            };
            let path = super::history::key_path(key, slot as usize);
            let invoke = sh.hist.now();
            let res = append(c, &path, n).await;
            sh.hist.record(worker, key, op, invoke, res);
            if res == Ret::Unknown && !closed_within(c, &path).await {
                println!(
                    "chaos: {path} still open {CLOSE_WITHIN:?} after an append of unknown \
                     outcome; no more mutations in {}",
                    tree_root(key)
                );
                sh.tree_frozen[t].store(true, Ordering::Relaxed);
            }
        }
        _ => {
            let Ok(_g) = lock.try_read() else {
                meta_op(sh, c, worker, key, stat).await;
                return;
            };
            meta_op(sh, c, worker, key, op).await;
        }
    }
}

/// Appends `n` bytes to `path` with a client of its own (whose lease dies
/// with it, so a failed append is recovered and not renewed forever).
async fn append(c: &MetaClient, path: &str, n: u32) -> Ret {
    let Ok(own) = MetaClient::new(c.config().clone()) else {
        return Ret::Unknown;
    };
    let mut w = match FileWriter::append(Arc::new(own), path).await {
        Ok(w) => w,
        // The open for append is one call: its definite errors prove that
        // nothing was written.
        Err(e) => return classify(NsOp::Append(0, n), &e),
    };
    let buf = vec![b'a'; n as usize];
    let r = match w.write(&buf).await {
        Ok(()) => w.close().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Ret::Ok,
        Err(_) => Ret::Unknown,
    }
}

/// Waits until `path` is closed (or gone); false after [`CLOSE_WITHIN`].
async fn closed_within(c: &MetaClient, path: &str) -> bool {
    tdfs_testkit::wait::poll_for_async(CLOSE_WITHIN, || async {
        match c.stat(path).await {
            Ok(st) if !st.under_construction => Some(()),
            Err(tdfs_proto::FsError::FileNotFound(_)) => Some(()),
            _ => None,
        }
    })
    .await
    .is_some()
}
