//! The metadata service: openraft type configuration, durable log store,
//! namespace state machine, Raft network, RPC server and leader duties.

pub mod command;
pub mod log_store;
pub mod namespace;
pub mod retry;
pub mod state_machine;
pub mod types;
