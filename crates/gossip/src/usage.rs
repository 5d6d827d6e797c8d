//! Datanode usage spread as foca custom broadcasts: newer versions of a
//! node's record replace older ones everywhere, so the metadata nodes learn
//! every datanode's utilization without one heartbeat RPC per datanode.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tdfs_proto::meta::DatanodeUsage;

use crate::identity::NodeIdentity;

/// Upper bound on one encoded record; a datanode id is short, so anything
/// bigger is junk.
const RECORD_LIMIT: usize = 1024;

/// Orders the records of one node: `epoch` is the node's first generation in
/// this process (so a restart outranks everything the previous run sent) and
/// `seq` counts the changes within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UsageVersion {
    /// The process's starting generation; a restarted node has a bigger one.
    pub epoch: u64,
    /// Bumped on every change within one process.
    pub seq: u64,
}

/// What a datanode spreads about itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The datanode's stable id (the identity's `id`).
    pub id: String,
    /// Newer replaces older; equal versions are duplicates.
    pub version: UsageVersion,
    /// Where clients and peers send block data to this datanode.
    pub data_addr: SocketAddr,
    /// Capacity figures, as in the heartbeat RPC.
    pub usage: DatanodeUsage,
}

impl UsageRecord {
    /// The broadcast payload.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, bincode::error::EncodeError> {
        bincode::serde::encode_to_vec(self, config())
    }

    fn decode(data: &[u8]) -> Result<Self, UsageError> {
        let (record, used): (UsageRecord, usize) =
            bincode::serde::decode_from_slice(data, config())?;
        if used != data.len() {
            return Err(UsageError::Trailing {
                extra: data.len() - used,
            });
        }
        if record.id.is_empty() {
            return Err(UsageError::EmptyId);
        }
        Ok(record)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_LIMIT>()
}

/// Why a received usage broadcast was rejected (foca then drops the rest of
/// the packet's broadcasts, nothing else).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Not a usage record.
    #[error("undecodable usage record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// A record followed by junk.
    #[error("usage record followed by {extra} stray bytes")]
    Trailing {
        /// How many bytes followed the record.
        extra: usize,
    },
    /// A record without a node id.
    #[error("usage record without a node id")]
    EmptyId,
}

/// foca's dissemination key: a record invalidates older records of the same
/// node still waiting in the broadcast backlog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageKey {
    id: String,
    version: UsageVersion,
}

impl foca::Invalidates for UsageKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.id == other.id && self.version >= other.version
    }
}

/// The newest record of every datanode, shared by the broadcast handler
/// (which foca owns) and the core.
#[derive(Debug, Default)]
pub(crate) struct UsageBook {
    /// Newest record per stable id.
    latest: HashMap<String, UsageRecord>,
    /// Ids whose record changed since the core last looked, in order.
    fresh: Vec<String>,
    /// While set, custom broadcasts go only to this member: how the core
    /// sends its record straight to a newcomer with foca's public API.
    pub(crate) only_to: Option<String>,
}

impl UsageBook {
    pub(crate) fn get(&self, id: &str) -> Option<&UsageRecord> {
        self.latest.get(id)
    }

    /// Records that arrived since the last call, oldest first.
    pub(crate) fn take_fresh(&mut self) -> Vec<UsageRecord> {
        let fresh = std::mem::take(&mut self.fresh);
        fresh
            .into_iter()
            .filter_map(|id| self.latest.get(&id).cloned())
            .collect()
    }
}

/// Shared handle on a [`UsageBook`].
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedBook(Arc<Mutex<UsageBook>>);

impl SharedBook {
    pub(crate) fn lock(&self) -> MutexGuard<'_, UsageBook> {
        // A panic while holding this lock leaves a map that is still valid.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// foca's [`foca::BroadcastHandler`] for usage records.
pub(crate) struct UsageHandler {
    /// Where accepted records land.
    book: SharedBook,
    /// Our own stable id: copies of our own records coming back are ignored.
    own_id: String,
}

impl UsageHandler {
    pub(crate) fn new(book: SharedBook, own_id: String) -> Self {
        UsageHandler { book, own_id }
    }
}

impl foca::BroadcastHandler<NodeIdentity> for UsageHandler {
    type Key = UsageKey;
    type Error = UsageError;

    fn should_add_broadcast_data(&self, member: &NodeIdentity) -> bool {
        let book = self.book.lock();
        book.only_to.as_ref().is_none_or(|only| *only == member.id)
    }

    fn receive_item(
        &mut self,
        data: &[u8],
        sender: Option<&NodeIdentity>,
    ) -> Result<Option<UsageKey>, UsageError> {
        let record = UsageRecord::decode(data)?;
        let key = UsageKey {
            id: record.id.clone(),
            version: record.version,
        };
        let mut book = self.book.lock();
        if sender.is_none() {
            // Our own record, added by the core: always (re)spread it.
            book.latest.insert(record.id.clone(), record);
            return Ok(Some(key));
        }
        if record.id == self.own_id {
            return Ok(None);
        }
        let newer = book
            .latest
            .get(&record.id)
            .is_none_or(|known| known.version < record.version);
        if !newer {
            return Ok(None);
        }
        book.fresh.push(record.id.clone());
        book.latest.insert(record.id.clone(), record);
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use foca::{BroadcastHandler, Invalidates};

    fn record(id: &str, epoch: u64, seq: u64, used: u64) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            version: UsageVersion { epoch, seq },
            data_addr: "127.0.0.1:9000".parse().expect("literal address"),
            usage: DatanodeUsage {
                capacity: 100,
                used,
                pending: 0,
                blocks: 1,
            },
        }
    }

    fn peer() -> NodeIdentity {
        NodeIdentity::new("peer", Role::Meta, "127.0.0.1:1".parse().expect("literal"))
    }

    #[test]
    fn newer_replaces_older_and_duplicates_stop_spreading() {
        let book = SharedBook::default();
        let mut handler = UsageHandler::new(book.clone(), "me".into());
        let v1 = record("dn", 5, 1, 10).encode().expect("encode");
        let v2 = record("dn", 5, 2, 20).encode().expect("encode");
        let p = peer();
        assert!(handler
            .receive_item(&v2, Some(&p))
            .expect("valid")
            .is_some());
        assert!(handler
            .receive_item(&v1, Some(&p))
            .expect("valid")
            .is_none());
        assert!(handler
            .receive_item(&v2, Some(&p))
            .expect("valid")
            .is_none());
        let fresh = book.lock().take_fresh();
        assert_eq!(fresh.len(), 1);
        assert_eq!(fresh[0].usage.used, 20);
        // A restart (bigger epoch) outranks any seq of the previous run.
        let restarted = record("dn", 6, 0, 1).encode().expect("encode");
        assert!(handler
            .receive_item(&restarted, Some(&p))
            .expect("ok")
            .is_some());
    }

    #[test]
    fn own_records_echoed_back_are_ignored() {
        let mut handler = UsageHandler::new(SharedBook::default(), "me".into());
        let mine = record("me", 1, 1, 1).encode().expect("encode");
        assert!(handler.receive_item(&mine, None).expect("valid").is_some());
        assert!(handler
            .receive_item(&mine, Some(&peer()))
            .expect("ok")
            .is_none());
    }

    #[test]
    fn junk_and_trailing_bytes_are_rejected() {
        let mut handler = UsageHandler::new(SharedBook::default(), "me".into());
        let mut data = record("dn", 1, 1, 1).encode().expect("encode");
        data.push(0);
        assert!(handler.receive_item(&data, Some(&peer())).is_err());
        assert!(handler.receive_item(b"\xff\xff", Some(&peer())).is_err());
    }

    #[test]
    fn keys_invalidate_older_versions_of_the_same_node_only() {
        let k = |id: &str, seq| UsageKey {
            id: id.into(),
            version: UsageVersion { epoch: 1, seq },
        };
        assert!(k("a", 2).invalidates(&k("a", 1)));
        assert!(!k("a", 1).invalidates(&k("a", 2)));
        assert!(!k("b", 9).invalidates(&k("a", 1)));
    }
}
