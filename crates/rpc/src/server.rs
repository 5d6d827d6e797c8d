//! The server side: accept, handshake, then serve calls concurrently on each
//! connection, with bounded frames, bounded in-flight calls and bounded
//! connection counts. The caller binds the listener (tests bind port 0).

use crate::auth::ClusterKey;
use crate::client::sealed;
use crate::frame::read_frame;
use crate::session::{max_with_mac, FrameMac, SessionKeys};
use crate::{handshake, Channel, Envelope, Reply};
use serde::{de::DeserializeOwned, Serialize};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tdfs_proto::codec::{decode, encode_frame, MAX_FRAME_LEN};
use tdfs_proto::FsError;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Proved knowledge of the cluster key (or the cluster has none).
    pub authenticated: bool,
    /// The connection's frame keys when both ends proved the key. A
    /// [`Channel::Stream`] handler seals and opens its control frames with
    /// them; on [`Channel::Rpc`] the server does it.
    pub session: Option<SessionKeys>,
}

/// Serves requests of type `Req` with replies of type `Resp`.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Answers one call. Runs concurrently with other calls.
    fn handle(&self, peer: &Peer, req: Req) -> impl Future<Output = Result<Resp, FsError>> + Send;

    /// Takes over a connection that asked for [`Channel::Stream`].
    fn stream(&self, peer: Peer, stream: TcpStream) -> impl Future<Output = ()> + Send {
        let _ = (peer, stream);
        async {}
    }
}

/// Limits of one server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub key: Option<ClusterKey>,
    /// Largest request frame accepted.
    pub max_frame: usize,
    /// Open connections at once; more are refused.
    pub max_connections: usize,
    /// Calls in flight per connection; the reader waits past it.
    pub max_in_flight: usize,
    /// A connection with no call for this long is closed.
    pub idle_timeout: Duration,
    /// Connections kept for key-proved cluster nodes: callers that did not
    /// prove the key (users) get at most `max_connections` minus these, so
    /// a flood of clients cannot lock the cluster's own nodes out.
    pub reserved_for_peers: usize,
    /// Connections one address may hold without proving the key.
    pub max_per_user_addr: usize,
    /// A user connection with no call for this long is closed.
    pub user_idle_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            key: None,
            max_frame: MAX_FRAME_LEN,
            max_connections: 4096,
            max_in_flight: 1024,
            idle_timeout: Duration::from_secs(600),
            reserved_for_peers: 256,
            max_per_user_addr: 512,
            user_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// A shutdown signal shared by every task of a node.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal and the sender that trips it.
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    pub fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (or the sender is gone).
    pub async fn wait(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Accepts connections on `listener` until `shutdown` trips.
pub async fn serve<Req, Resp, H>(
    listener: TcpListener,
    handler: Arc<H>,
    config: ServerConfig,
    mut shutdown: Shutdown,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let config = Arc::new(config);
    let conns = Arc::new(Semaphore::new(config.max_connections));
    let users = Arc::new(UserSlots::new(
        config
            .max_connections
            .saturating_sub(config.reserved_for_peers),
        config.max_per_user_addr,
    ));
    // Every connection task, so that stopping the server closes them all.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.wait() => {
                tasks.shutdown().await;
                return;
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(fault = "local", "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::warn!(fault = "peer", peer = %addr, "too many connections, refusing");
            drop(stream);
            continue;
        };
        let handler = handler.clone();
        let config = config.clone();
        let sd = shutdown.clone();
        let users = users.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, addr, handler, config, sd, users).await {
                tracing::debug!(%addr, "connection closed: {e}");
            }
        });
    }
}

async fn connection<Req, Resp, H>(
    mut stream: TcpStream,
    addr: SocketAddr,
    handler: Arc<H>,
    config: Arc<ServerConfig>,
    mut shutdown: Shutdown,
    users: Arc<UserSlots>,
) -> Result<(), FsError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    stream.set_nodelay(true).ok();
    let (channel, session) = handshake::server_session(&mut stream, config.key.as_ref()).await?;
    let peer = Peer {
        addr,
        authenticated: session.peer,
        session: session.keys,
    };
    // On a keyed cluster, callers that did not prove the key are users:
    // they share fewer slots, a per-address cap and a shorter idle timeout.
    let is_user = config.key.is_some() && !peer.authenticated;
    let _user_slot = match is_user {
        true => Some(users.take(addr.ip()).ok_or_else(|| {
            tracing::warn!(fault = "peer", peer = %addr, "too many user connections, refusing");
            FsError::Unavailable("too many connections from users".into())
        })?),
        false => None,
    };
    let idle_timeout = match is_user {
        true => config.user_idle_timeout,
        false => config.idle_timeout,
    };
    if channel == Channel::Stream {
        handler.stream(peer, stream).await;
        return Ok(());
    }
    let (send_mac, mut recv_mac) = match peer.session.clone() {
        Some(k) => (Some(k.send), Some(k.recv)),
        None => (None, None),
    };
    let max_frame = max_with_mac(config.max_frame, recv_mac.is_some());
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(write_replies(wr, send_mac, rx));
    let mut r = BufReader::with_capacity(64 << 10, rd);
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    let result = loop {
        let next = tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            r = tokio::time::timeout(idle_timeout, read_frame(&mut r, max_frame)) => r,
        };
        let body = match next {
            Err(_) => break Ok(()),
            Ok(Ok(Some(b))) => match crate::session::open(recv_mac.as_mut(), b) {
                Ok(b) => b,
                Err(e) => {
                    // No answer: the other end may not be who it claims.
                    break Err(e);
                }
            },
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(e)) => {
                send_error(&tx, 0, e.clone()).await;
                break Err(e);
            }
        };
        let env: Envelope<Req> = match decode(&body) {
            Ok(env) => env,
            Err(e) => {
                send_error(&tx, 0, e.clone()).await;
                break Err(e);
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break Ok(());
        };
        let (handler, tx, peer) = (handler.clone(), tx.clone(), peer.clone());
        tokio::spawn(async move {
            let _permit = permit;
            answer(handler.as_ref(), &peer, env, &tx).await;
        });
    };
    drop(tx);
    let _ = writer.await;
    result
}

/// Slots for user connections: a total and a cap per address.
struct UserSlots {
    total: usize,
    per_addr: usize,
    held: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

/// A held user slot, released on drop.
struct UserSlot {
    slots: Arc<UserSlots>,
    ip: std::net::IpAddr,
}

impl UserSlots {
    fn new(total: usize, per_addr: usize) -> Self {
        UserSlots {
            total,
            per_addr,
            held: std::sync::Mutex::new((0, std::collections::HashMap::new())),
        }
    }

    fn take(self: &Arc<Self>, ip: std::net::IpAddr) -> Option<UserSlot> {
        let mut h = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let here = h.1.get(&ip).copied().unwrap_or(0);
        if h.0 >= self.total || here >= self.per_addr {
            return None;
        }
        h.0 += 1;
        h.1.insert(ip, here + 1);
        Some(UserSlot {
            slots: self.clone(),
            ip,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut h = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        h.0 -= 1;
        if let Some(n) = h.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                h.1.remove(&self.ip);
            }
        }
    }
}

/// The connection's writer: seals and writes the replies as they come,
/// flushing once no other reply is about to be queued (see
/// [`next_in_flush`](crate::client::next_in_flush)); ends at the first failure.
async fn write_replies(
    wr: OwnedWriteHalf,
    mut send_mac: Option<FrameMac>,
    mut rx: mpsc::Receiver<Vec<u8>>,
) {
    let mut w = BufWriter::with_capacity(64 << 10, wr);
    while let Some(f) = rx.recv().await {
        let (mut next, mut taken) = (Some(f), 1);
        while let Some(f) = next.take() {
            let Some(f) = sealed(&mut send_mac, f) else {
                return;
            };
            if w.write_all(&f).await.is_err() {
                return;
            }
            next = crate::client::next_in_flush(&mut rx, &mut taken).await;
        }
        if w.flush().await.is_err() {
            return;
        }
    }
}

/// Handles one request within its deadline and queues the reply (an
/// encoding failure is answered as such).
async fn answer<Req, Resp, H>(
    handler: &H,
    peer: &Peer,
    env: Envelope<Req>,
    tx: &mpsc::Sender<Vec<u8>>,
) where
    Resp: Serialize,
    H: Handler<Req, Resp>,
{
    let deadline = Duration::from_millis(env.deadline_ms.max(1) as u64);
    let result = match tokio::time::timeout(deadline, handler.handle(peer, env.body)).await {
        Ok(r) => r,
        Err(_) => Err(FsError::Timeout(env.deadline_ms as u64)),
    };
    let frame = match encode_frame(&Reply { id: env.id, result }) {
        Ok(f) => f,
        Err(e) => match encode_frame(&Reply::<Resp> {
            id: env.id,
            result: Err(e),
        }) {
            Ok(f) => f,
            Err(_) => return,
        },
    };
    let _ = tx.send(frame).await;
}

async fn send_error(tx: &mpsc::Sender<Vec<u8>>, id: u64, e: FsError) {
    if let Ok(f) = encode_frame(&Reply::<()> { id, result: Err(e) }) {
        let _ = tx.send(f).await;
    }
}
