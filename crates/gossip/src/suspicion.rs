//! Local suspicion timers, which foca lacks.
//!
//! foca starts a suspect→down timer only on the member whose probe failed;
//! everyone else learns "suspect" and then "down" by gossip. A member that
//! misses the "down" update (each update is retransmitted a bounded number of
//! times, so in a large cluster a few members occasionally do) keeps the dead
//! member as Suspect until it happens to probe it itself: up to a full round
//! of the member list, minutes at 1,000 members.
//!
//! So every member watches its suspects: once one has been suspect for
//! `suspect_to_down`, it sends it an `Announce` (any live member answers,
//! refreshing its incarnation or revealing a newer generation); if nothing
//! at all is heard from it within one more probe period, it applies "down"
//! itself, which also spreads the news again.

use foca::{Incarnation, Member, State};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::identity::NodeIdentity;

/// One member under suspicion.
#[derive(Debug)]
struct Suspicion {
    /// The suspected incarnation: a refutation changes it.
    identity: NodeIdentity,
    /// The suspected member's incarnation when first noticed.
    incarnation: Incarnation,
    /// When this member noticed the suspicion.
    noticed: Instant,
    /// When the verifying `Announce` went out.
    verified_at: Option<Instant>,
    /// Whether any packet from the suspect arrived after `verified_at`.
    heard: bool,
}

/// What the core should do about its suspects now.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SuspicionActions {
    /// Send an `Announce` to each.
    pub(crate) verify: Vec<NodeIdentity>,
    /// Declare each down.
    pub(crate) declare_down: Vec<Member<NodeIdentity>>,
}

/// Suspects by stable id.
#[derive(Debug, Default)]
pub(crate) struct Suspicions {
    entries: HashMap<String, Suspicion>,
}

impl Suspicions {
    /// Notes a packet from `id`: evidence that it is alive.
    pub(crate) fn heard_from(&mut self, id: &str) {
        if let Some(s) = self.entries.get_mut(id) {
            if s.verified_at.is_some() {
                s.heard = true;
            }
        }
    }

    /// Reconciles with foca's member list and decides what to do. `wait` is
    /// the suspicion timeout, `grace` how long a verified suspect may stay
    /// silent.
    pub(crate) fn review<'a>(
        &mut self,
        members: impl Iterator<Item = &'a Member<NodeIdentity>>,
        now: Instant,
        wait: Duration,
        grace: Duration,
    ) -> SuspicionActions {
        let mut current: HashMap<String, Suspicion> = HashMap::new();
        for member in members.filter(|m| m.state() == State::Suspect) {
            let id = member.id();
            let kept = self
                .entries
                .remove(&id.id)
                .filter(|s| s.identity == *id && s.incarnation == member.incarnation());
            let entry = kept.unwrap_or_else(|| Suspicion {
                identity: id.clone(),
                incarnation: member.incarnation(),
                noticed: now,
                verified_at: None,
                heard: false,
            });
            current.insert(id.id.clone(), entry);
        }
        self.entries = current;
        let mut actions = SuspicionActions::default();
        for s in self.entries.values_mut() {
            match s.verified_at {
                None if now.duration_since(s.noticed) >= wait => {
                    s.verified_at = Some(now);
                    actions.verify.push(s.identity.clone());
                }
                Some(at) if !s.heard && now.duration_since(at) >= grace => {
                    actions.declare_down.push(Member::new(
                        s.identity.clone(),
                        s.incarnation,
                        State::Down,
                    ));
                }
                _ => {}
            }
        }
        // Deterministic order, for replayable simulations.
        actions.verify.sort_by(|a, b| a.id.cmp(&b.id));
        actions
            .declare_down
            .sort_by(|a, b| a.id().id.cmp(&b.id().id));
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    fn suspect(inc: Incarnation) -> Member<NodeIdentity> {
        let id = NodeIdentity {
            id: "dn-1".into(),
            role: Role::Datanode,
            addr: "127.0.0.1:9".parse().expect("literal"),
            generation: 1,
        };
        Member::new(id, inc, State::Suspect)
    }

    const WAIT: Duration = Duration::from_millis(750);
    const GRACE: Duration = Duration::from_millis(250);

    #[test]
    fn silent_suspect_is_verified_then_declared_down() {
        let t0 = Instant::now();
        let mut s = Suspicions::default();
        let list = [suspect(3)];
        assert_eq!(
            s.review(list.iter(), t0, WAIT, GRACE),
            SuspicionActions::default()
        );
        let a = s.review(list.iter(), t0 + WAIT, WAIT, GRACE);
        assert_eq!(a.verify.len(), 1);
        let a = s.review(list.iter(), t0 + WAIT + GRACE, WAIT, GRACE);
        assert_eq!(a.declare_down.len(), 1);
        assert_eq!(a.declare_down[0].incarnation(), 3);
    }

    #[test]
    fn a_suspect_that_answers_or_refutes_is_spared() {
        let t0 = Instant::now();
        let mut s = Suspicions::default();
        let list = [suspect(3)];
        s.review(list.iter(), t0, WAIT, GRACE);
        s.review(list.iter(), t0 + WAIT, WAIT, GRACE);
        s.heard_from("dn-1");
        let a = s.review(list.iter(), t0 + WAIT + GRACE, WAIT, GRACE);
        assert!(a.declare_down.is_empty());
        // A new suspicion (higher incarnation) restarts the clock.
        let list = [suspect(4)];
        let a = s.review(list.iter(), t0 + 2 * WAIT, WAIT, GRACE);
        assert_eq!(a, SuspicionActions::default());
        // Refuted: no longer suspect, forgotten.
        s.review(std::iter::empty(), t0 + 3 * WAIT, WAIT, GRACE);
        assert!(s.entries.is_empty());
    }
}
