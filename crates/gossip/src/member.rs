//! What users of the crate see: member events, the member table and counters.

use std::net::SocketAddr;
use std::time::Instant;
use tdfs_proto::meta::DatanodeUsage;

use crate::identity::NodeIdentity;

/// A change in the cluster as seen by this member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberEvent {
    /// The member joined, came back, or restarted with a newer generation.
    Up(NodeIdentity),
    /// The cluster declared the member down (crashed, partitioned or left).
    Down(NodeIdentity),
    /// A datanode (by stable id) spread newer usage figures.
    Usage(String, DatanodeUsage),
}

/// Liveness of a member in this member's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; declared down unless it refutes in time.
    Suspect,
    /// Declared down; a restart with a newer generation brings it back.
    Down,
}

/// One row of the member table (the local member is not listed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// The member's newest known incarnation.
    pub identity: NodeIdentity,
    /// Its liveness.
    pub state: MemberState,
    /// The newest usage it spread (datanodes only).
    pub usage: Option<DatanodeUsage>,
    /// The data-transfer address spread with its usage (datanodes only).
    pub data_addr: Option<SocketAddr>,
    /// When `state` last changed here (Suspect is noticed at most one probe
    /// period late); consumers derive "stale" and "dead" from it.
    pub last_change: Instant,
}

/// Packet and error counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Datagrams handed to the network.
    pub sent_packets: u64,
    /// Bytes of those datagrams, envelope included.
    pub sent_bytes: u64,
    /// Datagrams received, valid or not.
    pub received_packets: u64,
    /// Bytes of those datagrams.
    pub received_bytes: u64,
    /// Dropped: not a gossip packet, or too big.
    pub dropped_malformed: u64,
    /// Dropped: no MAC where one is required, or a MAC where no key is set.
    pub dropped_unauthenticated: u64,
    /// Dropped: wrong key or tampered.
    pub dropped_bad_mac: u64,
    /// Dropped: timestamp outside the replay window.
    pub dropped_stale: u64,
    /// Dropped: nonce seen before, or the nonce cache is full.
    pub dropped_replay: u64,
    /// Authenticated packets foca rejected (bad encoding, protocol errors).
    pub foca_errors: u64,
    /// Datagrams the connector's fault filters dropped or cut before
    /// sending (tests only; always 0 on a direct connector).
    pub filtered_out: u64,
}
