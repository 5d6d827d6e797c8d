//! Per-connection frame authentication on key-proved connections.
//!
//! When both ends of a connection proved the cluster key in the handshake,
//! each derives two session keys from the key and both handshake nonces:
//!
//! ```text
//! k_c2s = HMAC(k, "session" | "c2s" | nonce_c | nonce_s)
//! k_s2c = HMAC(k, "session" | "s2c" | nonce_c | nonce_s)
//! ```
//!
//! and every frame after the handshake carries a 32-byte trailer
//! `HMAC(k_dir, dir | seq | body)`, where `seq` counts the frames sent in that
//! direction from 0. The receiver keeps its own counter, so a tampered,
//! replayed (within or across connections), reordered or dropped frame
//! fails its check, and the connection is closed. The trailer is counted in
//! the frame's length prefix.

use crate::auth::{hmac_sha256, mac_eq, ClusterKey};
use tdfs_proto::codec::HEADER_LEN;
use tdfs_proto::FsError;

/// Bytes of the MAC trailer of a sealed frame.
pub const MAC_LEN: usize = 32;

/// Which way a frame travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::ClientToServer => b"c2s",
            Direction::ServerToClient => b"s2c",
        }
    }
}

/// One direction's key and frame counter.
#[derive(Clone)]
pub struct FrameMac {
    key: [u8; 32],
    dir: Direction,
    seq: u64,
}

impl std::fmt::Debug for FrameMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameMac")
            .field("dir", &self.dir)
            .field("seq", &self.seq)
            .finish()
    }
}

impl FrameMac {
    fn new(key: &ClusterKey, dir: Direction, nonce_c: &[u8; 16], nonce_s: &[u8; 16]) -> Self {
        FrameMac {
            key: key.mac(&[b"session", dir.label(), nonce_c, nonce_s]),
            dir,
            seq: 0,
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        hmac_sha256(
            &self.key,
            &[self.dir.label(), &self.seq.to_be_bytes(), body],
        )
    }

    /// Appends the MAC trailer to a complete frame (header included, as
    /// `codec::encode_frame` builds it) and fixes its length prefix.
    pub fn seal(&mut self, frame: &mut Vec<u8>) -> Result<(), FsError> {
        if frame.len() < HEADER_LEN {
            return Err(FsError::Internal("sealing a frame without a header".into()));
        }
        let tag = self.tag(&frame[HEADER_LEN..]);
        frame.extend_from_slice(&tag);
        let len = frame.len() - HEADER_LEN;
        if len > u32::MAX as usize {
            return Err(FsError::Internal(format!(
                "frame of {len} bytes is too large"
            )));
        }
        frame[..HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
        self.seq += 1;
        Ok(())
    }

    /// Checks and strips the MAC trailer of a received frame body.
    pub fn open(&mut self, mut body: Vec<u8>) -> Result<Vec<u8>, FsError> {
        if body.len() < MAC_LEN {
            return Err(FsError::Unauthenticated(
                "frame without its MAC on an authenticated connection".into(),
            ));
        }
        let split = body.len() - MAC_LEN;
        let mut got = [0u8; MAC_LEN];
        got.copy_from_slice(&body[split..]);
        body.truncate(split);
        if !mac_eq(&self.tag(&body), &got) {
            return Err(FsError::Unauthenticated(format!(
                "frame {} fails its MAC (tampered, replayed or out of order)",
                self.seq
            )));
        }
        self.seq += 1;
        Ok(body)
    }
}

/// The frame keys of one end of a key-proved connection.
#[derive(Clone, Debug)]
pub struct SessionKeys {
    /// Seals what this end sends.
    pub send: FrameMac,
    /// Opens what this end receives.
    pub recv: FrameMac,
}

impl SessionKeys {
    /// The client end's keys.
    pub fn client(key: &ClusterKey, nonce_c: &[u8; 16], nonce_s: &[u8; 16]) -> Self {
        SessionKeys {
            send: FrameMac::new(key, Direction::ClientToServer, nonce_c, nonce_s),
            recv: FrameMac::new(key, Direction::ServerToClient, nonce_c, nonce_s),
        }
    }

    /// The server end's keys.
    pub fn server(key: &ClusterKey, nonce_c: &[u8; 16], nonce_s: &[u8; 16]) -> Self {
        SessionKeys {
            send: FrameMac::new(key, Direction::ServerToClient, nonce_c, nonce_s),
            recv: FrameMac::new(key, Direction::ClientToServer, nonce_c, nonce_s),
        }
    }
}

/// Seals `frame` when the connection is authenticated.
pub fn seal(mac: Option<&mut FrameMac>, frame: &mut Vec<u8>) -> Result<(), FsError> {
    match mac {
        Some(m) => m.seal(frame),
        None => Ok(()),
    }
}

/// Opens `body` when the connection is authenticated.
pub fn open(mac: Option<&mut FrameMac>, body: Vec<u8>) -> Result<Vec<u8>, FsError> {
    match mac {
        Some(m) => m.open(body),
        None => Ok(body),
    }
}

/// The frame cap to read with: room for the trailer when frames are sealed.
pub fn max_with_mac(max: usize, sealed: bool) -> usize {
    if sealed {
        max + MAC_LEN
    } else {
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tdfs_proto::codec::encode_frame;

    fn pair() -> (SessionKeys, SessionKeys) {
        let k = ClusterKey::new(vec![7u8; 32]).unwrap();
        let (nc, ns) = ([1u8; 16], [2u8; 16]);
        (
            SessionKeys::client(&k, &nc, &ns),
            SessionKeys::server(&k, &nc, &ns),
        )
    }

    #[test]
    fn seals_and_opens_in_order() {
        let (mut c, mut s) = pair();
        for i in 0..5u32 {
            let mut f = encode_frame(&i).unwrap();
            c.send.seal(&mut f).unwrap();
            let body = s.recv.open(f[HEADER_LEN..].to_vec()).unwrap();
            let back: u32 = tdfs_proto::codec::decode(&body).unwrap();
            assert_eq!(back, i);
        }
    }

    #[test]
    fn rejects_tampering_replay_reordering_and_reflection() {
        let (mut c, mut s) = pair();
        let mut f0 = encode_frame(&"zero").unwrap();
        c.send.seal(&mut f0).unwrap();
        let mut f1 = encode_frame(&"one").unwrap();
        c.send.seal(&mut f1).unwrap();
        // Out of order.
        assert!(s.clone().recv.open(f1[HEADER_LEN..].to_vec()).is_err());
        // Tampered.
        let mut bad = f0[HEADER_LEN..].to_vec();
        bad[0] ^= 1;
        assert!(s.clone().recv.open(bad).is_err());
        // Reflected back to its sender.
        assert!(c.clone().recv.open(f0[HEADER_LEN..].to_vec()).is_err());
        // In order, then a replay.
        s.recv.open(f0[HEADER_LEN..].to_vec()).unwrap();
        assert!(s.recv.clone().open(f0[HEADER_LEN..].to_vec()).is_err());
        s.recv.open(f1[HEADER_LEN..].to_vec()).unwrap();
    }
}
