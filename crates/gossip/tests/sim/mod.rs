//! A simulated network for [`GossipCore`]s: one virtual clock, one queue of
//! datagrams in flight with seeded random latency, and filters in front of
//! delivery that can drop, rewrite or duplicate any datagram. No wall-clock
//! time passes; the same seed replays the same run.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tdfs_gossip::{ClusterKey, GossipConfig, GossipCore, MemberEvent, NodeIdentity, Role, Timing};

/// The wall clock at virtual time zero (packet timestamps derive from it).
const WALL_EPOCH_SECS: u64 = 1_800_000_000;

/// The seed of a randomized test: `TDFS_SEED` when set (to replay a run),
/// else random. Printed either way.
pub fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("TDFS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("{test}: seed = {seed} (replay with TDFS_SEED={seed})");
    seed
}

/// What a filter decides for one datagram.
pub enum Verdict {
    /// Deliver it (possibly after the filter changed it).
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver it twice (a replay).
    Duplicate,
}

/// Sees every datagram before delivery: `(from, to, packet)` by node index.
pub type Filter = Box<dyn FnMut(usize, usize, &mut Vec<u8>) -> Verdict>;

/// One simulated host.
pub struct SimNode {
    /// How it was (or will be) started.
    pub config: GossipConfig,
    /// `None` while the host is down.
    pub core: Option<GossipCore>,
}

/// A datagram in flight.
type Flight = Reverse<(Instant, u64, usize, SocketAddr, Vec<u8>)>;

/// The simulated network and its hosts.
pub struct SimNet {
    /// Latency, loss and filter randomness.
    rng: StdRng,
    /// The test's seed (each core gets one derived from it).
    pub seed: u64,
    /// Virtual time zero.
    pub start: Instant,
    /// Virtual now.
    pub now: Instant,
    /// Hosts by index.
    pub nodes: Vec<SimNode>,
    /// Host index by address.
    by_addr: HashMap<SocketAddr, usize>,
    /// Datagrams in flight, by arrival time.
    in_flight: BinaryHeap<Flight>,
    /// When each host next wants a tick (stale entries are harmless).
    agenda: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The earliest agenda entry of each host, to avoid pushing duplicates.
    scheduled: HashMap<usize, Instant>,
    /// Tie-breaker keeping delivery order deterministic.
    seq: u64,
    /// One-way latency range.
    pub latency: (Duration, Duration),
    /// Applied in order to every datagram.
    pub filters: Vec<Filter>,
    /// Every event any host emitted that `record` accepts: (when, observer,
    /// event).
    pub log: Vec<(Instant, usize, MemberEvent)>,
    /// Which events go to `log` (large simulations keep only a few).
    pub record: fn(&MemberEvent) -> bool,
    /// Datagrams delivered (after filters).
    pub delivered: u64,
}

/// The address of host `i` (distinct, stable, never bound).
pub fn sim_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 7000))
}

/// The standard identity of host `i`: `meta-i` for seeds, `dn-i` otherwise.
pub fn sim_identity(i: usize, role: Role) -> NodeIdentity {
    let id = match role {
        Role::Meta => format!("meta-{i}"),
        Role::Datanode => format!("dn-{i}"),
    };
    NodeIdentity {
        id,
        role,
        addr: sim_addr(i),
        generation: 1_000,
    }
}

/// A test key.
pub fn key(byte: u8) -> ClusterKey {
    ClusterKey::new(vec![byte; 32]).expect("32 bytes is long enough")
}

/// Config of host `i` in a cluster whose first `seeds` hosts are the seeds.
pub fn sim_config(i: usize, seeds: usize, key: Option<ClusterKey>) -> GossipConfig {
    let role = if i < seeds {
        Role::Meta
    } else {
        Role::Datanode
    };
    GossipConfig {
        identity: sim_identity(i, role),
        bind: sim_addr(i),
        seeds: (0..seeds).map(sim_addr).collect(),
        key,
        timing: Timing::default(),
        data_addr: None,
        connector: tdfs_rpc::Connector::direct(),
    }
}

impl SimNet {
    pub fn new(seed: u64) -> Self {
        let start = Instant::now();
        SimNet {
            rng: StdRng::seed_from_u64(seed),
            seed,
            start,
            now: start,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            in_flight: BinaryHeap::new(),
            agenda: BinaryHeap::new(),
            scheduled: HashMap::new(),
            seq: 0,
            latency: (Duration::from_micros(100), Duration::from_micros(600)),
            filters: Vec::new(),
            log: Vec::new(),
            record: |_| true,
            delivered: 0,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn wall(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(WALL_EPOCH_SECS) + self.elapsed()
    }

    /// Adds a host and starts it now; returns its index.
    pub fn add(&mut self, config: GossipConfig) -> usize {
        let i = self.nodes.len();
        self.by_addr.insert(config.identity.addr, i);
        self.nodes.push(SimNode { config, core: None });
        self.start_node(i);
        i
    }

    /// Adds a host that is not started yet.
    pub fn add_stopped(&mut self, config: GossipConfig) -> usize {
        let i = self.nodes.len();
        self.by_addr.insert(config.identity.addr, i);
        self.nodes.push(SimNode { config, core: None });
        i
    }

    /// (Re)starts host `i` from its config.
    pub fn start_node(&mut self, i: usize) {
        // A restarted process draws fresh nonces, as a real one would.
        let generation = self.nodes[i].config.identity.generation;
        let core_seed = (self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(generation.wrapping_mul(0xD1B5_4A32_D192_ED03));
        let core = GossipCore::new(&self.nodes[i].config, core_seed, self.now, self.wall())
            .expect("valid simulated config");
        self.nodes[i].core = Some(core);
        self.after_interaction(i);
    }

    /// Crashes host `i`: it stops answering at once.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].core = None;
    }

    /// Restarts host `i` as a new process: a newer generation.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].config.identity.generation += 1_000_000;
        self.start_node(i);
    }

    pub fn core(&mut self, i: usize) -> &mut GossipCore {
        self.nodes[i].core.as_mut().expect("host is up")
    }

    /// Runs host `i`'s core through `f` at the current time, then collects
    /// its output.
    pub fn with_core<R>(&mut self, i: usize, f: impl FnOnce(&mut GossipCore, Instant) -> R) -> R {
        let now = self.now;
        let r = f(self.core(i), now);
        self.after_interaction(i);
        r
    }

    fn after_interaction(&mut self, i: usize) {
        let now = self.now;
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        while let Some(event) = core.poll_event() {
            if (self.record)(&event) {
                self.log.push((now, i, event));
            }
        }
        let mut out = Vec::new();
        while let Some((dst, packet)) = core.poll_transmit() {
            out.push((dst, packet.to_vec()));
        }
        if let Some(at) = core.next_deadline() {
            if self.scheduled.get(&i).is_none_or(|&s| at < s) {
                self.scheduled.insert(i, at);
                self.agenda.push(Reverse((at, i)));
            }
        }
        for (dst, packet) in out {
            let (lo, hi) = self.latency;
            let at = now + self.rng.gen_range(lo..=hi);
            self.seq += 1;
            self.in_flight.push(Reverse((at, self.seq, i, dst, packet)));
        }
    }

    /// Processes everything due up to `until`, then sets the clock to it.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            let next_packet = self.in_flight.peek().map(|Reverse((at, ..))| *at);
            let next_tick = self.agenda.peek().map(|Reverse((at, _))| *at);
            let next = match (next_packet, next_tick) {
                (Some(p), Some(t)) => p.min(t),
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                if let Some(Reverse((_, _, from, dst, packet))) = self.in_flight.pop() {
                    self.deliver(from, dst, packet);
                }
            } else if let Some(Reverse((at, i))) = self.agenda.pop() {
                if self.scheduled.get(&i).is_some_and(|&s| s <= at) {
                    self.scheduled.remove(&i);
                }
                if let Some(core) = self.nodes[i].core.as_mut() {
                    core.tick(self.now);
                    self.after_interaction(i);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Runs until `cond` holds (checked every 10 ms of virtual time) or
    /// `limit` passes; returns the virtual time it took.
    pub fn run_until_cond(
        &mut self,
        limit: Duration,
        mut cond: impl FnMut(&mut SimNet) -> bool,
    ) -> Option<Duration> {
        let begin = self.now;
        let deadline = begin + limit;
        while self.now < deadline {
            if cond(self) {
                return Some(self.now - begin);
            }
            let step = (self.now + Duration::from_millis(10)).min(deadline);
            self.run_until(step);
        }
        cond(self).then(|| self.now - begin)
    }

    fn deliver(&mut self, from: usize, dst: SocketAddr, mut packet: Vec<u8>) {
        let Some(&to) = self.by_addr.get(&dst) else {
            return;
        };
        let mut copies = 1;
        for filter in &mut self.filters {
            match filter(from, to, &mut packet) {
                Verdict::Deliver => {}
                Verdict::Drop => return,
                Verdict::Duplicate => copies = 2,
            }
        }
        let src = self.nodes[from].config.identity.addr;
        let now = self.now;
        let Some(core) = self.nodes[to].core.as_mut() else {
            return;
        };
        for _ in 0..copies {
            self.delivered += 1;
            core.handle_data(src, &packet, now);
        }
        self.after_interaction(to);
    }

    /// Datagrams and bytes sent by all hosts that are up.
    pub fn total_sent(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .map(|c| (c.stats().sent_packets, c.stats().sent_bytes))
            .fold((0, 0), |(p, b), (dp, db)| (p + dp, b + db))
    }

    /// Hosts that are up.
    pub fn up(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].core.is_some())
    }

    /// When `observer` first saw `ev` after `since`.
    pub fn first_seen(
        &self,
        observer: usize,
        since: Instant,
        ev: impl Fn(&MemberEvent) -> bool,
    ) -> Option<Instant> {
        self.log
            .iter()
            .find(|(at, who, e)| *at >= since && *who == observer && ev(e))
            .map(|(at, ..)| *at)
    }

    /// Whether every up host other than `except` has seen `ev` since `since`.
    pub fn all_saw(
        &self,
        since: Instant,
        except: &[usize],
        ev: impl Fn(&MemberEvent) -> bool,
    ) -> bool {
        self.up()
            .filter(|i| !except.contains(i))
            .all(|i| self.first_seen(i, since, &ev).is_some())
    }
}

/// `MemberEvent::Down` about stable id `id`.
pub fn is_down(id: &str) -> impl Fn(&MemberEvent) -> bool + '_ {
    move |e| matches!(e, MemberEvent::Down(who) if who.id == id)
}

/// `MemberEvent::Up` about stable id `id`.
pub fn is_up(id: &str) -> impl Fn(&MemberEvent) -> bool + '_ {
    move |e| matches!(e, MemberEvent::Up(who) if who.id == id)
}
