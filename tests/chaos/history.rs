//! The recorded history of namespace operations, and the path groups
//! ("keys") it is partitioned by.
//!
//! Every path the namespace workload touches belongs to exactly one key, and
//! no operation on one key can change or observe another key's paths:
//!
//! - single and pair keys are siblings in `/chaos/ns`, which always exists;
//!   directories made by `mkdir` there stay empty, and a rename only moves
//!   a file between the two paths of one pair (never a directory, so it
//!   never turns into a move *into* a directory);
//! - a tree key is the subtree under `/chaos/ns/t<i>` (made before the run,
//!   never removed): every operation on it names paths of that subtree
//!   only, a rename's destination directory is in the same subtree, and a
//!   recursive delete removes a directory of the subtree with what it holds.
//!
//! That makes the keys independent objects, so checking each key's
//! sub-history alone is sound and complete (P-compositionality;
//! linearizability is local).

use std::sync::Mutex;
use std::time::Instant;
use tdfs_proto::FsError;

/// Directory holding the namespace workload's paths (created before the run).
pub const NS_DIR: &str = "/chaos/ns";

/// Single-path keys (create, mkdir, delete, stat).
pub const SINGLE_KEYS: usize = 8;
/// Two-path keys (create, delete, stat, rename between the two).
pub const PAIR_KEYS: usize = 4;
/// Subtree keys (mkdir, create, rename into and out of a directory,
/// recursive delete, append, stat with length).
pub const TREE_KEYS: usize = 4;

/// The paths of a tree key, relative to its root, by slot: two
/// directories, two files beside them, and those names inside each.
pub const TREE_SLOTS: [&str; 8] = ["d0", "d1", "f0", "f1", "d0/f0", "d0/f1", "d1/f0", "d1/f1"];

pub fn key_count() -> usize {
    SINGLE_KEYS + PAIR_KEYS + TREE_KEYS
}

pub fn is_pair(key: usize) -> bool {
    (SINGLE_KEYS..SINGLE_KEYS + PAIR_KEYS).contains(&key)
}

pub fn is_tree(key: usize) -> bool {
    key >= SINGLE_KEYS + PAIR_KEYS
}

/// The root directory of tree key `key` (exists for the whole run).
pub fn tree_root(key: usize) -> String {
    format!("{NS_DIR}/t{}", key - SINGLE_KEYS - PAIR_KEYS)
}

/// How many paths `key` has.
pub fn key_slots(key: usize) -> usize {
    if is_tree(key) {
        TREE_SLOTS.len()
    } else if is_pair(key) {
        2
    } else {
        1
    }
}

/// The path `slot` of `key` (0; 0/1 for a pair; an index of [`TREE_SLOTS`]).
pub fn key_path(key: usize, slot: usize) -> String {
    if is_tree(key) {
        format!("{}/{}", tree_root(key), TREE_SLOTS[slot])
    } else if is_pair(key) {
        let ab = if slot == 0 { "a" } else { "b" };
        format!("{NS_DIR}/r{}{ab}", key - SINGLE_KEYS)
    } else {
        format!("{NS_DIR}/k{key}")
    }
}

/// An operation on the paths of one key; the `u8` is the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsOp {
    Create(u8),
    Mkdir(u8),
    /// Not recursive.
    Delete(u8),
    /// Recursive: the path and everything under it.
    DeleteAll(u8),
    Stat(u8),
    /// With HDFS's into-directory rule: when `to` is a directory the file
    /// moves into it under its own name.
    Rename {
        from: u8,
        to: u8,
    },
    /// A real append (open, write, close) of this many bytes.
    Append(u8, u32),
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Ok,
    /// Stat: a file of this length.
    IsFile(u64),
    /// Stat: a directory.
    IsDir,
    NotFound,
    Exists,
    /// Timed out, connection lost, or an error that does not prove the
    /// operation had no effect: it may or may not have happened.
    Unknown,
}

/// Maps an error to the definite outcomes the model knows for `op`; every
/// other error is `Unknown` (which constrains nothing: always sound).
pub fn classify(op: NsOp, e: &FsError) -> Ret {
    match (op, e) {
        (NsOp::Create(_), FsError::AlreadyExists(_) | FsError::LeaseConflict { .. }) => Ret::Exists,
        // In a tree key: the parent directory is missing.
        (NsOp::Create(_), FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Mkdir(_), FsError::AlreadyExists(_)) => Ret::Exists,
        (NsOp::Delete(_) | NsOp::DeleteAll(_), FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Stat(_), FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Rename { .. }, FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Rename { .. }, FsError::AlreadyExists(_)) => Ret::Exists,
        // Only the error of the append's first call (opening the file for
        // append) is passed here: nothing was written.
        (NsOp::Append(..), FsError::FileNotFound(_)) => Ret::NotFound,
        // In a tree key: a directory slot holds a file, so the path below
        // it does not exist (and nothing was changed).
        (_, FsError::NotADirectory(_)) => Ret::NotFound,
        _ => Ret::Unknown,
    }
}

/// One completed (or abandoned) call.
#[derive(Clone, Debug)]
pub struct Op {
    pub key: usize,
    pub op: NsOp,
    /// Microseconds since the run started.
    pub invoke: u64,
    /// `u64::MAX` when the result is unknown: the operation may take effect
    /// at any point after its invocation, or never.
    pub ret: u64,
    pub res: Ret,
    /// Which worker issued it (for reports).
    pub worker: usize,
}

/// Shared, append-only log of operations.
pub struct History {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl History {
    pub fn new() -> History {
        History {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        }
    }

    pub fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Records an operation invoked at `invoke` that just returned `res`.
    pub fn record(&self, worker: usize, key: usize, op: NsOp, invoke: u64, res: Ret) {
        let ret = if res == Ret::Unknown {
            u64::MAX
        } else {
            self.now()
        };
        // A read whose result is unknown says nothing: leave it out.
        if res == Ret::Unknown && matches!(op, NsOp::Stat(_)) {
            return;
        }
        self.ops.lock().unwrap().push(Op {
            key,
            op,
            invoke,
            ret,
            res,
            worker,
        });
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().unwrap().clone()
    }
}

/// Operations on tree keys by kind: (acknowledged, recorded), for the
/// summary (proof that each kind really ran).
pub fn tree_tally(ops: &[Op]) -> std::collections::BTreeMap<&'static str, (usize, usize)> {
    let mut m = std::collections::BTreeMap::new();
    for o in ops.iter().filter(|o| is_tree(o.key)) {
        let kind = match o.op {
            NsOp::Create(_) => "create",
            NsOp::Mkdir(_) => "mkdir",
            NsOp::Delete(_) => "delete",
            NsOp::DeleteAll(_) => "delete -r",
            NsOp::Stat(_) => "stat",
            NsOp::Rename { from, .. } if from < 4 => "rename into",
            NsOp::Rename { .. } => "rename out",
            NsOp::Append(..) => "append",
        };
        let e = m.entry(kind).or_insert((0, 0));
        e.1 += 1;
        if !matches!(o.res, Ret::Unknown | Ret::NotFound | Ret::Exists) {
            e.0 += 1;
        }
    }
    m
}
