//! The metadata service: openraft type configuration, durable log store,
//! namespace state machine, Raft network, RPC server and leader duties.

pub mod balancer;
pub mod cluster;
pub mod command;
pub mod config;
pub mod data_ops;
pub mod log_store;
pub mod metrics;
pub mod namespace;
pub mod network;
pub mod node;
pub mod placement;
pub mod policy;
pub mod replication;
pub mod retry;
pub mod service;
pub mod state_machine;
pub mod types;

pub use config::MetaConfig;
pub use node::{start, MetaHandle, MetaNode};
