//! The tdfs datanode: a durable store of block replicas on local disk
//! ([`block_store`]) and the data-transfer protocol that fills and serves it
//! ([`transfer`]): pipelined writes, checksummed reads, replica copies.

pub mod block_store;
pub mod fence;
pub mod metrics;
pub mod transfer;

pub use block_store::{BlockState, BlockStore, ReplicaReader, ReplicaWriter, StoreConfig};
pub use transfer::{handle_stream, replicate, StoreEvent, TransferCtx};
pub mod node;
pub mod scanner;
