//! Cluster membership and liveness for tdfs: every metadata node and datanode
//! is a SWIM member ([foca]); datanodes also spread their usage through it,
//! so the metadata nodes learn utilization without a heartbeat RPC per
//! datanode.
//!
//! - [`GossipCore`] is the sans-IO member (foca, packet authentication, seed
//!   announcing, usage records, a member table) driven with explicit time:
//!   tests run whole clusters of them on a simulated network.
//! - [`start`] / [`start_on`] run one on a UDP socket in a tokio task and
//!   return a [`GossipHandle`].
//!
//! With a cluster key every datagram carries an HMAC-SHA256 under the key, a
//! timestamp and a nonce ([`auth`]); members without the key are ignored.

pub mod auth;
mod codec;
mod config;
mod core;
mod error;
mod identity;
mod member;
mod service;
mod table;
mod timers;
mod usage;

pub use crate::codec::{BincodeCodec, CodecError};
pub use crate::config::{defaults, ConfigError, GossipConfig, Timing};
pub use crate::core::GossipCore;
pub use crate::error::GossipError;
pub use crate::identity::{IdKey, NodeIdentity, Role};
pub use crate::member::{GossipStats, MemberEvent, MemberInfo, MemberState};
pub use crate::service::{start, start_on, GossipHandle, MemberSnapshot};
pub use crate::usage::{UsageError, UsageRecord, UsageVersion};
pub use tdfs_proto::meta::DatanodeUsage;
pub use tdfs_rpc::auth::ClusterKey;
