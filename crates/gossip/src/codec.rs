//! foca's wire format: bincode 2 over serde (foca 2 ships no bincode codec).

use bytes::{Buf, BufMut};
use foca::{Header, Member};
use serde::{de::DeserializeOwned, Serialize};

use crate::identity::NodeIdentity;

/// Upper bound on any single decoded value; no gossip datagram is larger, so
/// a hostile length prefix can never make bincode allocate more.
const DECODE_LIMIT: usize = 64 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Why a foca header or member could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Serialization failed (not expected for our types).
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid value (junk or a foreign protocol).
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The item does not fit in the space left in the packet; foca then sends
    /// the packet without it.
    #[error("{needed} bytes needed but only {left} left in the packet")]
    BufferFull {
        /// Encoded size of the item.
        needed: usize,
        /// Space left in the packet.
        left: usize,
    },
}

/// Encodes foca's headers and members with bincode 2 (`config::standard()`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BincodeCodec;

impl BincodeCodec {
    /// Encodes `value`, writing nothing when it does not fit (foca requires
    /// that the buffer is left clean in that case).
    fn put<V: Serialize>(value: &V, mut buf: impl BufMut) -> Result<(), CodecError> {
        let bytes = bincode::serde::encode_to_vec(value, config())?;
        let left = buf.remaining_mut();
        if bytes.len() > left {
            return Err(CodecError::BufferFull {
                needed: bytes.len(),
                left,
            });
        }
        buf.put_slice(&bytes);
        Ok(())
    }

    /// Decodes one value from the front of `buf` and advances past it.
    fn take<V: DeserializeOwned>(mut buf: impl Buf) -> Result<V, CodecError> {
        // foca hands us contiguous buffers, so the first chunk is all of it.
        let (value, used) = bincode::serde::decode_from_slice(buf.chunk(), config())?;
        buf.advance(used);
        Ok(value)
    }

    /// Encodes a header on its own (used to re-address an `Announce`).
    pub(crate) fn header_bytes(header: &Header<NodeIdentity>) -> Result<Vec<u8>, CodecError> {
        Ok(bincode::serde::encode_to_vec(header, config())?)
    }
}

impl foca::Codec<NodeIdentity> for BincodeCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        Self::put(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<NodeIdentity>, CodecError> {
        Self::take(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        Self::put(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<NodeIdentity>, CodecError> {
        Self::take(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;
    use foca::{Codec, Message, State};

    fn ident(id: &str) -> NodeIdentity {
        NodeIdentity {
            id: id.into(),
            role: Role::Datanode,
            addr: "10.0.0.1:9000".parse().expect("literal address"),
            generation: 42,
        }
    }

    #[test]
    fn header_and_member_round_trip_back_to_back() {
        let header = Header {
            src: ident("a"),
            src_incarnation: 3,
            dst: ident("b"),
            message: Message::PingReq {
                target: ident("c"),
                probe_number: 9,
            },
        };
        let member = Member::new(ident("d"), 7, State::Suspect);
        let mut buf = Vec::new();
        BincodeCodec
            .encode_header(&header, &mut buf)
            .expect("encode");
        BincodeCodec
            .encode_member(&member, &mut buf)
            .expect("encode");
        let mut slice = &buf[..];
        assert_eq!(
            BincodeCodec.decode_header(&mut slice).expect("decode"),
            header
        );
        assert_eq!(
            BincodeCodec.decode_member(&mut slice).expect("decode"),
            member
        );
        assert!(slice.is_empty());
    }

    #[test]
    fn full_buffer_is_left_clean() {
        let member = Member::alive(ident("a-rather-long-identifier"));
        let mut buf = Vec::new().limit(8);
        let err = BincodeCodec.encode_member(&member, &mut buf).unwrap_err();
        assert!(matches!(err, CodecError::BufferFull { .. }));
        assert!(buf.get_ref().is_empty());
    }

    #[test]
    fn junk_is_an_error_not_a_panic() {
        for junk in [&b""[..], b"\xff\xff\xff\xff\xff", b"\x00\x01"] {
            let mut slice = junk;
            assert!(BincodeCodec.decode_header(&mut slice).is_err());
        }
    }
}
