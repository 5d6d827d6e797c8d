//! The envelope around every gossip datagram: a MAC under the cluster key,
//! with a timestamp and a random nonce so that a captured packet cannot be
//! replayed.
//!
//! ```text
//! plain:  MAGIC 0x00 payload
//! sealed: MAGIC 0x01 sent_ms:u64be nonce:u64be mac:[u8;32] payload
//!         mac = HMAC-SHA256(key, DOMAIN | MAGIC 0x01 sent_ms nonce | payload)
//! ```
//!
//! A receiver accepts a sealed packet only if its MAC checks, its timestamp
//! is within `window` of the receiver's wall clock, and its nonce was not seen
//! in the last `2 × window` (a replay inside the window hits the nonce cache;
//! a later one fails the timestamp check). Cluster clocks must therefore
//! agree to within `window`. A packet replayed to a *different* member passes
//! here but foca drops it, because every foca header names its destination
//! (an `Announce` excepted, whose replay only makes a seed answer the original
//! sender).

use std::collections::HashMap;
use tdfs_rpc::auth::{mac_eq, ClusterKey};

/// First byte of every gossip datagram; anything else is not ours.
const MAGIC: u8 = 0xD5;
const KIND_PLAIN: u8 = 0x00;
const KIND_SEALED: u8 = 0x01;
/// Separates these MACs from any other use of the cluster key.
const DOMAIN: &[u8] = b"tdfs-gossip-v1";
/// Bytes before the payload of a plain packet.
pub const PLAIN_OVERHEAD: usize = 2;
/// Bytes before the payload of a sealed packet.
pub const SEALED_OVERHEAD: usize = 2 + 8 + 8 + 32;
/// Nonces remembered at most; past it new packets are refused (only members
/// holding the key can fill it, at tens of packets per second each).
const MAX_REMEMBERED: usize = 1 << 20;

/// Why a datagram was dropped before reaching foca.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Too short, or not starting with our magic byte: not a gossip packet.
    #[error("not a gossip packet ({len} bytes)")]
    Malformed {
        /// Length of the datagram.
        len: usize,
    },
    /// A plain packet reached a node that has a cluster key (a node without
    /// the key is trying to talk to the cluster).
    #[error("packet carries no MAC but this node requires one")]
    Unauthenticated,
    /// A sealed packet reached a node without a cluster key: the two sides
    /// are configured differently.
    #[error("packet carries a MAC but this node has no cluster key")]
    UnexpectedMac,
    /// The MAC does not match: wrong key, or the packet was tampered with.
    #[error("bad MAC")]
    BadMac,
    /// The timestamp is outside the accepted window (an old replay, or a
    /// clock that is off).
    #[error("sent at {sent_ms} ms, now {now_ms} ms: outside the {window_ms} ms window")]
    Stale {
        /// The sender's wall clock when it sealed the packet.
        sent_ms: u64,
        /// Our wall clock.
        now_ms: u64,
        /// The accepted skew.
        window_ms: u64,
    },
    /// The nonce was seen recently: a replay.
    #[error("replayed packet (nonce {nonce:#x})")]
    Replay {
        /// The repeated nonce.
        nonce: u64,
    },
    /// Too many nonces are remembered to check for replays.
    #[error("replay cache full ({MAX_REMEMBERED} nonces)")]
    CacheFull,
}

/// Seals outgoing payloads and opens incoming packets for one node.
#[derive(Debug)]
pub struct PacketAuth {
    /// `None`: packets go out plain and only plain packets are accepted.
    key: Option<ClusterKey>,
    /// Accepted clock skew between sender and receiver, in milliseconds.
    window_ms: u64,
    /// Recently seen nonces and when each may be forgotten (wall ms).
    seen: HashMap<u64, u64>,
    /// When to next drop forgettable nonces (wall ms).
    next_prune_ms: u64,
}

impl PacketAuth {
    /// An envelope handler; `window_ms` bounds sender/receiver clock skew.
    pub fn new(key: Option<ClusterKey>, window_ms: u64) -> Self {
        PacketAuth {
            key,
            window_ms,
            seen: HashMap::new(),
            next_prune_ms: 0,
        }
    }

    /// Bytes the envelope adds to a payload.
    pub fn overhead(&self) -> usize {
        if self.key.is_some() {
            SEALED_OVERHEAD
        } else {
            PLAIN_OVERHEAD
        }
    }

    /// Wraps `payload` for sending at wall-clock `now_ms` with a fresh random
    /// `nonce`.
    pub fn seal(&self, payload: &[u8], now_ms: u64, nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.overhead() + payload.len());
        match &self.key {
            None => out.extend_from_slice(&[MAGIC, KIND_PLAIN]),
            Some(key) => {
                out.extend_from_slice(&[MAGIC, KIND_SEALED]);
                out.extend_from_slice(&now_ms.to_be_bytes());
                out.extend_from_slice(&nonce.to_be_bytes());
                let mac = key.mac(&[DOMAIN, &out[..18], payload]);
                out.extend_from_slice(&mac);
            }
        }
        out.extend_from_slice(payload);
        out
    }

    /// Checks `packet` received at wall-clock `now_ms` and returns its payload.
    pub fn open<'p>(&mut self, packet: &'p [u8], now_ms: u64) -> Result<&'p [u8], PacketError> {
        let malformed = PacketError::Malformed { len: packet.len() };
        let (&[magic, kind], rest) = packet.split_first_chunk::<2>().ok_or(malformed.clone())?;
        if magic != MAGIC {
            return Err(malformed);
        }
        match (kind, &self.key) {
            (KIND_PLAIN, None) => Ok(rest),
            (KIND_PLAIN, Some(_)) => Err(PacketError::Unauthenticated),
            (KIND_SEALED, None) => Err(PacketError::UnexpectedMac),
            (KIND_SEALED, Some(key)) => {
                if packet.len() < SEALED_OVERHEAD {
                    return Err(malformed);
                }
                let (head, rest) = packet.split_at(18);
                let (mac, payload) = rest.split_at(32);
                let mut claimed = [0u8; 32];
                claimed.copy_from_slice(mac);
                if !mac_eq(&key.mac(&[DOMAIN, head, payload]), &claimed) {
                    return Err(PacketError::BadMac);
                }
                let sent_ms = be_u64(&head[2..10]);
                let nonce = be_u64(&head[10..18]);
                self.check_fresh(sent_ms, nonce, now_ms)?;
                Ok(payload)
            }
            _ => Err(malformed),
        }
    }

    /// Rejects stale timestamps and repeated nonces; remembers `nonce`.
    fn check_fresh(&mut self, sent_ms: u64, nonce: u64, now_ms: u64) -> Result<(), PacketError> {
        if sent_ms.abs_diff(now_ms) > self.window_ms {
            return Err(PacketError::Stale {
                sent_ms,
                now_ms,
                window_ms: self.window_ms,
            });
        }
        if now_ms >= self.next_prune_ms {
            self.seen.retain(|_, forget_at| *forget_at > now_ms);
            self.next_prune_ms = now_ms.saturating_add(self.window_ms / 2);
        }
        if self.seen.contains_key(&nonce) {
            return Err(PacketError::Replay { nonce });
        }
        if self.seen.len() >= MAX_REMEMBERED {
            return Err(PacketError::CacheFull);
        }
        let forget_at = now_ms.saturating_add(2 * self.window_ms);
        self.seen.insert(nonce, forget_at);
        Ok(())
    }
}

fn be_u64(bytes: &[u8]) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;
    const WINDOW: u64 = 30_000;

    fn key(byte: u8) -> Option<ClusterKey> {
        Some(ClusterKey::new(vec![byte; 32]).expect("32 bytes is long enough"))
    }

    #[test]
    fn sealed_round_trip() {
        let tx = PacketAuth::new(key(1), WINDOW);
        let mut rx = PacketAuth::new(key(1), WINDOW);
        let packet = tx.seal(b"hello", T0, 7);
        assert_eq!(packet.len(), SEALED_OVERHEAD + 5);
        assert_eq!(rx.open(&packet, T0 + 5).expect("valid"), b"hello");
    }

    #[test]
    fn wrong_key_tampering_and_missing_mac_are_rejected() {
        let tx = PacketAuth::new(key(1), WINDOW);
        let mut rx = PacketAuth::new(key(1), WINDOW);
        let mut wrong = PacketAuth::new(key(2), WINDOW);
        let packet = tx.seal(b"hello", T0, 7);
        assert_eq!(wrong.open(&packet, T0), Err(PacketError::BadMac));
        for i in 2..packet.len() {
            let mut bad = packet.clone();
            bad[i] ^= 0x40;
            assert_eq!(rx.open(&bad, T0), Err(PacketError::BadMac), "byte {i}");
        }
        let plain = PacketAuth::new(None, WINDOW).seal(b"hello", T0, 7);
        assert_eq!(rx.open(&plain, T0), Err(PacketError::Unauthenticated));
        let mut keyless = PacketAuth::new(None, WINDOW);
        assert_eq!(keyless.open(&packet, T0), Err(PacketError::UnexpectedMac));
        assert_eq!(keyless.open(&plain, T0).expect("plain accepted"), b"hello");
    }

    #[test]
    fn replays_are_useless_inside_and_outside_the_window() {
        let tx = PacketAuth::new(key(1), WINDOW);
        let mut rx = PacketAuth::new(key(1), WINDOW);
        let packet = tx.seal(b"x", T0, 99);
        assert!(rx.open(&packet, T0).is_ok());
        assert_eq!(
            rx.open(&packet, T0 + 10),
            Err(PacketError::Replay { nonce: 99 })
        );
        assert!(matches!(
            rx.open(&packet, T0 + WINDOW + 1),
            Err(PacketError::Stale { .. })
        ));
        assert!(matches!(
            rx.open(&packet, T0 + 10 * WINDOW),
            Err(PacketError::Stale { .. })
        ));
        let future = tx.seal(b"x", T0 + WINDOW + 1, 100);
        assert!(matches!(
            rx.open(&future, T0),
            Err(PacketError::Stale { .. })
        ));
    }

    #[test]
    fn old_nonces_are_forgotten() {
        let tx = PacketAuth::new(key(1), WINDOW);
        let mut rx = PacketAuth::new(key(1), WINDOW);
        for i in 0..100 {
            assert!(rx.open(&tx.seal(b"x", T0, i), T0).is_ok());
        }
        let later = T0 + 3 * WINDOW;
        assert!(rx.open(&tx.seal(b"x", later, 1_000), later).is_ok());
        assert_eq!(rx.seen.len(), 1);
    }

    #[test]
    fn short_or_foreign_datagrams_are_malformed() {
        let mut rx = PacketAuth::new(key(1), WINDOW);
        for junk in [
            &b""[..],
            b"\xd5",
            b"GET / HTTP/1.1",
            b"\xd5\x01short",
            b"\xd5\x07",
        ] {
            assert!(matches!(
                rx.open(junk, T0),
                Err(PacketError::Malformed { .. })
            ));
        }
    }
}
