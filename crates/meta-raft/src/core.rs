//! A metadata node's two pieces of state and the one place their locks are
//! taken: the replicated namespace (behind a read-write lock, written only
//! by the state machine) and the soft cluster state (behind a mutex). When
//! both are needed they are taken in one order — namespace, then cluster
//! state — so no two paths can deadlock; nothing outside this file touches
//! a lock.

use crate::types::{LogId, StoredMembership};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;
use tdfs_namespace::Namespace;
use tdfs_policy::ClusterState;
use tdfs_rpc::{Clock, EventBus};
use tokio::sync::{watch, Notify};

/// The replicated state as the state machine applied it.
pub struct Replicated {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub ns: Namespace,
}

/// Both states, their locks, and what waiters wait on.
pub struct Core {
    sm: RwLock<Replicated>,
    view: Mutex<ClusterState>,
    /// Wakes whoever waits for a replica report (the write path waits for
    /// a block to be reported before it commits it).
    pub(crate) reported: Notify,
    /// Wakes datanodes' long polls when commands are queued.
    pub(crate) commands: Notify,
    /// The applied index, for read barriers.
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) events: EventBus,
    pub(crate) clock: Clock,
    /// Namespace hashes at every `hash_every`-th applied index.
    pub(crate) hashes: std::sync::Arc<crate::consistency::Hashes>,
    pub(crate) hash_every: u64,
    /// The leader term each datanode was last told of (in an empty command
    /// batch if need be), so that every datanode's fence learns a new
    /// leader's term at once, not only those it happens to give work.
    pub(crate) announced: Mutex<std::collections::HashMap<tdfs_proto::DatanodeId, u64>>,
    /// Each datanode's current poll (a number from `poll_seq`, renewed
    /// when it registers or polls again). A poll that is no longer the
    /// current one (its process was killed and restarted, its client gave
    /// up on it) takes no commands: its answer would be lost with its
    /// connection, and the commands with it.
    pub(crate) polls: Mutex<std::collections::HashMap<tdfs_proto::DatanodeId, u64>>,
    pub(crate) poll_seq: std::sync::atomic::AtomicU64,
    /// Issues the stamps' log ticks while this node leads.
    pub(crate) log_clock: crate::log_clock::LogClock,
}

impl Core {
    /// Makes a new poll (or registration) of `id` the current one and
    /// returns its number; older polls of `id` stop taking commands.
    pub(crate) fn renew_poll(&self, id: &tdfs_proto::DatanodeId) -> u64 {
        let n = 1 + self
            .poll_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
        polls.insert(id.clone(), n);
        drop(polls);
        // Wakes a superseded poll so that it answers now.
        self.commands.notify_waiters();
        n
    }

    /// Whether poll `n` is still `id`'s current one.
    pub(crate) fn current_poll(&self, id: &tdfs_proto::DatanodeId, n: u64) -> bool {
        let polls = self.polls.lock().unwrap_or_else(|e| e.into_inner());
        polls.get(id) == Some(&n)
    }

    pub fn new(
        sm: Replicated,
        view: ClusterState,
        events: EventBus,
        clock: Clock,
        hash_every: u64,
    ) -> Self {
        let applied = sm.last_applied.map_or(0, |l| l.index);
        Core {
            sm: RwLock::new(sm),
            view: Mutex::new(view),
            reported: Notify::new(),
            commands: Notify::new(),
            applied: watch::channel(applied).0,
            events,
            clock,
            hashes: Default::default(),
            hash_every: hash_every.max(1),
            announced: Default::default(),
            polls: Default::default(),
            poll_seq: Default::default(),
            log_clock: Default::default(),
        }
    }

    fn read_sm(&self) -> RwLockReadGuard<'_, Replicated> {
        self.sm.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_sm(&self) -> RwLockWriteGuard<'_, Replicated> {
        self.sm.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_view(&self) -> MutexGuard<'_, ClusterState> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the replicated state.
    pub fn ns<R>(&self, f: impl FnOnce(&Replicated) -> R) -> R {
        f(&self.read_sm())
    }

    /// Reads or changes the soft state; publishes the events it produced.
    pub fn view<R>(&self, f: impl FnOnce(&mut ClusterState) -> R) -> R {
        let (r, events) = {
            let mut v = self.lock_view();
            let r = f(&mut v);
            (r, v.take_events())
        };
        self.publish(events);
        r
    }

    /// Reads the namespace and changes the soft state, in the one order.
    pub fn both<R>(&self, f: impl FnOnce(&Replicated, &mut ClusterState) -> R) -> R {
        let (r, events) = {
            let sm = self.read_sm();
            let mut v = self.lock_view();
            let r = f(&sm, &mut v);
            (r, v.take_events())
        };
        self.publish(events);
        r
    }

    /// Changes the replicated state (the state machine only), then the soft
    /// state, in the one order.
    pub fn apply<R>(&self, f: impl FnOnce(&mut Replicated, &mut ClusterState) -> R) -> R {
        let (r, events, applied) = {
            let mut sm = self.write_sm();
            let mut v = self.lock_view();
            let r = f(&mut sm, &mut v);
            (r, v.take_events(), sm.last_applied.map_or(0, |l| l.index))
        };
        self.applied.send_replace(applied);
        self.publish(events);
        r
    }

    fn publish(&self, events: Vec<tdfs_proto::event::EventKind>) {
        for e in events {
            self.events.publish(e);
        }
    }

    /// Monotonic now, on this node's clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Wall time on this node's clock, ms since the epoch.
    pub fn wall_ms(&self) -> u64 {
        self.clock.wall_ms()
    }

    /// The log tick for a stamp taken now (`crate::log_clock`): on the
    /// monotonic side of the clock seam only.
    pub fn issue_tick(&self) -> u64 {
        let applied = self.read_sm().ns.tick();
        self.log_clock.issue(self.now(), applied)
    }

    /// This node took office: its ticks run from the applied tick on.
    pub fn lead_log_clock(&self) {
        let applied = self.read_sm().ns.tick();
        self.log_clock.lead(self.now(), applied);
    }

    /// The applied index.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }
}
