//! An etcd-style consistency check: every metadata node hashes its
//! namespace at the same applied indexes (every `every`-th entry), and the
//! leader compares the members' hashes. A mismatch — replicas that applied
//! the same log and reached different states — raises an alarm: logged,
//! counted in the metrics, published as an event, shown by
//! `haadmin -getAllServiceState` and the status page.
//!
//! The hash is the SHA-256 of the namespace's canonical snapshot stream,
//! computed on a frozen copy (pages shared copy-on-write) on a blocking
//! thread, so applies are not held up.

use crate::node::MetaNode;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tdfs_namespace::Frozen;
use tdfs_proto::event::EventKind;
use tdfs_proto::meta::{AdminRequest, AdminResponse, Request, Response};

/// Hashes kept (the newest ones).
const KEEP: usize = 16;

/// This node's namespace hashes by applied index, and the alarm raised.
#[derive(Default)]
pub struct Hashes {
    by_index: Mutex<BTreeMap<u64, [u8; 32]>>,
    alarm: Mutex<Option<String>>,
    /// The newest index every voter's hash was compared at.
    compared: std::sync::atomic::AtomicU64,
}

impl Hashes {
    pub fn get(&self, index: u64) -> Option<[u8; 32]> {
        self.by_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .copied()
    }

    /// The newest index hashed, and its hash.
    pub fn latest(&self) -> Option<(u64, [u8; 32])> {
        self.by_index
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .next_back()
            .map(|(i, h)| (*i, *h))
    }

    fn put(&self, index: u64, h: [u8; 32]) {
        let mut m = self.by_index.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(index, h);
        while m.len() > KEEP {
            m.pop_first();
        }
    }

    /// The alarm, if one was raised.
    pub fn alarm(&self) -> Option<String> {
        self.alarm.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn raise(&self, what: String) -> bool {
        let mut a = self.alarm.lock().unwrap_or_else(|e| e.into_inner());
        let first = a.is_none();
        a.get_or_insert(what);
        first
    }
}

/// A `Write` that hashes what is written.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The hash of a frozen namespace.
pub fn digest(frozen: &Frozen) -> [u8; 32] {
    let mut w = HashWriter(Sha256::new());
    // Writing to a hasher cannot fail.
    let _ = frozen.write(&mut w);
    w.0.finalize().into()
}

/// Hashes `frozen` (taken right after applying `index`) in the background.
pub fn hash_later(hashes: std::sync::Arc<Hashes>, index: u64, frozen: Frozen) {
    tokio::task::spawn_blocking(move || {
        let h = digest(&frozen);
        hashes.put(index, h);
    });
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// On the leader: compares every member's hash at this node's newest
/// hashed index; a member that has it and differs raises the alarm.
pub async fn compare(node: &MetaNode) {
    let Some((index, mine)) = node.hashes().latest() else {
        return;
    };
    let done = &node.hashes().compared;
    if done.load(std::sync::atomic::Ordering::Relaxed) >= index {
        return;
    }
    let members: Vec<(u64, String)> = {
        let m = node.raft().metrics().borrow().clone();
        let mem = m.membership_config.membership();
        mem.voter_ids()
            .filter(|id| *id != node.id())
            .filter_map(|id| mem.get_node(&id).map(|n| (id, n.addr.clone())))
            .collect()
    };
    let mut differ = Vec::new();
    let mut answered = 0;
    let voters = members.len();
    for (id, addr) in members {
        let Ok(conn) = crate::network::pooled(
            node.pool(),
            node.connector(),
            &addr,
            node.config().key.as_ref(),
            Duration::from_secs(1),
        )
        .await
        else {
            continue;
        };
        let req = Request::Admin(AdminRequest::StateHash { index });
        if let Ok(Response::Admin(AdminResponse::StateHash(Some(theirs)))) =
            conn.call(req, Duration::from_secs(2)).await
        {
            answered += 1;
            if theirs != mine {
                differ.push((id, hex(&theirs)));
            }
        }
    }
    if answered == voters {
        done.fetch_max(index, std::sync::atomic::Ordering::Relaxed);
    }
    if differ.is_empty() {
        return;
    }
    let what = format!(
        "namespace hashes differ at applied index {index}: this node (meta-{}) has {}, {}",
        node.id(),
        hex(&mine),
        differ
            .iter()
            .map(|(id, h)| format!("meta-{id} has {h}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if node.hashes().raise(what.clone()) {
        tracing::error!(fault = "local", "CONSISTENCY ALARM: {what}");
        node.metrics().set_alarm(true);
        let mut members = vec![(node.id(), hex(&mine))];
        members.extend(differ);
        node.publish(EventKind::ConsistencyAlarm { index, members });
    }
}
