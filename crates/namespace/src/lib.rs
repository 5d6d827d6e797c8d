//! The tdfs namespace, pure: the inode tree and its operations, permissions,
//! leases, the retry cache, and the log operations ([`LogOp`]) the Raft
//! state machine applies. No I/O, no clock, no async: time arrives in each
//! operation's [`Stamp`], so every replica applying the same log reaches
//! the same state.
//!
//! Memory is the design constraint: tens of millions of inodes per
//! metadata node. Inodes live in a paged slab shared copy-on-write
//! ([`slab`]), directories keep sorted child slots in chunks
//! ([`children`]) and the usage of their subtree, names are inline up to 24
//! bytes, users and groups are interned.

pub mod acl;
pub mod children;
pub mod compat;
mod dispatch;
pub mod edit;
pub mod file_ops;
pub mod inode;
mod inspect;
mod link;
pub mod ns;
pub mod op;
mod perm;
pub mod persist;
pub mod quota;
pub mod read;
pub mod retry;
mod side;
pub mod slab;
pub mod snapshot;
pub mod strings;
mod tree_ops;
pub mod xattr;

pub use edit::{PendingTruncate, Truncation};
pub use file_ops::check_file_params;
pub use ns::{
    DatanodeRecord, Lease, Namespace, INLINE_FREE, MAX_BLOCK_SIZE, MAX_DIR_ITEMS, MAX_REPLICATION,
    MIN_BLOCK_SIZE,
};
pub use op::{
    AdminState, Batch, LogOp, NsEvent, Outcome, Stamp, Stamped, FORMAT_VERSION,
    PREVIOUS_FORMAT_VERSION,
};
pub use persist::{Frozen, SnapshotError};
pub use read::{BlockRef, Listing, OpenFile, Visit, Walk};
pub use slab::InodeId;

#[cfg(test)]
mod tests;
