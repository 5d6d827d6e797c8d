//! A bounded Hadoop IPC server: preamble and connection context checked
//! first, then many calls in flight per connection (replies go out as they
//! finish, in any order, as Hadoop's server allows), every length capped
//! before allocation, timeouts on the handshake, inside a frame and on idle
//! connections, and a cap on connections. Malformed input gets a fatal reply
//! where the protocol has one and the connection is closed; the server and
//! its other connections carry on.

use crate::ipc::{
    encode_reply, fatal_reply, frame_len, parse_call, parse_context, parse_preamble, Call, Frame,
    IpcError, Outcome, ReplyTo,
};
use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tdfs_rpc::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, WriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

/// Who is on the other end of a connection, from its context.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The effective user named in the connection context.
    pub user: String,
    /// The protocol named in the connection context.
    pub protocol: String,
    /// The client's 16-byte id (also in every call header).
    pub client_id: Vec<u8>,
}

/// Serves the calls of a Hadoop IPC server.
pub trait IpcHandler: Send + Sync + 'static {
    /// Answers one call. A `fatal` failure closes the connection after the
    /// reply is written.
    fn call(&self, peer: &Peer, call: Call) -> impl Future<Output = Outcome> + Send;

    /// The state id replies carry to a client that sent one (HDFS's
    /// alignment context for observer reads): here, the applied log index.
    fn state_id(&self) -> i64 {
        0
    }
}

/// Limits of the server.
#[derive(Clone, Debug)]
pub struct IpcConfig {
    /// Open connections at once; more are closed at accept.
    pub max_connections: usize,
    /// Calls in flight per connection; reading pauses past it.
    pub max_in_flight: usize,
    /// Time to send the preamble and the connection context.
    pub handshake_timeout: Duration,
    /// Time to finish a frame once its length arrived.
    pub frame_timeout: Duration,
    /// A connection with no new frame for this long is closed (Hadoop's
    /// clients ping every minute while they wait).
    pub idle_timeout: Duration,
}

impl Default for IpcConfig {
    fn default() -> Self {
        IpcConfig {
            max_connections: 1024,
            max_in_flight: 256,
            handshake_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` trips.
pub async fn serve<H: IpcHandler>(
    listener: TcpListener,
    handler: Arc<H>,
    config: IpcConfig,
    mut shutdown: Shutdown,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let (stream, addr) = tokio::select! {
            _ = shutdown.wait() => return,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(fault = "local", "hdfs ipc: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                fault = "peer",
                "hdfs ipc: refusing {addr}: {} connections open",
                config.max_connections
            );
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (handler, config, shutdown) = (handler.clone(), config.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            serve_connection(stream, addr, handler, config, shutdown).await;
        });
    }
}

/// Why reading a frame stopped.
enum ReadError {
    /// The peer closed, stalled or the socket failed: close silently.
    Gone(String),
    /// The peer sent something the protocol forbids: reply, then close.
    Bad(IpcError),
}

/// Reads one length-prefixed frame: the length within `idle`, the body
/// within `within`; the buffer grows with the bytes that actually arrive,
/// so a claimed length costs nothing until it is sent.
async fn read_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    idle: Duration,
    within: Duration,
) -> Result<Bytes, ReadError> {
    let mut len = [0u8; 4];
    match tokio::time::timeout(idle, rd.read_exact(&mut len)).await {
        Err(_) => return Err(ReadError::Gone("idle".into())),
        Ok(Err(e)) => return Err(ReadError::Gone(e.to_string())),
        Ok(Ok(_)) => {}
    }
    let n = frame_len(len).map_err(ReadError::Bad)?;
    let mut buf = Vec::with_capacity(n.min(64 << 10));
    let mut body = rd.take(n as u64);
    match tokio::time::timeout(within, body.read_to_end(&mut buf)).await {
        Err(_) => Err(ReadError::Gone(format!(
            "stalled inside a frame of {n} bytes"
        ))),
        Ok(Err(e)) => Err(ReadError::Gone(e.to_string())),
        Ok(Ok(_)) if buf.len() < n => Err(ReadError::Gone(format!(
            "closed after {} of {n} bytes of a frame",
            buf.len()
        ))),
        Ok(Ok(_)) => Ok(Bytes::from(buf)),
    }
}

/// The answer Hadoop's server gives an HTTP request on its IPC port.
const HTTP_REPLY: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-type: text/plain\r\n\r\n\
It looks like you are making an HTTP request to a Hadoop IPC port. \
This is not the correct port for the web interface on this daemon.\r\n";

/// Reads the preamble and the context; on refusal writes the reply the
/// protocol has for it.
async fn handshake<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: &mut R,
    wr: &mut W,
    addr: SocketAddr,
    config: &IpcConfig,
) -> Option<Peer> {
    let t = config.handshake_timeout;
    let mut pre = [0u8; 7];
    match tokio::time::timeout(t, rd.read_exact(&mut pre)).await {
        Ok(Ok(_)) => {}
        _ => return None,
    }
    if let Err(e) = parse_preamble(&pre) {
        tracing::info!("hdfs ipc: refusing {addr}: {e}");
        let reply = match &e {
            IpcError::BadMagic([b'G', b'E', b'T', b' ']) => HTTP_REPLY.to_vec(),
            IpcError::BadMagic(_) => Vec::new(),
            e => fatal_reply(e, None),
        };
        let _ = wr.write_all(&reply).await;
        return None;
    }
    let ctx = match read_frame(rd, t, t).await {
        Ok(f) => parse_context(f),
        Err(ReadError::Bad(e)) => Err(e),
        Err(ReadError::Gone(why)) => {
            tracing::debug!("hdfs ipc: {addr} left during the handshake: {why}");
            return None;
        }
    };
    match ctx {
        Ok(c) => Some(Peer {
            addr,
            user: c.user,
            protocol: c.protocol,
            client_id: c.client_id,
        }),
        Err(e) => {
            tracing::info!("hdfs ipc: refusing {addr}: {e}");
            let _ = wr.write_all(&fatal_reply(&e, None)).await;
            None
        }
    }
}

/// Writes replies as they come, many per syscall when they queue up.
async fn writer<S: AsyncWrite>(mut wr: WriteHalf<S>, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(first) = rx.recv().await {
        let mut buf = first;
        while buf.len() < (256 << 10) {
            match rx.try_recv() {
                Ok(more) => buf.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

/// Serves one connection (a TCP stream, or an in-memory one in fuzzing)
/// until the peer leaves, breaks the protocol or `shutdown` trips.
pub async fn serve_connection<H, S>(
    stream: S,
    addr: SocketAddr,
    handler: Arc<H>,
    config: IpcConfig,
    mut shutdown: Shutdown,
) where
    H: IpcHandler,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let Some(peer) = handshake(&mut rd, &mut wr, addr, &config).await else {
        return;
    };
    let peer = Arc::new(peer);
    tracing::debug!("hdfs ipc: {addr} connected as {}", peer.user);
    let (tx, rx) = mpsc::channel::<Vec<u8>>(config.max_in_flight);
    let writer = tokio::spawn(writer(wr, rx));
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight));
    // Set by a call that failed fatally: stop reading, close after its reply.
    let (close_tx, mut close_rx) = watch::channel(false);
    let close_tx = Arc::new(close_tx);
    loop {
        let frame = tokio::select! {
            _ = shutdown.wait() => break,
            _ = close_rx.wait_for(|c| *c) => break,
            f = read_frame(&mut rd, config.idle_timeout, config.frame_timeout) => f,
        };
        let call = match frame.map(parse_call) {
            Ok(Ok(Frame::Ping)) => continue,
            Ok(Ok(Frame::Call(c))) => *c,
            Ok(Err(e)) | Err(ReadError::Bad(e)) => {
                tracing::info!("hdfs ipc: closing {addr}: {e}");
                let _ = tx.send(fatal_reply(&e, None)).await;
                break;
            }
            Err(ReadError::Gone(why)) => {
                tracing::debug!("hdfs ipc: {addr} gone: {why}");
                break;
            }
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (handler, peer, tx, close_tx) =
            (handler.clone(), peer.clone(), tx.clone(), close_tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let mut to = ReplyTo::of(&call.header);
            if call.header.state_id.is_some() {
                to.state_id = Some(handler.state_id());
            }
            let outcome = handler.call(&peer, call).await;
            let fatal = matches!(outcome, Outcome::Failure { fatal: true, .. });
            let _ = tx.send(encode_reply(&to, &outcome)).await;
            if fatal {
                let _ = close_tx.send(true);
            }
        });
    }
    drop(tx);
    // Calls still running finish and their replies are written (bounded),
    // then the writer closes the socket.
    let drained = async {
        let _ = in_flight.acquire_many(config.max_in_flight as u32).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), drained).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}
