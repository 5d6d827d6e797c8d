//! Hadoop IPC framing, sans-IO (as `org.apache.hadoop.ipc.Server` and
//! `Client` speak it, protocol version 9):
//!
//! ```text
//! "hrpc" | version 9 | service class | auth protocol (0 = none, -33 = SASL)
//! then frames: [u32 BE length][varint-delimited RpcRequestHeaderProto][varint-delimited payload...]
//! ```
//!
//! The first frame carries call id −3 and an `IpcConnectionContextProto`
//! (user, protocol); each later frame a `RequestHeaderProto` (method,
//! protocol, version) and the request. Replies are framed the same way:
//! `RpcResponseHeaderProto` then, on success, the response message.
//!
//! Every length is checked before anything is allocated: the frame against
//! [`MAX_FRAME`], each varint length against the bytes left in its frame.

use crate::proto::common::rpc_response_header_proto::{RpcErrorCodeProto, RpcStatusProto};
use crate::proto::common::{
    IpcConnectionContextProto, RequestHeaderProto, RpcKindProto, RpcRequestHeaderProto,
    RpcResponseHeaderProto,
};
use bytes::{Buf, Bytes};
use prost::Message;

/// The preamble's magic.
pub const MAGIC: &[u8; 4] = b"hrpc";
/// The only IPC version spoken (Hadoop 2.x and 3.x).
pub const VERSION: u8 = 9;
/// Auth protocol byte of simple authentication (no SASL exchange).
pub const AUTH_NONE: u8 = 0;
/// Auth protocol byte of SASL (−33), refused: tdfs clients use simple auth.
pub const AUTH_SASL: u8 = 0xDF;
/// Largest frame accepted, as Hadoop's `ipc.maximum.data.length` (64 MiB).
pub const MAX_FRAME: usize = 64 << 20;
/// Call id of the connection context frame.
pub const CONNECTION_CONTEXT_CALL_ID: i32 = -3;
/// Call id of a client's keep-alive ping (no reply).
pub const PING_CALL_ID: i32 = -4;
/// Call id of SASL exchanges.
pub const SASL_CALL_ID: i32 = -33;
/// Call id used in replies to a connection that never got as far as a call.
pub const INVALID_CALL_ID: i32 = -1;
/// The protocol `hdfs://` clients name in the context and in every call.
pub const CLIENT_PROTOCOL: &str = "org.apache.hadoop.hdfs.protocol.ClientProtocol";

/// Why a peer's bytes were refused; each maps to Hadoop's fatal reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpcError {
    #[error("not a Hadoop IPC connection (preamble {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("Server IPC version {VERSION} cannot communicate with client version {0}")]
    Version(u8),
    #[error("auth protocol {0} is not supported: this server only speaks simple authentication (hadoop.security.authentication=simple, no SASL)")]
    Auth(i8),
    #[error("Requested data length {0} is longer than maximum configured RPC length {MAX_FRAME}")]
    Oversized(u64),
    #[error("malformed {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("invalid RPC header: {0}")]
    Header(String),
}

impl IpcError {
    /// The `RpcErrorCodeProto` of the fatal reply.
    pub fn code(&self) -> RpcErrorCodeProto {
        match self {
            IpcError::Version(_) => RpcErrorCodeProto::FatalVersionMismatch,
            IpcError::Auth(_) => RpcErrorCodeProto::FatalUnauthorized,
            IpcError::Decode { .. } => RpcErrorCodeProto::FatalDeserializingRequest,
            _ => RpcErrorCodeProto::FatalInvalidRpcHeader,
        }
    }

    /// The Java class Hadoop's server names in the same situation.
    pub fn class(&self) -> &'static str {
        match self {
            IpcError::Version(_) => "org.apache.hadoop.ipc.RPC$VersionMismatch",
            IpcError::Auth(_) => "org.apache.hadoop.security.AccessControlException",
            _ => "org.apache.hadoop.ipc.RpcServerException",
        }
    }

    /// The call id a fatal reply carries: SASL's for an auth refusal (what
    /// a SASL client reads next), otherwise −1.
    pub fn reply_call_id(&self) -> i32 {
        match self {
            IpcError::Auth(_) => SASL_CALL_ID,
            _ => INVALID_CALL_ID,
        }
    }

    fn decode(what: &'static str, e: impl std::fmt::Display) -> Self {
        IpcError::Decode {
            what,
            detail: e.to_string(),
        }
    }
}

/// The 7-byte connection preamble.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub version: u8,
    pub service_class: u8,
    pub auth: u8,
}

/// Checks the preamble: magic, version 9 and simple authentication.
pub fn parse_preamble(b: &[u8; 7]) -> Result<Preamble, IpcError> {
    let magic: [u8; 4] = [b[0], b[1], b[2], b[3]];
    if &magic != MAGIC {
        return Err(IpcError::BadMagic(magic));
    }
    let p = Preamble {
        version: b[4],
        service_class: b[5],
        auth: b[6],
    };
    if p.version != VERSION {
        return Err(IpcError::Version(p.version));
    }
    if p.auth != AUTH_NONE {
        return Err(IpcError::Auth(p.auth as i8));
    }
    Ok(p)
}

/// Checks a frame's 4-byte length against the cap.
pub fn frame_len(b: [u8; 4]) -> Result<usize, IpcError> {
    let n = u32::from_be_bytes(b) as u64;
    // Hadoop reads a signed int: anything above i32::MAX is negative there.
    if n > MAX_FRAME as u64 {
        return Err(IpcError::Oversized(n));
    }
    Ok(n as usize)
}

/// Decodes one varint-delimited message from the front of `buf`; its
/// length must fit in what is left (prost checks this before copying).
pub fn take_delimited<M: Message + Default>(
    buf: &mut Bytes,
    what: &'static str,
) -> Result<M, IpcError> {
    if !buf.has_remaining() {
        return Err(IpcError::decode(what, "missing"));
    }
    M::decode_length_delimited(buf).map_err(|e| IpcError::decode(what, e))
}

/// The connection context: who the caller is and which protocol it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Context {
    pub client_id: Vec<u8>,
    /// The effective user (simple authentication trusts the name).
    pub user: String,
    pub protocol: String,
}

/// Parses the first frame: a header with call id −3 and the context.
pub fn parse_context(mut frame: Bytes) -> Result<Context, IpcError> {
    let h: RpcRequestHeaderProto = take_delimited(&mut frame, "RpcRequestHeaderProto")?;
    if h.call_id != CONNECTION_CONTEXT_CALL_ID {
        return Err(IpcError::Header(format!(
            "the first call must be the connection context (call id {CONNECTION_CONTEXT_CALL_ID}), got call id {}",
            h.call_id
        )));
    }
    let c: IpcConnectionContextProto = take_delimited(&mut frame, "IpcConnectionContextProto")?;
    let user = c
        .user_info
        .as_ref()
        .and_then(|u| u.effective_user.clone().or_else(|| u.real_user.clone()))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| IpcError::Header("the connection context names no user".into()))?;
    Ok(Context {
        client_id: h.client_id,
        user,
        protocol: c.protocol.unwrap_or_else(|| CLIENT_PROTOCOL.to_string()),
    })
}

/// One call as read from a frame; `body` holds the (still encoded,
/// varint-delimited) request for the method's handler.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub header: RpcRequestHeaderProto,
    pub method: RequestHeaderProto,
    pub body: Bytes,
}

/// What a frame after the context holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A keep-alive; Hadoop's server ignores it.
    Ping,
    Call(Box<Call>),
}

/// Parses a call frame. Only protobuf calls are accepted (Writable RPC is
/// gone from Hadoop 3); a request that does not decode is fatal.
pub fn parse_call(mut frame: Bytes) -> Result<Frame, IpcError> {
    let header: RpcRequestHeaderProto = take_delimited(&mut frame, "RpcRequestHeaderProto")?;
    if header.call_id == PING_CALL_ID {
        return Ok(Frame::Ping);
    }
    if header.call_id < 0 {
        return Err(IpcError::Header(format!(
            "unexpected call id {}",
            header.call_id
        )));
    }
    if header.rpc_kind != Some(RpcKindProto::RpcProtocolBuffer as i32) {
        return Err(IpcError::Header(format!(
            "unsupported rpc kind {:?} (only protocol buffers)",
            header.rpc_kind
        )));
    }
    let method: RequestHeaderProto = take_delimited(&mut frame, "RequestHeaderProto")?;
    Ok(Frame::Call(Box::new(Call {
        header,
        method,
        body: frame,
    })))
}

/// A reply's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The method's response, already varint-delimited.
    Success(Vec<u8>),
    /// A failed call (the connection stays open) or a fatal error (the
    /// server closes it after this reply).
    Failure {
        fatal: bool,
        class: String,
        message: String,
        code: RpcErrorCodeProto,
    },
}

/// Fields of the request header a reply echoes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplyTo {
    pub call_id: i32,
    pub client_id: Vec<u8>,
    pub retry_count: Option<i32>,
    /// The server's state id, sent when the client sent one.
    pub state_id: Option<i64>,
}

impl ReplyTo {
    pub fn of(h: &RpcRequestHeaderProto) -> Self {
        ReplyTo {
            call_id: h.call_id,
            client_id: h.client_id.clone(),
            retry_count: h.retry_count,
            state_id: None,
        }
    }
}

/// Encodes a whole reply frame, length prefix included.
pub fn encode_reply(to: &ReplyTo, outcome: &Outcome) -> Vec<u8> {
    let mut h = RpcResponseHeaderProto {
        call_id: to.call_id as u32,
        status: RpcStatusProto::Success as i32,
        server_ipc_version_num: Some(VERSION as u32),
        client_id: (!to.client_id.is_empty()).then(|| to.client_id.clone()),
        retry_count: to.retry_count,
        state_id: to.state_id,
        ..Default::default()
    };
    let body: &[u8] = match outcome {
        Outcome::Success(b) => b,
        Outcome::Failure {
            fatal,
            class,
            message,
            code,
        } => {
            h.status = if *fatal {
                RpcStatusProto::Fatal
            } else {
                RpcStatusProto::Error
            } as i32;
            h.exception_class_name = Some(class.clone());
            h.error_msg = Some(message.clone());
            h.error_detail = Some(*code as i32);
            &[]
        }
    };
    let head = h.encode_length_delimited_to_vec();
    let len = (head.len() + body.len()) as u32;
    let mut out = Vec::with_capacity(4 + len as usize);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(body);
    out
}

/// The fatal reply for a refused connection or frame.
pub fn fatal_reply(e: &IpcError, to: Option<&ReplyTo>) -> Vec<u8> {
    let fallback = ReplyTo {
        call_id: e.reply_call_id(),
        ..Default::default()
    };
    encode_reply(
        to.unwrap_or(&fallback),
        &Outcome::Failure {
            fatal: true,
            class: e.class().to_string(),
            message: e.to_string(),
            code: e.code(),
        },
    )
}

/// The client's side, for tests, fuzz seeds and tools: a frame of
/// varint-delimited messages.
pub fn frame(parts: &[&dyn ErasedMessage]) -> Vec<u8> {
    let body: Vec<u8> = parts.iter().flat_map(|m| m.delimited()).collect();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A message that can be written varint-delimited (object safe).
pub trait ErasedMessage {
    fn delimited(&self) -> Vec<u8>;
}

impl<M: Message> ErasedMessage for M {
    fn delimited(&self) -> Vec<u8> {
        self.encode_length_delimited_to_vec()
    }
}

/// The request header of a protobuf call, as Hadoop's client fills it.
pub fn request_header(call_id: i32, client_id: &[u8], retry_count: i32) -> RpcRequestHeaderProto {
    RpcRequestHeaderProto {
        rpc_kind: Some(RpcKindProto::RpcProtocolBuffer as i32),
        rpc_op: Some(0),
        call_id,
        client_id: client_id.to_vec(),
        retry_count: Some(retry_count),
        ..Default::default()
    }
}

/// The bytes a simple-auth client sends first: preamble and context.
pub fn client_hello(user: &str, client_id: &[u8]) -> Vec<u8> {
    use crate::proto::common::UserInformationProto;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[VERSION, 0, AUTH_NONE]);
    let ctx = IpcConnectionContextProto {
        user_info: Some(UserInformationProto {
            effective_user: Some(user.to_string()),
            real_user: None,
        }),
        protocol: Some(CLIENT_PROTOCOL.to_string()),
    };
    out.extend(frame(&[
        &request_header(CONNECTION_CONTEXT_CALL_ID, client_id, -1),
        &ctx,
    ]));
    out
}

/// A call frame of `method` of ClientProtocol.
pub fn call_frame(
    call_id: i32,
    client_id: &[u8],
    method: &str,
    req: &dyn ErasedMessage,
) -> Vec<u8> {
    let m = RequestHeaderProto {
        method_name: method.to_string(),
        declaring_class_protocol_name: CLIENT_PROTOCOL.to_string(),
        client_protocol_version: 1,
    };
    frame(&[&request_header(call_id, client_id, 0), &m, req])
}

/// Splits a reply frame (without its length prefix) into header and body.
pub fn parse_reply(mut frame: Bytes) -> Result<(RpcResponseHeaderProto, Bytes), IpcError> {
    let h = take_delimited(&mut frame, "RpcResponseHeaderProto")?;
    Ok((h, frame))
}

#[cfg(test)]
#[path = "ipc_tests.rs"]
mod tests;
