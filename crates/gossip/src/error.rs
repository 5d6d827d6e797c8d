//! Errors of starting and running the gossip service.

use std::net::SocketAddr;

use crate::config::ConfigError;

/// Why gossip could not start.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    /// The configuration is unusable; nothing was started.
    #[error("invalid gossip configuration: {0}")]
    Config(#[from] ConfigError),
    /// The UDP port is taken or not ours; nothing was started.
    #[error("cannot bind gossip UDP socket {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The socket failed.
    #[error("gossip socket: {0}")]
    Io(#[from] std::io::Error),
}
