//! The tdfs datanode: a durable store of block replicas on a local disk
//! ([`block_store`], on the [`tdfs_disk::Disk`] seam) and the server side of
//! the data-transfer protocol that fills and serves it ([`transfer`], the
//! protocol itself being [`tdfs_transfer`]): pipelined writes, checksummed
//! reads, replica copies; [`hdfs`] opens the store to HDFS's
//! DataTransferProtocol (`--hdfs-addr`). [`node`] is the daemon loop (registration,
//! reports, the leader's commands), [`scanner`] the integrity scanner.
//!
//! With the `failpoints` feature, the crash points listed in
//! [`block_store::failpoints`] can be configured through the `fail` crate
//! (tests crash an in-memory disk there); without it they compile to
//! nothing.

/// A named crash point (see [`block_store::failpoints`]): with the
/// `failpoints` feature, `fail::cfg(name, "return")` makes the enclosing
/// function fail here with an I/O error, and `fail::cfg_callback` runs a
/// callback here (a test crashes its disk). Nothing without the feature.
/// Defined before the modules, so that they see it.
macro_rules! failpoint {
    ($name:expr) => {
        #[cfg(not(feature = "failpoints"))]
        let _ = $name;
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| Err(std::io::Error::other(format!(
            "failpoint {}",
            $name
        ))
        .into()));
    };
}

pub mod block_store;
mod commands;
pub mod fence;
pub mod hdfs;
pub mod metrics;
pub mod node;
mod report;
pub mod scanner;
pub mod transfer;

pub use block_store::{
    BlockState, BlockStore, Check, Deleted, ReplicaReader, ReplicaWriter, StoreConfig,
};
pub use transfer::{handle_stream, replicate, StoreEvent, TransferCtx};
