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
//!
//! ```no_run
//! use tdfs_gossip::{start, DatanodeUsage, GossipConfig, MemberEvent, NodeIdentity, Role};
//!
//! # async fn run(key: tdfs_gossip::ClusterKey) -> Result<(), tdfs_gossip::GossipError> {
//! let addr = "10.0.0.7:9000".parse().expect("address");
//! let meta = vec!["10.0.0.1:9000".parse().expect("address")];
//! let mut config = GossipConfig::new(NodeIdentity::new("3fa2c4d1e5b69780", Role::Datanode, addr), meta);
//! config.key = Some(key);
//! let gossip = start(config).await?;
//! gossip.set_usage(DatanodeUsage { capacity: 1 << 40, used: 0, pending: 0, blocks: 0 });
//! let mut events = gossip.subscribe();
//! while let Ok(event) = events.recv().await {
//!     if let MemberEvent::Down(who) = event {
//!         println!("{} is down", who.id);
//!     }
//! }
//! gossip.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod auth;
mod codec;
mod config;
mod core;
mod identity;
mod member;
mod service;
mod suspicion;
mod table;
mod timers;
mod usage;

pub use crate::codec::{BincodeCodec, CodecError};
pub use crate::config::{defaults, ConfigError, GossipConfig, Timing};
pub use crate::core::GossipCore;
pub use crate::identity::{IdKey, NodeIdentity, Role};
pub use crate::member::{GossipStats, MemberEvent, MemberInfo, MemberState};
pub use crate::service::{start, start_on, GossipError, GossipHandle, MemberSnapshot, UsageSetter};
pub use crate::usage::{UsageError, UsageRecord, UsageVersion};
pub use tdfs_proto::meta::DatanodeUsage;
pub use tdfs_rpc::auth::ClusterKey;
