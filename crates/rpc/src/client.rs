//! A multiplexed connection: many calls in flight on one socket. A writer
//! task batches outgoing frames into few syscalls; a reader task routes
//! replies to their callers by id.

use crate::auth::ClusterKey;
use crate::connector::{Connector, Link, Verdict};
use crate::frame::read_frame;
use crate::session::{max_with_mac, FrameMac};
use crate::{handshake, Channel, Envelope, Reply};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tdfs_proto::codec::{decode, encode_frame, MAX_FRAME_LEN};
use tdfs_proto::FsError;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::{mpsc, oneshot};

/// Why a call failed. Callers back off differently: `Unreachable` means the
/// call never left, `Network` means it may or may not have been applied.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RpcError {
    #[error("{addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("connection to {addr} failed: {reason}")]
    Network { addr: String, reason: String },
    #[error("no reply from {addr} within {ms} ms")]
    Timeout { addr: String, ms: u64 },
    #[error("{0}")]
    Remote(FsError),
}

impl RpcError {
    /// Converts to the wire error type, for callers that report it.
    pub fn into_fs(self) -> FsError {
        match self {
            RpcError::Remote(e) => e,
            RpcError::Timeout { ms, .. } => FsError::Timeout(ms),
            other => FsError::Unavailable(other.to_string()),
        }
    }
}

type Pending<Resp> = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Resp, FsError>>>>>;

/// A connected, handshaken RPC client; cheap to clone.
pub struct RpcClient<Req, Resp> {
    addr: String,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending<Resp>,
    next_id: Arc<AtomicU64>,
    closed: Arc<AtomicBool>,
    peer: bool,
    _req: PhantomData<fn(Req)>,
}

impl<Req, Resp> Clone for RpcClient<Req, Resp> {
    fn clone(&self) -> Self {
        RpcClient {
            addr: self.addr.clone(),
            tx: self.tx.clone(),
            pending: self.pending.clone(),
            next_id: self.next_id.clone(),
            closed: self.closed.clone(),
            peer: self.peer,
            _req: PhantomData,
        }
    }
}

impl<Req, Resp> RpcClient<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    /// Connects directly and handshakes within `timeout`.
    pub async fn connect(
        addr: &str,
        key: Option<&ClusterKey>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        Self::connect_via(&Connector::direct(), addr, key, timeout).await
    }

    /// Connects through `connector` (whose filters then apply to every
    /// frame in both directions) and handshakes within `timeout`.
    pub async fn connect_via(
        connector: &Connector,
        addr: &str,
        key: Option<&ClusterKey>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        let unreachable = |reason: String| RpcError::Unreachable {
            addr: addr.to_string(),
            reason,
        };
        let (mut stream, link) = connector
            .connect(addr, timeout)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let session = handshake::client_session(&mut stream, Channel::Rpc, key)
            .await
            .map_err(|e| match e {
                FsError::Unauthenticated(_) => RpcError::Remote(e),
                other => unreachable(format!("handshake: {other}")),
            })?;
        let peer = session.peer;
        let (send_mac, recv_mac) = match session.keys {
            Some(k) => (Some(k.send), Some(k.recv)),
            None => (None, None),
        };
        let (rd, wr) = stream.into_split();
        let (tx, rx) = mpsc::channel::<Vec<u8>>(1024);
        let pending: Pending<Resp> = Arc::new(Mutex::new(HashMap::new()));
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(wr, rx, closed.clone(), send_mac, link.clone()));
        tokio::spawn(read_loop(
            rd,
            pending.clone(),
            closed.clone(),
            recv_mac,
            link,
        ));
        Ok(RpcClient {
            addr: addr.to_string(),
            tx,
            pending,
            next_id: Arc::new(AtomicU64::new(1)),
            closed,
            peer,
            _req: PhantomData,
        })
    }

    /// Whether the server accepted us as a trusted peer.
    pub fn is_peer(&self) -> bool {
        self.peer
    }

    /// Whether the connection has failed; a closed client must be replaced.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `req` and waits for its reply for at most `timeout`.
    pub async fn call(&self, req: Req, timeout: Duration) -> Result<Resp, RpcError> {
        let net = |reason: &str| RpcError::Network {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        };
        if self.is_closed() {
            return Err(net("connection closed"));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let env = Envelope {
            id,
            deadline_ms: timeout.as_millis().min(u32::MAX as u128) as u32,
            body: req,
        };
        let frame = encode_frame(&env).map_err(RpcError::Remote)?;
        let (otx, orx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, otx);
        if self.tx.send(frame).await.is_err() {
            self.pending.lock().unwrap().remove(&id);
            return Err(net("connection closed"));
        }
        match tokio::time::timeout(timeout, orx).await {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(e))) => Err(RpcError::Remote(e)),
            Ok(Err(_)) => Err(net("connection lost before the reply")),
            Err(_) => {
                self.pending.lock().unwrap().remove(&id);
                Err(RpcError::Timeout {
                    addr: self.addr.clone(),
                    ms: timeout.as_millis() as u64,
                })
            }
        }
    }
}

/// Seals frames (on a key-proved connection) in the order they are written.
pub(crate) fn sealed(mac: &mut Option<FrameMac>, mut frame: Vec<u8>) -> Option<Vec<u8>> {
    match crate::session::seal(mac.as_mut(), &mut frame) {
        Ok(()) => Some(frame),
        Err(e) => {
            tracing::warn!(fault = "local", "cannot seal a frame: {e}");
            None
        }
    }
}

/// Frames one flush carries at most.
const FLUSH_FRAMES: usize = 256;

/// The next frame for the flush being built: one already queued, or one a
/// task queues while this writer yields once to the tasks that are ready
/// to run. Calls finishing together (readers released by one read index,
/// writers by one commit) then share a syscall and a packet instead of
/// paying one each; an idle connection pays one yield per flush. `taken`
/// counts the flush's frames: at [`FLUSH_FRAMES`] the flush is cut.
pub(crate) async fn next_in_flush(
    rx: &mut mpsc::Receiver<Vec<u8>>,
    taken: &mut usize,
) -> Option<Vec<u8>> {
    if *taken >= FLUSH_FRAMES {
        *taken = 0;
        return None;
    }
    let f = match rx.try_recv() {
        Ok(f) => Some(f),
        Err(_) => {
            tokio::task::yield_now().await;
            rx.try_recv().ok()
        }
    };
    *taken = if f.is_some() { *taken + 1 } else { 0 };
    f
}

async fn write_loop(
    wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::Receiver<Vec<u8>>,
    closed: Arc<AtomicBool>,
    mut mac: Option<FrameMac>,
    link: Link,
) {
    let mut w = BufWriter::with_capacity(64 << 10, wr);
    // A frame held back by a reorder rule, sent after the next one.
    let mut held: Option<Vec<u8>> = None;
    'outer: while let Some(frame) = rx.recv().await {
        let (mut batch, mut taken) = (vec![frame], 1);
        // Batch whatever else is queued, or about to be, into the same flush.
        while let Some(more) = next_in_flush(&mut rx, &mut taken).await {
            batch.push(more);
        }
        for frame in batch {
            let frame = match link.outgoing() {
                Verdict::Pass => frame,
                Verdict::Drop => continue,
                Verdict::Cut => break 'outer,
                Verdict::Delay(d) => {
                    tokio::time::sleep(d).await;
                    frame
                }
                Verdict::Reorder => {
                    if let Some(prev) = held.replace(frame) {
                        prev
                    } else {
                        continue;
                    }
                }
            };
            for f in std::iter::once(frame).chain(held.take().filter(|_| link.is_filtered())) {
                let Some(f) = sealed(&mut mac, f) else {
                    break 'outer;
                };
                if w.write_all(&f).await.is_err() {
                    break 'outer;
                }
            }
        }
        if w.flush().await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
}

async fn read_loop<Resp: DeserializeOwned + Send + 'static>(
    rd: tokio::net::tcp::OwnedReadHalf,
    pending: Pending<Resp>,
    closed: Arc<AtomicBool>,
    mut mac: Option<FrameMac>,
    link: Link,
) {
    let mut r = BufReader::with_capacity(64 << 10, rd);
    let max = max_with_mac(MAX_FRAME_LEN, mac.is_some());
    loop {
        let body = match read_frame(&mut r, max).await {
            Ok(Some(b)) => b,
            _ => break,
        };
        let body = match crate::session::open(mac.as_mut(), body) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(fault = "peer", "closing connection: {e}");
                break;
            }
        };
        let reply: Reply<Resp> = match decode(&body) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(fault = "peer", "undecodable reply, closing connection: {e}");
                break;
            }
        };
        match link.incoming() {
            Verdict::Pass | Verdict::Reorder => {}
            Verdict::Drop => continue,
            Verdict::Cut => break,
            Verdict::Delay(d) => {
                // Delivered later; replies behind it may overtake it.
                let pending = pending.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    if let Some(tx) = pending.lock().unwrap().remove(&reply.id) {
                        let _ = tx.send(reply.result);
                    }
                });
                continue;
            }
        }
        if let Some(tx) = pending.lock().unwrap().remove(&reply.id) {
            let _ = tx.send(reply.result);
        }
    }
    closed.store(true, Ordering::Relaxed);
    // Dropping the senders fails every call still waiting.
    pending.lock().unwrap().clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames queued by tasks that are ready while the writer yields join
    /// its flush; a flush is cut at FLUSH_FRAMES; an empty queue ends it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flush_takes_the_frames_of_ready_tasks_up_to_its_cap() {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(4096);
        tx.send(vec![0]).await.unwrap();
        // Ready to run, not yet run: it queues its frames only once the
        // writer yields.
        let late = tx.clone();
        tokio::spawn(async move {
            for i in 1..=FLUSH_FRAMES + 10 {
                late.send(vec![i as u8]).await.unwrap();
            }
        });
        let first = rx.recv().await.unwrap();
        let (mut flush, mut taken) = (vec![first], 1);
        while let Some(f) = next_in_flush(&mut rx, &mut taken).await {
            flush.push(f);
        }
        assert_eq!(flush.len(), FLUSH_FRAMES, "the cap cuts the flush");
        let mut second = vec![rx.recv().await.unwrap()];
        let mut taken = 1;
        while let Some(f) = next_in_flush(&mut rx, &mut taken).await {
            second.push(f);
        }
        assert_eq!(second.len(), 11, "the rest, then the empty queue ends it");
        assert_eq!(taken, 0);
    }
}
