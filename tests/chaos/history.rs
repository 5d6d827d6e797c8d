//! The recorded history of namespace operations, and the path groups
//! ("keys") it is partitioned by.
//!
//! Every path the namespace workload touches belongs to exactly one key, and
//! no operation on one key can change or observe another key's paths: the
//! paths are siblings in a directory that always exists, directories made by
//! `mkdir` stay empty, and a rename only ever moves a file between the two
//! paths of one pair key (its destination is never a directory, so the
//! rename never turns into a move *into* a directory). That makes the keys
//! independent objects, so checking each key's sub-history alone is sound
//! and complete (P-compositionality; linearizability is local).

use std::sync::Mutex;
use std::time::Instant;
use tdfs_proto::FsError;

/// Directory holding the namespace workload's paths (created before the run).
pub const NS_DIR: &str = "/chaos/ns";

/// Single-path keys (create, mkdir, delete, stat).
pub const SINGLE_KEYS: usize = 8;
/// Two-path keys (create, delete, stat, rename between the two).
pub const PAIR_KEYS: usize = 4;

pub fn key_count() -> usize {
    SINGLE_KEYS + PAIR_KEYS
}

pub fn is_pair(key: usize) -> bool {
    key >= SINGLE_KEYS
}

/// The path `slot` (0, or 0/1 for a pair) of `key`.
pub fn key_path(key: usize, slot: usize) -> String {
    if is_pair(key) {
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
    Delete(u8),
    Stat(u8),
    Rename { from: u8, to: u8 },
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    Ok,
    /// Stat: a file.
    IsFile,
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
        (NsOp::Mkdir(_), FsError::AlreadyExists(_)) => Ret::Exists,
        (NsOp::Delete(_), FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Stat(_), FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Rename { .. }, FsError::FileNotFound(_)) => Ret::NotFound,
        (NsOp::Rename { .. }, FsError::AlreadyExists(_)) => Ret::Exists,
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
