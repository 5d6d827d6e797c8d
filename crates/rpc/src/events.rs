//! The event bus of one node: a ring of recent events for `tdfs events`
//! and a broadcast for subscribers (tests in process, `--follow`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tdfs_proto::event::{Event, EventKind};
use tokio::sync::broadcast;

/// Events a node keeps for readers that ask for recent history.
pub const RING: usize = 10_000;

/// Publishes a node's events.
pub struct EventBus {
    node: String,
    clock: crate::clock::Clock,
    ring: Mutex<(u64, VecDeque<Event>)>,
    tx: broadcast::Sender<Event>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("node", &self.node)
            .finish()
    }
}

impl EventBus {
    /// A bus for the node named `node` (`meta-1`, a datanode id).
    pub fn new(node: impl Into<String>, clock: crate::clock::Clock) -> Self {
        let (tx, _) = broadcast::channel(4096);
        EventBus {
            node: node.into(),
            clock,
            ring: Mutex::new((0, VecDeque::new())),
            tx,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Records and broadcasts one event.
    pub fn publish(&self, kind: EventKind) {
        let ev = {
            let mut r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            r.0 += 1;
            let ev = Event {
                seq: r.0,
                time_ms: self.clock.wall_ms(),
                node: self.node.clone(),
                kind,
            };
            if r.1.len() == RING {
                r.1.pop_front();
            }
            r.1.push_back(ev.clone());
            ev
        };
        tracing::debug!(node = %self.node, event = ev.kind.name(), "event");
        let _ = self.tx.send(ev);
    }

    /// Events after `seq` still held, oldest first, at most `max`.
    pub fn since(&self, seq: u64, max: usize) -> Vec<Event> {
        let r = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        r.1.iter()
            .filter(|e| e.seq > seq)
            .take(max)
            .cloned()
            .collect()
    }

    /// The sequence number of the newest event.
    pub fn last_seq(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// A receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Events after `seq`; when there are none yet, waits up to `wait` for
    /// the next one (a long poll for `tdfs events --follow`).
    pub async fn poll(&self, seq: u64, max: usize, wait: Duration) -> Vec<Event> {
        let mut rx = self.subscribe();
        let now = self.since(seq, max);
        if !now.is_empty() || wait.is_zero() {
            return now;
        }
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => self.since(seq, max),
            _ => Vec::new(),
        }
    }
}
