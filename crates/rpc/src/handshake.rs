//! The connection handshake.
//!
//! ```text
//! client -> server  Hello     { magic, version, channel, nonce_c, wants_auth }
//! server -> client  Challenge { version, nonce_s, server_proof }   server_proof = HMAC(k, "srv" | nonce_c | nonce_s)
//! client -> server  Prove     { client_proof }                     client_proof = HMAC(k, "cli" | nonce_s | nonce_c)
//! server -> client  Welcome   { peer } or an error, then close
//! ```
//! Both nonces are fresh per connection, so a recorded handshake cannot be
//! replayed; each side proves the key to the other. A client without the key
//! (a user) still connects, as an unauthenticated caller. A client with the
//! key refuses a server that does not prove it.
//!
//! When both sides proved the key, every later frame of the connection is
//! sealed with a MAC under per-connection keys derived from both nonces (see
//! [`crate::session`]).

use crate::auth::{mac_eq, ClusterKey};
use crate::frame::{read_frame, write_frame};
use crate::session::SessionKeys;
use crate::Channel;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tdfs_proto::codec::{decode, encode_frame};
use tdfs_proto::{FsError, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};

/// The handshake must finish within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HANDSHAKE_FRAME: usize = 1024;
const MAGIC: [u8; 4] = *b"TDFS";

#[derive(Serialize, Deserialize)]
struct Hello {
    magic: [u8; 4],
    version: u32,
    channel: Channel,
    nonce: [u8; 16],
    wants_auth: bool,
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    version: u32,
    nonce: [u8; 16],
    server_proof: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
struct Prove {
    client_proof: Option<[u8; 32]>,
}

#[derive(Serialize, Deserialize)]
enum Welcome {
    Ok { peer: bool },
    Refused(FsError),
}

async fn send<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, v: &T) -> Result<(), FsError> {
    write_frame(w, &encode_frame(v)?).await
}

async fn recv<R: AsyncRead + Unpin, T: serde::de::DeserializeOwned>(
    r: &mut R,
) -> Result<T, FsError> {
    match read_frame(r, MAX_HANDSHAKE_FRAME).await? {
        Some(b) => decode(&b),
        None => Err(FsError::Protocol(
            "connection closed during handshake".into(),
        )),
    }
}

/// The outcome of a handshake, for one end.
#[derive(Clone, Debug)]
pub struct Session {
    /// The other end is a trusted peer: the server accepted our proof (on
    /// the client), or the client proved the key or the cluster has none
    /// (on the server).
    pub peer: bool,
    /// Frame keys when both ends proved the key: every later frame is sealed.
    pub keys: Option<SessionKeys>,
}

/// Client side. Returns whether the server accepted us as a trusted peer.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    channel: Channel,
    key: Option<&ClusterKey>,
) -> Result<bool, FsError> {
    client_session(s, channel, key).await.map(|x| x.peer)
}

/// Client side, with the session keys of a key-proved connection.
pub async fn client_session<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    channel: Channel,
    key: Option<&ClusterKey>,
) -> Result<Session, FsError> {
    let run = async {
        let nonce_c: [u8; 16] = rand::random();
        let hello = Hello {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            channel,
            nonce: nonce_c,
            wants_auth: key.is_some(),
        };
        send(s, &hello).await?;
        let ch: Challenge = recv(s).await?;
        if ch.version != PROTOCOL_VERSION {
            return Err(FsError::Protocol(format!(
                "server speaks protocol {}, we speak {PROTOCOL_VERSION}",
                ch.version
            )));
        }
        let client_proof = match (key, ch.server_proof) {
            (Some(k), Some(sp)) => {
                let want = k.mac(&[b"srv", &nonce_c, &ch.nonce]);
                if !mac_eq(&want, &sp) {
                    return Err(FsError::Unauthenticated(
                        "server does not know the cluster key".into(),
                    ));
                }
                Some(k.mac(&[b"cli", &ch.nonce, &nonce_c]))
            }
            (Some(_), None) => {
                return Err(FsError::Unauthenticated(
                    "server did not prove the cluster key".into(),
                ))
            }
            (None, _) => None,
        };
        send(s, &Prove { client_proof }).await?;
        match recv::<_, Welcome>(s).await? {
            Welcome::Ok { peer } => Ok(Session {
                peer,
                keys: match key {
                    Some(k) if peer => Some(SessionKeys::client(k, &nonce_c, &ch.nonce)),
                    _ => None,
                },
            }),
            Welcome::Refused(e) => Err(e),
        }
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| FsError::Timeout(HANDSHAKE_TIMEOUT.as_millis() as u64))?
}

/// Server side. Returns the requested channel and whether the client proved
/// the key (always true when the server has no key: an open cluster).
pub async fn server<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: Option<&ClusterKey>,
) -> Result<(Channel, bool), FsError> {
    server_session(s, key).await.map(|(c, x)| (c, x.peer))
}

/// Server side, with the session keys of a key-proved connection.
pub async fn server_session<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: Option<&ClusterKey>,
) -> Result<(Channel, Session), FsError> {
    let run = async {
        let hello: Hello = recv(s).await?;
        if hello.magic != MAGIC {
            return Err(FsError::Protocol("not a tdfs client (bad magic)".into()));
        }
        let nonce_s: [u8; 16] = rand::random();
        let server_proof = match (key, hello.wants_auth) {
            (Some(k), true) => Some(k.mac(&[b"srv", &hello.nonce, &nonce_s])),
            _ => None,
        };
        send(
            s,
            &Challenge {
                version: PROTOCOL_VERSION,
                nonce: nonce_s,
                server_proof,
            },
        )
        .await?;
        if hello.version != PROTOCOL_VERSION {
            return Err(FsError::Protocol(format!(
                "client speaks protocol {}, we speak {PROTOCOL_VERSION}",
                hello.version
            )));
        }
        let prove: Prove = recv(s).await?;
        let (peer, keys) = match (key, prove.client_proof) {
            (None, _) => (true, None),
            (Some(k), Some(p)) => {
                let want = k.mac(&[b"cli", &nonce_s, &hello.nonce]);
                if !mac_eq(&want, &p) {
                    let e = FsError::Unauthenticated("wrong cluster key".into());
                    let _ = send(s, &Welcome::Refused(e.clone())).await;
                    return Err(e);
                }
                (true, Some(SessionKeys::server(k, &hello.nonce, &nonce_s)))
            }
            (Some(_), None) => (false, None),
        };
        send(s, &Welcome::Ok { peer }).await?;
        Ok((hello.channel, Session { peer, keys }))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| FsError::Timeout(HANDSHAKE_TIMEOUT.as_millis() as u64))?
}
