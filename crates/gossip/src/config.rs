//! What a gossip member needs to run: who it is, where it listens, whom to
//! join, the cluster key and the protocol's timing.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;
use tdfs_rpc::auth::ClusterKey;
use tdfs_rpc::Connector;

use crate::identity::NodeIdentity;

/// Default timing, tuned on a LAN: kill → every survivor sees the member down
/// in about 1.2–1.4 s.
pub mod defaults {
    use std::time::Duration;

    /// How often each member probes one other member.
    pub const PROBE_PERIOD: Duration = Duration::from_millis(250);
    /// How long to wait for a direct ack before asking others to probe.
    pub const PROBE_RTT: Duration = Duration::from_millis(80);
    /// How long a suspect has to refute before it is declared down.
    pub const SUSPECT_TO_DOWN: Duration = Duration::from_millis(750);
    /// How often pending updates are pushed to random members.
    pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(100);
    /// How many random members each gossip round reaches.
    pub const GOSSIP_FANOUT: usize = 2;
    /// How many members are asked to probe indirectly.
    pub const INDIRECT_PROBES: usize = 3;
    /// Smallest cluster size retransmissions are sized for.
    pub const EXPECTED_MEMBERS: u32 = 32;
    /// How often to retry seeds while no member is known.
    pub const JOIN_RETRY: Duration = Duration::from_millis(500);
    /// How often to re-announce to seeds that are not known alive.
    pub const REANNOUNCE: Duration = Duration::from_secs(5);
    /// How often a datanode re-spreads an unchanged usage record, so that
    /// members that joined later learn it.
    pub const USAGE_REFRESH: Duration = Duration::from_secs(3);
    /// Accepted clock skew, and half the replay memory.
    pub const REPLAY_WINDOW: Duration = Duration::from_secs(30);
    /// Largest datagram sent or accepted, envelope included (under a
    /// 1500-byte Ethernet MTU).
    pub const MAX_PACKET: usize = 1400;
}

/// SWIM timing and sizes. Every member of a cluster should use the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Probe interval; detection time scales with it.
    pub probe_period: Duration,
    /// Direct-ack timeout; must be below `probe_period`.
    pub probe_rtt: Duration,
    /// Suspicion timeout: a bigger one tolerates slow members, a smaller one
    /// detects failures sooner.
    pub suspect_to_down: Duration,
    /// Gossip interval for pending membership updates and usage records.
    pub gossip_interval: Duration,
    /// Members reached per gossip round.
    pub gossip_fanout: usize,
    /// Members asked to probe a member that missed a direct ack.
    pub indirect_probes: usize,
    /// Floor of the cluster size that sizes retransmissions of each update
    /// (≈ 4·log10(n+1)); the actual size is used once larger.
    pub expected_members: u32,
    /// Seed retry interval while isolated (a node may start before its seeds).
    pub join_retry: Duration,
    /// Re-announce interval to seeds not currently alive (heals partitions
    /// and brings back restarted seeds).
    pub reannounce: Duration,
    /// Re-spread interval of an unchanged usage record.
    pub usage_refresh: Duration,
    /// Accepted clock skew between members for authenticated packets.
    pub replay_window: Duration,
    /// Largest datagram, envelope included.
    pub max_packet: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            probe_period: defaults::PROBE_PERIOD,
            probe_rtt: defaults::PROBE_RTT,
            suspect_to_down: defaults::SUSPECT_TO_DOWN,
            gossip_interval: defaults::GOSSIP_INTERVAL,
            gossip_fanout: defaults::GOSSIP_FANOUT,
            indirect_probes: defaults::INDIRECT_PROBES,
            expected_members: defaults::EXPECTED_MEMBERS,
            join_retry: defaults::JOIN_RETRY,
            reannounce: defaults::REANNOUNCE,
            usage_refresh: defaults::USAGE_REFRESH,
            replay_window: defaults::REPLAY_WINDOW,
            max_packet: defaults::MAX_PACKET,
        }
    }
}

impl Timing {
    /// The foca configuration for these timings, given the envelope's size.
    pub(crate) fn foca_config(&self, envelope: usize) -> Result<foca::Config, ConfigError> {
        let nonzero =
            |what: &'static str, n: usize| NonZeroUsize::new(n).ok_or(ConfigError::Zero { what });
        let members = NonZeroU32::new(self.expected_members).ok_or(ConfigError::Zero {
            what: "expected_members",
        })?;
        let mut config = foca::Config::new_lan(members);
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_rtt;
        config.suspect_to_down_after = self.suspect_to_down;
        config.num_indirect_probes = nonzero("indirect_probes", self.indirect_probes)?;
        config.max_packet_size = nonzero("max_packet", self.max_packet.saturating_sub(envelope))?;
        config.notify_down_members = true;
        config.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_interval,
            num_members: nonzero("gossip_fanout", self.gossip_fanout)?,
        });
        config.periodic_announce = Some(foca::PeriodicParams {
            frequency: self.reannounce * 2,
            num_members: NonZeroUsize::MIN,
        });
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: self.reannounce * 2,
            num_members: NonZeroUsize::MIN,
        });
        Ok(config)
    }

    /// Rejects timings foca cannot run with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let durations = [
            ("probe_period", self.probe_period),
            ("probe_rtt", self.probe_rtt),
            ("suspect_to_down", self.suspect_to_down),
            ("gossip_interval", self.gossip_interval),
            ("join_retry", self.join_retry),
            ("reannounce", self.reannounce),
            ("usage_refresh", self.usage_refresh),
            ("replay_window", self.replay_window),
        ];
        for (what, d) in durations {
            if d.is_zero() {
                return Err(ConfigError::Zero { what });
            }
        }
        if self.probe_rtt >= self.probe_period {
            return Err(ConfigError::ProbeRtt {
                rtt: self.probe_rtt,
                period: self.probe_period,
            });
        }
        if !(512..=65_000).contains(&self.max_packet) {
            return Err(ConfigError::PacketSize {
                size: self.max_packet,
            });
        }
        self.foca_config(0).map(|_| ())
    }
}

/// Everything [`crate::start`] and [`crate::GossipCore`] need.
#[derive(Clone, Debug)]
pub struct GossipConfig {
    /// This member; `identity.addr` is what peers send to (the node's
    /// `--addr`). With port 0, [`crate::start`] fills in the bound port.
    pub identity: NodeIdentity,
    /// Local UDP address to bind (usually the same as `identity.addr`).
    pub bind: SocketAddr,
    /// Members to announce to: the metadata nodes. Retried until they answer.
    pub seeds: Vec<SocketAddr>,
    /// The cluster key: when set, every packet is MAC'd and unauthenticated
    /// packets are dropped.
    pub key: Option<ClusterKey>,
    /// Protocol timing; defaults are tuned for a LAN.
    pub timing: Timing,
    /// Data-transfer address spread with a datanode's usage; defaults to
    /// `identity.addr`.
    pub data_addr: Option<SocketAddr>,
    /// The node's connector: every datagram this member sends passes its
    /// link's filters (a test's fault table can cut, drop, delay or
    /// reorder gossip as it does RPC and block streams). Peers are named
    /// by their gossip address, which is their RPC address.
    pub connector: Connector,
}

impl GossipConfig {
    /// A configuration with LAN timing, no key and `bind = identity.addr`.
    pub fn new(identity: NodeIdentity, seeds: Vec<SocketAddr>) -> Self {
        GossipConfig {
            bind: identity.addr,
            identity,
            seeds,
            key: None,
            timing: Timing::default(),
            data_addr: None,
            connector: Connector::direct(),
        }
    }

    /// Checks the identity and the timing.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.identity.id.is_empty() || self.identity.id.len() > 255 {
            return Err(ConfigError::BadId {
                id: self.identity.id.clone(),
            });
        }
        self.timing.validate()
    }
}

/// A configuration gossip cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A duration or count that must be positive is zero.
    #[error("{what} must not be zero")]
    Zero {
        /// The offending field.
        what: &'static str,
    },
    /// foca needs the ack timeout to fit within a probe period.
    #[error("probe_rtt ({rtt:?}) must be < probe_period ({period:?})")]
    ProbeRtt {
        /// The configured probe RTT.
        rtt: Duration,
        /// The configured probe period.
        period: Duration,
    },
    /// The datagram size is unusable.
    #[error("max_packet ({size}) must be within 512..=65000")]
    PacketSize {
        /// The configured size.
        size: usize,
    },
    /// Ids are 1 to 255 bytes.
    #[error("node id {id:?} must be 1 to 255 bytes")]
    BadId {
        /// The offending id.
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    #[test]
    fn defaults_are_valid_and_reach_foca() {
        let timing = Timing::default();
        timing.validate().expect("defaults are valid");
        let foca = timing.foca_config(50).expect("valid");
        assert_eq!(foca.probe_period, Duration::from_millis(250));
        assert_eq!(foca.max_packet_size.get(), 1350);
    }

    #[test]
    fn bad_values_are_named() {
        let timing = Timing {
            probe_rtt: Duration::from_millis(300),
            ..Timing::default()
        };
        let err = timing.validate().unwrap_err();
        assert!(err.to_string().contains("probe_rtt (300ms)"), "{err}");
        let timing = Timing {
            gossip_fanout: 0,
            ..Timing::default()
        };
        assert_eq!(
            timing.validate(),
            Err(ConfigError::Zero {
                what: "gossip_fanout"
            })
        );
        let addr = "127.0.0.1:1".parse().expect("literal");
        let config = GossipConfig::new(NodeIdentity::new("", Role::Meta, addr), vec![]);
        assert!(matches!(config.validate(), Err(ConfigError::BadId { .. })));
    }
}
