//! Who a cluster member is: its stable id, role, address and generation.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a member does in the cluster; consumers filter on it (the metadata
/// nodes place blocks only on `Datanode` members).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A metadata (Raft) node; metadata nodes are the gossip seeds.
    Meta,
    /// A datanode; it spreads its [`tdfs_proto::meta::DatanodeUsage`].
    Datanode,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Meta => "meta",
            Role::Datanode => "datanode",
        })
    }
}

/// One incarnation of a cluster member, as foca sees it.
///
/// Foca's `Identity::Addr` is the stable [`id`](Self::id): two identities
/// with the same id are the same node, and the one with the larger
/// [`generation`](Self::generation) wins. A restarted node therefore
/// supersedes its previous incarnation at once, and a node wrongly declared
/// down rejoins by bumping its generation ([`foca::Identity::renew`]).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Stable across restarts: `"meta-1"` for a metadata node, the datanode's
    /// persistent id for a datanode. Never empty (the empty id is reserved for
    /// announcing to a seed whose id is not known yet).
    pub id: String,
    /// Lets consumers tell metadata nodes from datanodes without a lookup.
    pub role: Role,
    /// Where the member receives gossip (UDP) and RPC (TCP on the same port).
    pub addr: SocketAddr,
    /// Orders incarnations of one id; bigger wins. Start it from the wall
    /// clock ([`NodeIdentity::new`]) so that a restart always beats the
    /// incarnation that ran before it.
    pub generation: u64,
}

impl NodeIdentity {
    /// An identity whose generation is the current wall-clock time in
    /// microseconds, so it wins over any earlier run of the same node.
    pub fn new(id: impl Into<String>, role: Role, addr: SocketAddr) -> Self {
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2))
            .unwrap_or(1);
        NodeIdentity {
            id: id.into(),
            role,
            addr,
            generation,
        }
    }

    /// A stand-in for a seed known only by its address: its id is empty, and
    /// the receiving core treats an `Announce` addressed to it as addressed to
    /// itself.
    pub(crate) fn seed_placeholder(addr: SocketAddr) -> Self {
        NodeIdentity {
            id: String::new(),
            role: Role::Meta,
            addr,
            generation: 0,
        }
    }

    /// Whether this is a [`Self::seed_placeholder`].
    pub(crate) fn is_placeholder(&self) -> bool {
        self.id.is_empty()
    }
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}({}@{}#{})",
            self.id, self.role, self.addr, self.generation
        )
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Longest id [`IdKey`] keeps inline (datanode ids are 16 hex digits).
const INLINE_ID: usize = 23;

/// foca's `Identity::Addr` for [`NodeIdentity`]: the stable id, in a form
/// that is cheap to produce and compare. foca scans its whole member list,
/// calling `addr()` twice per member, for every update it applies, so a
/// `String` clone there would dominate the cost in large clusters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum IdKey {
    /// Ids up to 23 bytes, zero-padded (the length keeps them distinct).
    Inline {
        /// Length of the id.
        len: u8,
        /// The id's bytes, then zeros.
        bytes: [u8; INLINE_ID],
    },
    /// Longer ids.
    Heap(String),
}

impl IdKey {
    /// The key of `id`.
    pub fn of(id: &str) -> Self {
        if id.len() <= INLINE_ID {
            let mut bytes = [0u8; INLINE_ID];
            bytes[..id.len()].copy_from_slice(id.as_bytes());
            IdKey::Inline {
                len: id.len() as u8,
                bytes,
            }
        } else {
            IdKey::Heap(id.to_owned())
        }
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = IdKey;

    fn renew(&self) -> Option<Self> {
        Some(NodeIdentity {
            generation: self.generation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> IdKey {
        IdKey::of(&self.id)
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn addr() -> SocketAddr {
        "127.0.0.1:7000".parse().expect("literal address")
    }

    #[test]
    fn renewed_identity_wins_and_keeps_the_stable_id() {
        let old = NodeIdentity::new("dn-1", Role::Datanode, addr());
        let new = old.renew().expect("renew always yields an identity");
        assert_eq!(old.addr(), new.addr());
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn a_restart_beats_the_previous_run() {
        let first = NodeIdentity::new("meta-1", Role::Meta, addr());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = NodeIdentity::new("meta-1", Role::Meta, addr());
        assert!(second.win_addr_conflict(&first));
    }

    #[test]
    fn id_keys_are_equal_exactly_when_ids_are() {
        let long = "x".repeat(60);
        let ids = [
            "",
            "a",
            "a\0",
            "ab",
            "meta-1",
            long.as_str(),
            &long[..59],
            &long[..23],
            &long[..24],
        ];
        for a in ids {
            for b in ids {
                assert_eq!(IdKey::of(a) == IdKey::of(b), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn placeholder_is_recognised() {
        assert!(NodeIdentity::seed_placeholder(addr()).is_placeholder());
        assert!(!NodeIdentity::new("x", Role::Meta, addr()).is_placeholder());
    }
}
