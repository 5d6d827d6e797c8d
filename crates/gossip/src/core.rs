//! The sans-IO gossip member: foca plus authentication, seeds, usage records
//! and a member table, driven by explicit calls with explicit time.
//!
//! Whoever drives it (the tokio runtime in [`crate::start`], or a simulated
//! network in tests) feeds it datagrams with [`GossipCore::handle_data`],
//! calls [`GossipCore::tick`] at [`GossipCore::next_deadline`], and drains
//! [`GossipCore::poll_transmit`] and [`GossipCore::poll_event`].

use bytes::Bytes;
use foca::{AccumulatingRuntime, Foca, Header, Message, OwnedNotification};
use rand_foca::rngs::SmallRng;
use rand_foca::{Rng, RngExt, SeedableRng};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tdfs_proto::meta::DatanodeUsage;
use tracing::{debug, info, trace};

use crate::auth::{PacketAuth, PacketError};
use crate::codec::BincodeCodec;
use crate::config::{ConfigError, GossipConfig, Timing};
use crate::identity::{NodeIdentity, Role};
use crate::member::{GossipStats, MemberEvent, MemberInfo};
use crate::suspicion::Suspicions;
use crate::table::MemberTable;
use crate::timers::{CoreTimer, TimerQueue};
use crate::usage::{SharedBook, UsageHandler, UsageRecord, UsageVersion};

type Swim = Foca<NodeIdentity, BincodeCodec, SmallRng, UsageHandler>;

/// Maps the monotonic clock the core runs on to the wall clock that
/// authenticated packets are stamped with.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    /// A monotonic instant…
    at: Instant,
    /// …and the wall-clock milliseconds since the Unix epoch at that instant.
    wall_ms: u64,
}

impl WallClock {
    fn new(at: Instant, wall: SystemTime) -> Self {
        let wall_ms = wall
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        WallClock { at, wall_ms }
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        match now.checked_duration_since(self.at) {
            Some(ahead) => self.wall_ms.saturating_add(ahead.as_millis() as u64),
            None => self
                .wall_ms
                .saturating_sub(self.at.duration_since(now).as_millis() as u64),
        }
    }
}

/// One gossip member without I/O. See the module docs.
pub struct GossipCore {
    /// The SWIM state machine.
    foca: Swim,
    /// Where foca leaves its output until [`Self::drain`] takes it.
    runtime: AccumulatingRuntime<NodeIdentity>,
    /// foca's timers and ours, in deadline order.
    timers: TimerQueue,
    /// Seals outgoing and opens incoming datagrams.
    auth: PacketAuth,
    /// Nonces for sealed packets (only uniqueness matters).
    nonce_rng: SmallRng,
    /// Addresses announced to until they are alive members.
    seeds: Vec<SocketAddr>,
    /// Timing, for the core's own periodic work.
    timing: Timing,
    /// Spread with our usage record.
    data_addr: SocketAddr,
    /// Newest usage record per datanode (shared with foca's handler).
    book: SharedBook,
    /// Our own record, once [`Self::set_usage`] was called.
    own_usage: Option<UsageRecord>,
    /// First generation of this process: the epoch of our usage versions.
    usage_epoch: u64,
    /// Only the announce round with this number is live (older are stale).
    announce_round: u64,
    /// Likewise for usage refreshes.
    usage_round: u64,
    /// The member table behind [`Self::members`].
    table: MemberTable,
    /// Our own suspicion timers (foca only runs the prober's).
    suspicions: Suspicions,
    /// foca's current configuration (retransmissions follow cluster size).
    foca_config: foca::Config,
    /// Sealed datagrams to send.
    outbox: VecDeque<(SocketAddr, Bytes)>,
    /// Events not yet polled.
    events: VecDeque<MemberEvent>,
    /// Counters.
    stats: GossipStats,
    /// Monotonic → wall-clock mapping for packet timestamps.
    clock: WallClock,
    /// Largest datagram accepted.
    max_packet: usize,
}

impl GossipCore {
    /// A member that will announce to `config.seeds` on its first
    /// [`tick`](Self::tick). `seed` makes its randomness replayable; `now`
    /// and `wall` are the same moment on the monotonic and the wall clock.
    pub fn new(
        config: &GossipConfig,
        seed: u64,
        now: Instant,
        wall: SystemTime,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let auth = PacketAuth::new(
            config.key.clone(),
            config.timing.replay_window.as_millis() as u64,
        );
        let foca_config = config.timing.foca_config(auth.overhead())?;
        let book = SharedBook::default();
        let handler = UsageHandler::new(book.clone(), config.identity.id.clone());
        let foca = Foca::with_custom_broadcast(
            config.identity.clone(),
            foca_config.clone(),
            SmallRng::seed_from_u64(seed),
            BincodeCodec,
            handler,
        );
        let mut timers = TimerQueue::default();
        timers.push(now, CoreTimer::Announce(0));
        timers.push(now + config.timing.probe_period, CoreTimer::Housekeeping);
        Ok(GossipCore {
            foca,
            runtime: AccumulatingRuntime::new(),
            timers,
            auth,
            nonce_rng: SmallRng::seed_from_u64(seed ^ 0x9E37_79B9_7F4A_7C15),
            seeds: config.seeds.clone(),
            timing: config.timing.clone(),
            data_addr: config.data_addr.unwrap_or(config.identity.addr),
            book,
            own_usage: None,
            usage_epoch: config.identity.generation,
            announce_round: 0,
            usage_round: 0,
            table: MemberTable::default(),
            suspicions: Suspicions::default(),
            foca_config,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: GossipStats::default(),
            clock: WallClock::new(now, wall),
            max_packet: config.timing.max_packet,
        })
    }

    /// Our current identity (its generation grows if we had to rejoin).
    pub fn identity(&self) -> &NodeIdentity {
        self.foca.identity()
    }

    /// Re-anchors packet timestamps on the wall clock (the driver calls this
    /// now and then so that they follow clock adjustments).
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.clock = WallClock::new(now, wall);
    }

    /// When [`tick`](Self::tick) next has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires every timer due at `now`, in deadline order.
    pub fn tick(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                CoreTimer::Foca(timer) => {
                    let result = self.foca.handle_timer(timer, &mut self.runtime);
                    self.note_foca_result(result, "timer");
                }
                CoreTimer::Announce(round) if round == self.announce_round => {
                    self.announce_to_seeds();
                    let next = if self.foca.num_members() == 0 {
                        self.timing.join_retry
                    } else {
                        self.timing.reannounce
                    };
                    self.schedule_announce(now + next);
                }
                CoreTimer::Announce(_) => {}
                CoreTimer::Housekeeping => {
                    self.housekeeping(now);
                    self.timers
                        .push(now + self.timing.probe_period, CoreTimer::Housekeeping);
                }
                CoreTimer::UsageRefresh(round) if round == self.usage_round => {
                    self.spread_own_usage();
                    self.schedule_usage_refresh(now + self.timing.usage_refresh);
                }
                CoreTimer::UsageRefresh(_) => {}
                CoreTimer::Welcome(member) => self.send_usage_to(&member),
            }
            self.drain(now);
        }
    }

    /// Handles one datagram from `from`; bad ones are counted and dropped.
    pub fn handle_data(&mut self, from: SocketAddr, packet: &[u8], now: Instant) {
        self.stats.received_packets += 1;
        self.stats.received_bytes += packet.len() as u64;
        if packet.len() > self.max_packet {
            self.stats.dropped_malformed += 1;
            debug!(%from, len = packet.len(), "dropped oversized gossip packet");
            return;
        }
        let payload = match self.auth.open(packet, self.clock.wall_ms(now)) {
            Ok(payload) => payload,
            Err(err) => {
                self.count_drop(&err);
                debug!(%from, error = %err, "dropped gossip packet");
                return;
            }
        };
        let result = match self.inspect(payload) {
            Some(rewritten) => self.foca.handle_data(&rewritten, &mut self.runtime),
            None => self.foca.handle_data(payload, &mut self.runtime),
        };
        self.note_foca_result(result, "data");
        self.drain(now);
    }

    /// Sets the usage this member spreads; a change gets a new version and
    /// spreads at once. Call it at heartbeat pace, not on every write.
    pub fn set_usage(&mut self, usage: DatanodeUsage, now: Instant) {
        let first = self.own_usage.is_none();
        if let Some(own) = &self.own_usage {
            if own.usage == usage && own.data_addr == self.data_addr {
                return;
            }
        }
        let seq = self.own_usage.as_ref().map_or(1, |own| own.version.seq + 1);
        self.own_usage = Some(UsageRecord {
            id: self.foca.identity().id.clone(),
            version: UsageVersion {
                epoch: self.usage_epoch,
                seq,
            },
            data_addr: self.data_addr,
            usage,
        });
        self.spread_own_usage();
        // Push the change out now rather than at the next gossip round.
        let result = self.foca.broadcast(&mut self.runtime);
        self.note_foca_result(result, "broadcast");
        if first {
            self.schedule_usage_refresh(now + self.timing.usage_refresh);
        }
        self.drain(now);
    }

    /// Adds members known from elsewhere (a roster, a previous run) as alive
    /// without gossiping them, so that a large cluster need not spread every
    /// join; members that are in fact gone are detected like any failure.
    pub fn add_known_members(
        &mut self,
        members: impl IntoIterator<Item = NodeIdentity>,
        now: Instant,
    ) {
        let own = self.foca.identity().id.clone();
        let updates = members
            .into_iter()
            .filter(|m| m.id != own && !m.is_placeholder())
            .map(foca::Member::alive);
        let result = self.foca.apply_many(updates, false, &mut self.runtime);
        self.note_foca_result(result, "add_known_members");
        self.drain(now);
    }

    /// Leaves the cluster: tells a few members we are going, so that everyone
    /// sees us down without waiting for failure detection.
    pub fn leave(&mut self, now: Instant) {
        let result = self.foca.leave_cluster(&mut self.runtime);
        self.note_foca_result(result, "leave");
        self.drain(now);
    }

    /// The next datagram to send, already sealed.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.outbox.pop_front()
    }

    /// The next member event.
    pub fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }

    /// Counters since start.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// Every member this one knows, with state, usage and last change.
    pub fn members(&mut self, now: Instant) -> Vec<MemberInfo> {
        self.table.refresh(self.foca.iter_membership_state(), now);
        self.table.rows(&self.book.lock())
    }

    /// Number of members foca currently considers active.
    pub fn num_active(&self) -> usize {
        self.foca.num_members()
    }

    /// Sends our usage record to member `id` alone, if it is active.
    fn send_usage_to(&mut self, id: &str) {
        if self.own_usage.is_none() || !self.foca.iter_members().any(|m| m.id().id == id) {
            return;
        }
        self.spread_own_usage();
        self.book.lock().only_to = Some(id.to_owned());
        let result = self.foca.broadcast(&mut self.runtime);
        self.book.lock().only_to = None;
        self.note_foca_result(result, "welcome");
    }

    fn schedule_usage_refresh(&mut self, at: Instant) {
        self.usage_round += 1;
        self.timers
            .push(at, CoreTimer::UsageRefresh(self.usage_round));
    }

    fn schedule_announce(&mut self, at: Instant) {
        self.announce_round += 1;
        self.timers
            .push(at, CoreTimer::Announce(self.announce_round));
    }

    /// Announces to every seed that is not an active member.
    fn announce_to_seeds(&mut self) {
        let own = self.foca.identity().addr;
        let active: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        let targets: Vec<SocketAddr> = self
            .seeds
            .iter()
            .copied()
            .filter(|seed| *seed != own && !active.contains(seed))
            .collect();
        for seed in targets {
            trace!(%seed, "announcing to seed");
            let placeholder = NodeIdentity::seed_placeholder(seed);
            let result = self.foca.announce(placeholder, &mut self.runtime);
            self.note_foca_result(result, "announce");
        }
    }

    /// Verifies and, if silent, declares down the members that have been
    /// suspect too long ([`crate::suspicion`]); sizes retransmissions to the
    /// cluster.
    fn housekeeping(&mut self, now: Instant) {
        let actions = self.suspicions.review(
            self.foca.iter_membership_state(),
            now,
            self.timing.suspect_to_down,
            self.timing.probe_period,
        );
        for suspect in actions.verify {
            debug!(%suspect, "suspect for too long; checking it directly");
            let result = self.foca.announce(suspect, &mut self.runtime);
            self.note_foca_result(result, "verify suspect");
        }
        if !actions.declare_down.is_empty() {
            for member in &actions.declare_down {
                info!(member = %member.id(), "suspect stayed silent; declaring it down");
            }
            let downs = actions.declare_down.into_iter();
            let result = self.foca.apply_many(downs, true, &mut self.runtime);
            self.note_foca_result(result, "declare down");
        }
        let size = (self.foca.num_members() as u32 + 1).max(self.timing.expected_members);
        let wanted = NonZeroU32::new(size).map(|n| foca::Config::new_lan(n).max_transmissions);
        if let Some(wanted) = wanted.filter(|w| *w != self.foca_config.max_transmissions) {
            self.foca_config.max_transmissions = wanted;
            let result = self.foca.set_config(self.foca_config.clone());
            self.note_foca_result(result, "resize");
        }
    }

    fn spread_own_usage(&mut self) {
        let Some(record) = &self.own_usage else {
            return;
        };
        match record.encode() {
            Ok(bytes) => {
                let result = self.foca.add_broadcast(&bytes).map(|_| ());
                self.note_foca_result(result, "usage");
            }
            Err(err) => debug!(error = %err, "cannot encode own usage record"),
        }
    }

    /// Notes who sent `payload` (for suspicion checks) and returns it
    /// re-addressed to us if it is an `Announce` to a seed placeholder (foca
    /// would ignore it otherwise); `None` means "pass it on unchanged".
    fn inspect(&mut self, payload: &[u8]) -> Option<Vec<u8>> {
        let mut cursor = payload;
        let header: Header<NodeIdentity> =
            foca::Codec::decode_header(&mut BincodeCodec, &mut cursor).ok()?;
        self.suspicions.heard_from(&header.src.id);
        if header.message != Message::Announce || !header.dst.is_placeholder() {
            return None;
        }
        let header = Header {
            dst: self.foca.identity().clone(),
            ..header
        };
        let mut bytes = BincodeCodec::header_bytes(&header).ok()?;
        bytes.extend_from_slice(cursor);
        Some(bytes)
    }

    fn note_foca_result(&mut self, result: Result<(), foca::Error>, during: &'static str) {
        if let Err(err) = result {
            self.stats.foca_errors += 1;
            debug!(during, error = %err, "foca rejected input");
        }
    }

    fn count_drop(&mut self, err: &PacketError) {
        let counter = match err {
            PacketError::Malformed { .. } => &mut self.stats.dropped_malformed,
            PacketError::Unauthenticated | PacketError::UnexpectedMac => {
                &mut self.stats.dropped_unauthenticated
            }
            PacketError::BadMac => &mut self.stats.dropped_bad_mac,
            PacketError::Stale { .. } => &mut self.stats.dropped_stale,
            PacketError::Replay { .. } | PacketError::CacheFull => &mut self.stats.dropped_replay,
        };
        *counter += 1;
    }

    /// Moves everything foca produced into the outbox, the timer queue, the
    /// member table and the event queue.
    fn drain(&mut self, now: Instant) {
        let wall_ms = self.clock.wall_ms(now);
        while let Some((dst, data)) = self.runtime.to_send() {
            let sealed = self.auth.seal(&data, wall_ms, self.nonce_rng.next_u64());
            self.stats.sent_packets += 1;
            self.stats.sent_bytes += sealed.len() as u64;
            self.outbox.push_back((dst.addr, Bytes::from(sealed)));
        }
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timers.push(now + after, CoreTimer::Foca(timer));
        }
        let mut notes = Vec::new();
        while let Some(note) = self.runtime.to_notify() {
            notes.push(note);
        }
        for (i, note) in notes.iter().enumerate() {
            if let Some(event) = self.table.on_notification(note, &notes[i + 1..], now) {
                self.events.push_back(event);
            }
            match note {
                OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id)
                    if id.role == Role::Meta && self.own_usage.is_some() =>
                {
                    // A metadata node (the reader of usage) came up: send it
                    // our record directly, jittered so that a thousand
                    // datanodes do not all answer in the same millisecond.
                    let spread = self.timing.gossip_interval.as_micros() as u64 * 5;
                    let jitter = self.nonce_rng.random_range(0..spread.max(1));
                    let at = now + Duration::from_micros(jitter);
                    self.timers.push(at, CoreTimer::Welcome(id.id.clone()));
                }
                OwnedNotification::Idle => {
                    info!(me = %self.foca.identity(), "no live member known; retrying seeds");
                    self.schedule_announce(now + self.timing.join_retry);
                }
                OwnedNotification::Rejoin(id) => {
                    info!(me = %id, "declared down by the cluster; rejoined as a new generation");
                }
                OwnedNotification::Active => debug!(me = %self.foca.identity(), "joined"),
                OwnedNotification::Defunct => debug!(me = %self.foca.identity(), "defunct"),
                _ => {}
            }
        }
        for record in self.book.lock().take_fresh() {
            self.events
                .push_back(MemberEvent::Usage(record.id, record.usage));
        }
    }
}
