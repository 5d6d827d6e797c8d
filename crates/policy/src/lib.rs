//! The leader's block policies over the cluster's soft state, pure: no
//! I/O, no clock (time comes in as arguments), no async.
//!
//! [`ClusterState`] holds what a metadata node knows beyond the namespace —
//! datanodes and their liveness, the replica map, and on the leader its
//! promises, copies and deletions in flight — and keeps the block policies'
//! work queues up to date as namespace changes, reports and gossip arrive
//! ([`blocks`]). [`ClusterState::round`] turns the queues into datanode
//! commands with the pure planners: [`placement`], [`replication`]
//! (re-replication and excess removal), [`balancer`], and decommission
//! progress; [`leases`] decides how to close a file whose writer went away,
//! [`truncate`] drives the block recovery of a truncate.

pub mod balancer;
pub mod blocks;
pub mod leases;
pub mod liveness;
pub mod nodes;
pub mod placement;
pub mod reads;
pub mod replicas;
pub mod replication;
pub mod round;
pub mod state;
pub mod truncate;

pub use blocks::{Class, Health};
pub use leases::Recovery;
pub use liveness::{Liveness, LivenessConfig};
pub use reads::BlockHealth;
pub use round::RoundOutput;
pub use state::{ClusterState, PolicyConfig};
pub use truncate::TruncateStep;

#[cfg(test)]
mod tests;
