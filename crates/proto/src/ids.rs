//! Identifiers that cross the wire.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A metadata node's Raft id, as given by `--id`.
pub type MetaId = u64;

/// A block's cluster-wide id, allocated by the Raft state machine.
pub type BlockId = u64;

/// A datanode's stable id, generated once and kept in its data directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DatanodeId(pub String);

impl fmt::Display for DatanodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies one logical mutating call so that a retry after a failover is
/// answered from the retry cache instead of being applied twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// Random per client process.
    pub client: u64,
    /// Increases with every logical call of that client; retries reuse it.
    pub seq: u64,
}
