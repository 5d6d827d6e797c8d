//! The metadata service: openraft's type configuration, the durable log
//! store, the state machine over the pure namespace, the Raft network, and
//! the node — its operations (one core behind every protocol front end),
//! the datanode protocol, administration and the leader's duties.

pub mod admin;
pub mod config;
pub mod consistency;
pub mod core;
pub mod datanodes;
pub mod failpoints;
mod features;
pub mod gossip;
pub mod leader;
pub mod log_clock;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod node;
pub mod ops;
pub mod service;
pub mod snap_file;
mod snap_policy;
pub mod snapshot;
pub mod state_machine;
mod trash;
mod truncate;
pub mod types;

pub use config::MetaConfig;
pub use node::{start, MetaHandle, MetaNode, Seams};
pub use tdfs_rpc::bugs;
