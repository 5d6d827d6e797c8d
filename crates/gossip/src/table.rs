//! The member table: foca's view plus when each state last changed, turned
//! into [`MemberInfo`] rows and [`MemberEvent`]s.

use foca::{Member, OwnedNotification};
use std::collections::HashMap;
use std::time::Instant;
use tracing::debug;

use crate::identity::NodeIdentity;
use crate::member::{MemberEvent, MemberInfo, MemberState};
use crate::usage::UsageBook;

/// What this member last reported about another.
#[derive(Debug)]
struct Tracked {
    /// Newest incarnation seen.
    identity: NodeIdentity,
    /// State as of the last notification or refresh.
    state: MemberState,
    /// When `state` last changed.
    last_change: Instant,
}

/// Every member known, by stable id.
#[derive(Debug, Default)]
pub(crate) struct MemberTable {
    /// Entries by stable id.
    entries: HashMap<String, Tracked>,
}

impl MemberTable {
    /// Records a foca notification; returns the event users should see.
    /// `later` are the notifications that follow it in the same batch.
    pub(crate) fn on_notification(
        &mut self,
        note: &OwnedNotification<NodeIdentity>,
        later: &[OwnedNotification<NodeIdentity>],
        now: Instant,
    ) -> Option<MemberEvent> {
        match note {
            OwnedNotification::MemberUp(id) => {
                self.track(id, MemberState::Alive, now);
                Some(MemberEvent::Up(id.clone()))
            }
            OwnedNotification::MemberDown(id) => {
                self.track(id, MemberState::Down, now);
                Some(MemberEvent::Down(id.clone()))
            }
            OwnedNotification::Rename(old, new) => {
                debug!(%old, %new, "member renamed");
                // foca follows a rename with Up or Down when liveness changed.
                let settled = later.iter().any(|n| match n {
                    OwnedNotification::MemberUp(x) | OwnedNotification::MemberDown(x) => {
                        x.id == new.id
                    }
                    _ => false,
                });
                let was_active = self
                    .entries
                    .get(&new.id)
                    .is_some_and(|t| t.state != MemberState::Down);
                if let Some(tracked) = self.entries.get_mut(&new.id) {
                    tracked.identity = new.clone();
                }
                if settled || !was_active {
                    return None;
                }
                // Restarted before anyone noticed: still news to users.
                self.track(new, MemberState::Alive, now);
                Some(MemberEvent::Up(new.clone()))
            }
            _ => None,
        }
    }

    /// Catches up with states foca does not notify (Suspect) and members it
    /// learnt about only as down.
    pub(crate) fn refresh<'a>(
        &mut self,
        members: impl Iterator<Item = &'a Member<NodeIdentity>>,
        now: Instant,
    ) {
        for member in members {
            let state = match member.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down => MemberState::Down,
            };
            self.track(member.id(), state, now);
        }
    }

    /// The table's rows, sorted by id, with usage from `book`.
    pub(crate) fn rows(&self, book: &UsageBook) -> Vec<MemberInfo> {
        let mut rows: Vec<MemberInfo> = self
            .entries
            .values()
            .map(|t| {
                let record = book.get(&t.identity.id);
                MemberInfo {
                    identity: t.identity.clone(),
                    state: t.state,
                    usage: record.map(|r| r.usage),
                    data_addr: record.map(|r| r.data_addr),
                    last_change: t.last_change,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.identity.id.cmp(&b.identity.id));
        rows
    }

    fn track(&mut self, id: &NodeIdentity, state: MemberState, now: Instant) {
        let tracked = self
            .entries
            .entry(id.id.clone())
            .or_insert_with(|| Tracked {
                identity: id.clone(),
                state,
                last_change: now,
            });
        if tracked.state != state {
            tracked.state = state;
            tracked.last_change = now;
        }
        if tracked.identity != *id {
            tracked.identity = id.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use std::time::Duration;

    fn ident(gen: u64) -> NodeIdentity {
        NodeIdentity {
            id: "dn-1".into(),
            role: Role::Datanode,
            addr: "127.0.0.1:9".parse().expect("literal"),
            generation: gen,
        }
    }

    #[test]
    fn up_down_and_silent_restart() {
        let t0 = Instant::now();
        let mut table = MemberTable::default();
        let up = OwnedNotification::MemberUp(ident(1));
        assert_eq!(
            table.on_notification(&up, &[], t0),
            Some(MemberEvent::Up(ident(1)))
        );
        // A restart noticed before the old incarnation was declared down.
        let rename = OwnedNotification::Rename(ident(1), ident(2));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            table.on_notification(&rename, &[], t1),
            Some(MemberEvent::Up(ident(2)))
        );
        let down = OwnedNotification::MemberDown(ident(2));
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            table.on_notification(&down, &[], t2),
            Some(MemberEvent::Down(ident(2)))
        );
        // Back from down: foca sends Rename then MemberUp; one Up event only.
        let rename = OwnedNotification::Rename(ident(2), ident(3));
        let up = OwnedNotification::MemberUp(ident(3));
        assert_eq!(
            table.on_notification(&rename, std::slice::from_ref(&up), t2),
            None
        );
        let rows = table.rows(&UsageBook::default());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].identity, ident(3));
        assert_eq!(rows[0].state, MemberState::Down);
        assert_eq!(rows[0].last_change, t2);
    }
}
