//! The tokio driver: one task owns the [`GossipCore`] and the UDP socket, and
//! a [`GossipHandle`] talks to it through channels.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tdfs_proto::meta::DatanodeUsage;
use tdfs_rpc::{Connector, Verdict};
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tracing::{debug, warn};

use crate::config::ConfigError;
use crate::config::GossipConfig;
use crate::core::GossipCore;
use crate::identity::NodeIdentity;
use crate::member::{GossipStats, MemberEvent, MemberInfo};

/// How long a datagram the filters reorder is held back.
const REORDER_HOLD: Duration = Duration::from_millis(20);

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

/// Sets the usage a datanode spreads; see [`GossipHandle::usage_setter`].
#[derive(Clone, Debug)]
pub struct UsageSetter(watch::Sender<Option<DatanodeUsage>>);

impl UsageSetter {
    pub fn set(&self, usage: DatanodeUsage) {
        self.0.send_replace(Some(usage));
    }
}

/// Events buffered per subscriber before it starts lagging.
const EVENT_BUFFER: usize = 4096;

/// The member table as last published by the gossip task.
#[derive(Clone, Debug)]
pub struct MemberSnapshot {
    /// Our identity (its generation grows if we had to rejoin).
    pub identity: NodeIdentity,
    /// Every other known member.
    pub members: Vec<MemberInfo>,
    /// Counters.
    pub stats: GossipStats,
}

/// How the task should stop.
#[derive(Debug)]
enum Stop {
    /// Tell the cluster we are leaving first.
    Leave,
    /// Just stop, as a crash would.
    Abort,
}

/// Binds `config.bind` and starts gossiping. See [`start_on`].
pub async fn start(config: GossipConfig) -> Result<GossipHandle, GossipError> {
    config.validate()?;
    let socket = UdpSocket::bind(config.bind)
        .await
        .map_err(|source| GossipError::Bind {
            addr: config.bind,
            source,
        })?;
    start_on(socket, config).await
}

/// Starts gossiping on a socket the caller bound (tests bind port 0). An
/// identity address with port 0 (or an unspecified IP) takes the socket's.
pub async fn start_on(
    socket: UdpSocket,
    mut config: GossipConfig,
) -> Result<GossipHandle, GossipError> {
    let local = socket.local_addr()?;
    if config.identity.addr.port() == 0 {
        config.identity.addr.set_port(local.port());
    }
    if config.identity.addr.ip().is_unspecified() && !local.ip().is_unspecified() {
        config.identity.addr.set_ip(local.ip());
    }
    let now = Instant::now();
    let core = GossipCore::new(&config, rand::random(), now.into_std(), SystemTime::now())?;
    let (events, _) = broadcast::channel(EVENT_BUFFER);
    let snapshot = Arc::new(MemberSnapshot {
        identity: core.identity().clone(),
        members: Vec::new(),
        stats: GossipStats::default(),
    });
    let (snapshot_tx, snapshot_rx) = watch::channel(snapshot);
    let (usage_tx, usage_rx) = watch::channel(None);
    let (stop_tx, stop_rx) = oneshot::channel();
    let driver = Driver {
        core,
        socket: Arc::new(socket),
        connector: config.connector.clone(),
        filtered_out: 0,
        events: events.clone(),
        snapshot: snapshot_tx,
        usage: usage_rx,
        refresh: config.timing.probe_period,
        buf: vec![0; config.timing.max_packet + 1],
    };
    let task = tokio::spawn(driver.run(stop_rx));
    Ok(GossipHandle {
        local_addr: local,
        events,
        snapshot: snapshot_rx,
        usage: usage_tx,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// Controls a running gossip member. Dropping it stops the member without
/// telling the cluster (like [`GossipHandle::abort`]).
#[derive(Debug)]
pub struct GossipHandle {
    /// The bound UDP address.
    local_addr: SocketAddr,
    /// Source of [`Self::subscribe`] receivers.
    events: broadcast::Sender<MemberEvent>,
    /// The member table, republished on every change and every probe period.
    snapshot: watch::Receiver<Arc<MemberSnapshot>>,
    /// The usage to spread (latest wins).
    usage: watch::Sender<Option<DatanodeUsage>>,
    /// Tells the task to stop.
    stop: Option<oneshot::Sender<Stop>>,
    /// The task, awaited on shutdown.
    task: Option<JoinHandle<()>>,
}

impl GossipHandle {
    /// Member events from now on. A receiver that lags (`RecvError::Lagged`)
    /// should re-read [`Self::members`].
    pub fn subscribe(&self) -> broadcast::Receiver<MemberEvent> {
        self.events.subscribe()
    }

    /// The member table (every known member but ourselves).
    pub fn members(&self) -> Vec<MemberInfo> {
        self.snapshot.borrow().members.clone()
    }

    /// The member table as a watch, to wait for a condition on it.
    pub fn watch(&self) -> watch::Receiver<Arc<MemberSnapshot>> {
        self.snapshot.clone()
    }

    /// Our current identity.
    pub fn identity(&self) -> NodeIdentity {
        self.snapshot.borrow().identity.clone()
    }

    /// Counters as of the last publication (at most one probe period old).
    pub fn stats(&self) -> GossipStats {
        self.snapshot.borrow().stats
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sets the usage this datanode spreads (call it at heartbeat pace).
    pub fn set_usage(&self, usage: DatanodeUsage) {
        self.usage.send_replace(Some(usage));
    }

    /// A setter for the spread usage that outlives borrows of the handle
    /// (for a task that refreshes it periodically).
    pub fn usage_setter(&self) -> UsageSetter {
        UsageSetter(self.usage.clone())
    }

    /// Leaves the cluster (peers see us down at once) and stops.
    pub async fn shutdown(mut self) {
        self.finish(Stop::Leave).await;
    }

    /// Stops without telling anyone, as a crash would: peers detect it.
    pub async fn abort(mut self) {
        self.finish(Stop::Abort).await;
    }

    async fn finish(&mut self, how: Stop) {
        if let Some(stop) = self.stop.take() {
            // The task may already be gone; then there is nothing to stop.
            let _ = stop.send(how);
        }
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                warn!(fault = "local", error = %err, "gossip task failed");
            }
        }
    }
}

/// The task's state.
struct Driver {
    /// The member.
    core: GossipCore,
    /// The gossip socket (shared with delayed sends).
    socket: Arc<UdpSocket>,
    /// Filters every datagram sent (a test's fault table).
    connector: Connector,
    /// Datagrams the filters dropped or cut.
    filtered_out: u64,
    /// Where events go.
    events: broadcast::Sender<MemberEvent>,
    /// Where the member table goes.
    snapshot: watch::Sender<Arc<MemberSnapshot>>,
    /// Usage updates from the handle.
    usage: watch::Receiver<Option<DatanodeUsage>>,
    /// Member table republication interval (to show Suspect states).
    refresh: Duration,
    /// Receive buffer, one byte over the packet limit to spot oversize.
    buf: Vec<u8>,
}

impl Driver {
    async fn run(mut self, mut stop: oneshot::Receiver<Stop>) {
        let mut refresh = tokio::time::interval(self.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut usage_open = true;
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            let deadline = self.core.next_deadline().map_or(far, Instant::from_std);
            let mut changed = false;
            tokio::select! {
                biased;
                how = &mut stop => {
                    if let Ok(Stop::Leave) = how {
                        self.core.leave(Instant::now().into_std());
                        self.flush().await;
                    }
                    break;
                }
                received = self.socket.recv_from(&mut self.buf) => match received {
                    Ok((len, from)) => {
                        let packet = &self.buf[..len];
                        self.core.handle_data(from, packet, Instant::now().into_std());
                    }
                    Err(err) => debug!(error = %err, "gossip receive failed"),
                },
                () = sleep_until(deadline) => self.core.tick(Instant::now().into_std()),
                update = self.usage.changed(), if usage_open => match update {
                    Ok(()) => {
                        let usage = *self.usage.borrow_and_update();
                        if let Some(usage) = usage {
                            self.core.set_usage(usage, Instant::now().into_std());
                        }
                    }
                    Err(_) => usage_open = false,
                },
                _ = refresh.tick() => {
                    self.core.set_wall_clock(Instant::now().into_std(), SystemTime::now());
                    changed = true;
                }
            }
            self.flush().await;
            while let Some(event) = self.core.poll_event() {
                // No subscriber is fine: the table still records it.
                let _ = self.events.send(event);
                changed = true;
            }
            if changed {
                self.publish();
            }
        }
        self.publish();
    }

    async fn flush(&mut self) {
        while let Some((dst, packet)) = self.core.poll_transmit() {
            // The peer's gossip address is its RPC address, which the
            // fault table names.
            let hold = match self.connector.link(&dst.to_string()).outgoing() {
                Verdict::Pass => None,
                Verdict::Drop | Verdict::Cut => {
                    self.filtered_out += 1;
                    continue;
                }
                Verdict::Delay(d) => Some(d),
                // A datagram overtaken by the ones after it.
                Verdict::Reorder => Some(REORDER_HOLD),
            };
            match hold {
                None => {
                    if let Err(err) = self.socket.send_to(&packet, dst).await {
                        debug!(%dst, error = %err, "gossip send failed");
                    }
                }
                Some(d) => {
                    let socket = self.socket.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        if let Err(err) = socket.send_to(&packet, dst).await {
                            debug!(%dst, error = %err, "delayed gossip send failed");
                        }
                    });
                }
            }
        }
    }

    fn publish(&mut self) {
        let now = Instant::now().into_std();
        let snapshot = MemberSnapshot {
            identity: self.core.identity().clone(),
            members: self.core.members(now),
            stats: GossipStats {
                filtered_out: self.filtered_out,
                ..self.core.stats()
            },
        };
        self.snapshot.send_replace(Arc::new(snapshot));
    }
}
