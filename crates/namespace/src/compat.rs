//! Reading the previous log format (version 1, before [`Stamp::tick`]).
//!
//! The rule for a version-1 stamp's tick: **tick = now**, its wall stamp.
//! Under version 1 the retry cache expired by the largest wall stamp
//! applied, so a version-1 snapshot's cache holds wall-clock times; a
//! version-1 snapshot loads with its tick = its log clock (the largest wall
//! stamp), and version-1 entries replayed after it carry tick = now. Log
//! time thus continues exactly where version 1 left it — never 0, never
//! back — and the first leader of the new version starts its monotonic
//! ticks from there.

use crate::op::{Batch, LogOp, Stamp, Stamped};
use serde::Deserialize;
use tdfs_proto::ids::CallId;

/// A version-1 [`Stamp`] (decodes the same bytes).
#[derive(Deserialize)]
pub struct StampV1 {
    user: String,
    call: Option<CallId>,
    now: u64,
}

/// A version-1 [`Stamped`].
#[derive(Deserialize)]
pub struct StampedV1 {
    stamp: StampV1,
    op: LogOp,
}

/// A version-1 [`Batch`].
#[derive(Deserialize)]
pub struct BatchV1 {
    ops: Vec<StampedV1>,
}

impl From<StampV1> for Stamp {
    fn from(s: StampV1) -> Stamp {
        Stamp {
            user: s.user,
            call: s.call,
            tick: s.now,
            now: s.now,
        }
    }
}

impl From<BatchV1> for Batch {
    fn from(b: BatchV1) -> Batch {
        Batch {
            ops: b
                .ops
                .into_iter()
                .map(|o| Stamped {
                    stamp: o.stamp.into(),
                    op: o.op,
                })
                .collect(),
        }
    }
}
