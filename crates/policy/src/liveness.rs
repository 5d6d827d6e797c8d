//! Liveness of a datanode as a metadata node sees it.

use std::time::{Duration, Instant};

/// Liveness of a datanode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Liveness {
    Live,
    /// Reported down (or silent): no new blocks go to it, its replicas
    /// still count, so a node that flaps costs nothing.
    Stale,
    /// Gone for longer than the grace period: its replicas do not count.
    Dead,
}

impl Liveness {
    pub fn as_str(&self) -> &'static str {
        match self {
            Liveness::Live => "live",
            Liveness::Stale => "stale",
            Liveness::Dead => "dead",
        }
    }
}

/// Timing of liveness decisions.
#[derive(Clone, Copy, Debug)]
pub struct LivenessConfig {
    /// Silence after which a datanode is stale (only without gossip).
    pub stale_after: Duration,
    /// Time down (or silent) after which a datanode is dead: the grace
    /// period before its replicas are copied elsewhere.
    pub dead_after: Duration,
    /// Liveness comes from gossip alone; silence on the RPC channel means
    /// nothing (datanodes only call when they have something to say).
    pub gossip: bool,
}

/// Liveness from what is known of a node: when gossip declared it down,
/// and when it last called.
pub fn judge(
    cfg: &LivenessConfig,
    gossip_down: Option<Instant>,
    last_contact: Instant,
    now: Instant,
) -> Liveness {
    if let Some(since) = gossip_down {
        return if now.saturating_duration_since(since) >= cfg.dead_after {
            Liveness::Dead
        } else {
            Liveness::Stale
        };
    }
    if cfg.gossip {
        return Liveness::Live;
    }
    let quiet = now.saturating_duration_since(last_contact);
    if quiet >= cfg.dead_after {
        Liveness::Dead
    } else if quiet >= cfg.stale_after {
        Liveness::Stale
    } else {
        Liveness::Live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let g = LivenessConfig {
            stale_after: s(3),
            dead_after: s(30),
            gossip: true,
        };
        let ng = LivenessConfig { gossip: false, ..g };
        // (config, down since, last contact, now, expected)
        let cases = [
            (g, None, t0, t0 + s(100), Liveness::Live),
            (g, Some(t0), t0, t0 + s(1), Liveness::Stale),
            (g, Some(t0), t0, t0 + s(30), Liveness::Dead),
            (ng, None, t0, t0 + s(1), Liveness::Live),
            (ng, None, t0, t0 + s(3), Liveness::Stale),
            (ng, None, t0, t0 + s(31), Liveness::Dead),
            (ng, Some(t0), t0 + s(5), t0 + s(5), Liveness::Stale),
        ];
        for (i, (c, down, last, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(judge(&c, down, last, now), want, "case {i}");
        }
    }
}
