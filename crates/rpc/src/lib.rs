//! Framed, multiplexed, key-authenticated connections over TCP.
//!
//! Every connection starts with a handshake (protocol version, and with a
//! cluster key a mutual HMAC challenge-response), then carries frames of
//! [`Envelope`]s: many calls in flight at once on one socket, each with an id
//! and a deadline. A connection can instead become a raw stream after the
//! handshake (the datanodes' block transfer).

pub mod auth;
pub mod bugs;
pub mod client;
pub mod clock;
pub mod connector;
pub mod events;
pub mod frame;
pub mod handshake;
pub mod random;
pub mod server;
pub mod session;
pub mod stream;

pub use auth::ClusterKey;
pub use client::{RpcClient, RpcError};
pub use clock::Clock;
pub use connector::{Connector, FaultNet, Link, Sel, Verdict};
pub use events::EventBus;
pub use random::{env_seed, run_seed, Random};
pub use server::{serve, Handler, Peer, ServerConfig, Shutdown};
pub use session::{FrameMac, SessionKeys};
pub use stream::{LinkReadHalf, LinkStream, LinkWriteHalf};

use serde::{Deserialize, Serialize};
use tdfs_proto::FsError;

/// One call on a multiplexed connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// Chosen by the caller, echoed in the reply.
    pub id: u64,
    /// Milliseconds the caller will wait; the server drops work past it.
    pub deadline_ms: u32,
    pub body: T,
}

/// The reply to an [`Envelope`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply<T> {
    pub id: u64,
    pub result: Result<T, FsError>,
}

/// What a connection carries after the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Channel {
    /// Multiplexed request/response frames.
    Rpc,
    /// A raw stream handed to the handler (bulk data).
    Stream,
}
