//! The Hadoop IPC server over real sockets with a stub handler: calls in
//! flight answered out of order, and every kind of malformed input refused
//! with a reply where the protocol has one and a closed connection, while
//! the server keeps serving other clients.

use bytes::Bytes;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tdfs_hdfs_rpc::ipc::{
    self, call_frame, client_hello, frame, parse_reply, request_header, Call, Outcome, MAX_FRAME,
};
use tdfs_hdfs_rpc::proto::common::rpc_response_header_proto::{RpcErrorCodeProto, RpcStatusProto};
use tdfs_hdfs_rpc::proto::common::RpcResponseHeaderProto;
use tdfs_hdfs_rpc::proto::hdfs::{GetFileInfoRequestProto, GetFileInfoResponseProto};
use tdfs_hdfs_rpc::server::{serve, IpcConfig, IpcHandler, Peer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Answers `getFileInfo` after sleeping as many ms as the path says
/// (`/sleep/N`), naming the caller in the owner field; refuses other methods.
struct Stub;

impl IpcHandler for Stub {
    async fn call(&self, peer: &Peer, call: Call) -> Outcome {
        if call.method.method_name != "getFileInfo" {
            return Outcome::Failure {
                fatal: false,
                class: "org.apache.hadoop.ipc.RpcNoSuchMethodException".into(),
                message: format!("Unknown method {}", call.method.method_name),
                code: RpcErrorCodeProto::ErrorNoSuchMethod,
            };
        }
        let Ok(req) = GetFileInfoRequestProto::decode_length_delimited(call.body) else {
            return Outcome::Failure {
                fatal: true,
                class: "org.apache.hadoop.ipc.RpcServerException".into(),
                message: "cannot decode".into(),
                code: RpcErrorCodeProto::FatalDeserializingRequest,
            };
        };
        if let Some(ms) = req.src.strip_prefix("/sleep/") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        }
        let mut fs = tdfs_hdfs_rpc::proto::hdfs::HdfsFileStatusProto {
            owner: peer.user.clone(),
            ..Default::default()
        };
        fs.path = req.src.into_bytes();
        Outcome::Success(GetFileInfoResponseProto { fs: Some(fs) }.encode_length_delimited_to_vec())
    }
}

async fn server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, shutdown) = tdfs_rpc::Shutdown::new();
    std::mem::forget(stop);
    let cfg = IpcConfig {
        handshake_timeout: Duration::from_secs(2),
        frame_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    tokio::spawn(serve(l, Arc::new(Stub), cfg, shutdown));
    addr
}

/// Reads one reply frame: header and body.
async fn reply(s: &mut TcpStream) -> (RpcResponseHeaderProto, Bytes) {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .expect("a reply in time")
        .expect("a reply");
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    parse_reply(Bytes::from(buf)).unwrap()
}

/// Whether the server closed the connection (EOF within 5 s).
async fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn connected(addr: std::net::SocketAddr, user: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&client_hello(user, &[1; 16])).await.unwrap();
    s
}

async fn stat(s: &mut TcpStream, call_id: i32, path: &str) {
    let req = GetFileInfoRequestProto { src: path.into() };
    s.write_all(&call_frame(call_id, &[1; 16], "getFileInfo", &req))
        .await
        .unwrap();
}

/// A healthy client still gets answers.
async fn assert_serving(addr: std::net::SocketAddr) {
    let mut s = connected(addr, "carol").await;
    stat(&mut s, 1, "/ok").await;
    let (h, body) = reply(&mut s).await;
    assert_eq!(h.status, RpcStatusProto::Success as i32);
    let r = GetFileInfoResponseProto::decode_length_delimited(body).unwrap();
    assert_eq!(r.fs.unwrap().owner, "carol");
}

#[tokio::test]
async fn many_calls_in_flight_answer_out_of_order() {
    let addr = server().await;
    let mut s = connected(addr, "alice").await;
    stat(&mut s, 1, "/sleep/300").await;
    stat(&mut s, 2, "/sleep/0").await;
    let (first, _) = reply(&mut s).await;
    let (second, body) = reply(&mut s).await;
    assert_eq!((first.call_id, second.call_id), (2, 1));
    assert_eq!(second.client_id.as_deref(), Some(&[1u8; 16][..]));
    let r = GetFileInfoResponseProto::decode_length_delimited(body).unwrap();
    assert_eq!(r.fs.unwrap().path, b"/sleep/300");
    // A ping gets no reply; the next call does.
    s.write_all(&frame(&[&request_header(ipc::PING_CALL_ID, &[1; 16], -1)]))
        .await
        .unwrap();
    stat(&mut s, 3, "/x").await;
    assert_eq!(reply(&mut s).await.0.call_id, 3);
}

#[tokio::test]
async fn unknown_method_is_an_error_reply_on_a_live_connection() {
    let addr = server().await;
    let mut s = connected(addr, "alice").await;
    let req = GetFileInfoRequestProto { src: "/".into() };
    s.write_all(&call_frame(5, &[1; 16], "noSuchMethod", &req))
        .await
        .unwrap();
    let (h, _) = reply(&mut s).await;
    assert_eq!(h.status, RpcStatusProto::Error as i32);
    assert_eq!(
        h.exception_class_name.as_deref(),
        Some("org.apache.hadoop.ipc.RpcNoSuchMethodException")
    );
    // As in Hadoop, the connection stays usable (clients probe methods).
    stat(&mut s, 6, "/after").await;
    assert_eq!(reply(&mut s).await.0.call_id, 6);
}

#[tokio::test]
async fn malformed_input_gets_a_fatal_reply_and_a_closed_connection() {
    let addr = server().await;
    let fatal = |h: &RpcResponseHeaderProto, code: RpcErrorCodeProto| {
        assert_eq!(h.status, RpcStatusProto::Fatal as i32, "{h:?}");
        assert_eq!(h.error_detail, Some(code as i32), "{h:?}");
    };

    // Bad preamble: closed without a reply.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"xrpc\x09\x00\x00").await.unwrap();
    assert!(closed(&mut s).await);
    // An HTTP request gets Hadoop's hint.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text).await;
    assert!(text.contains("HTTP request to a Hadoop IPC port"), "{text}");

    // Wrong version.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hrpc\x07\x00\x00").await.unwrap();
    let (h, _) = reply(&mut s).await;
    fatal(&h, RpcErrorCodeProto::FatalVersionMismatch);
    assert!(h.error_msg.unwrap().contains("client version 7"));
    assert!(closed(&mut s).await);

    // SASL is refused with a clear message.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hrpc\x09\x00\xdf").await.unwrap();
    let (h, _) = reply(&mut s).await;
    fatal(&h, RpcErrorCodeProto::FatalUnauthorized);
    assert!(h.error_msg.unwrap().contains("simple authentication"));
    assert!(closed(&mut s).await);

    // Oversized length, after a good handshake.
    let mut s = connected(addr, "mallory").await;
    s.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
        .await
        .unwrap();
    let (h, _) = reply(&mut s).await;
    fatal(&h, RpcErrorCodeProto::FatalInvalidRpcHeader);
    assert!(closed(&mut s).await);

    // Truncated protobuf inside a well-framed call header.
    let mut s = connected(addr, "mallory").await;
    s.write_all(&[0, 0, 0, 3, 0x7f, 0x08, 0x02]).await.unwrap();
    let (h, _) = reply(&mut s).await;
    fatal(&h, RpcErrorCodeProto::FatalDeserializingRequest);
    assert!(closed(&mut s).await);

    // A request body that does not decode (the method's handler refuses it).
    let mut s = connected(addr, "mallory").await;
    let m = tdfs_hdfs_rpc::proto::common::RequestHeaderProto {
        method_name: "getFileInfo".into(),
        declaring_class_protocol_name: ipc::CLIENT_PROTOCOL.into(),
        client_protocol_version: 1,
    };
    let mut f = frame(&[&request_header(9, &[1; 16], 0), &m]);
    f.extend_from_slice(&[0x20, 0x0a, 0x05]); // claims 32 bytes, has 2
    let n = (f.len() - 4) as u32;
    f[..4].copy_from_slice(&n.to_be_bytes());
    s.write_all(&f).await.unwrap();
    let (h, _) = reply(&mut s).await;
    assert_eq!(h.call_id, 9);
    fatal(&h, RpcErrorCodeProto::FatalDeserializingRequest);
    assert!(closed(&mut s).await);

    // A call before the connection context.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"hrpc\x09\x00\x00").await.unwrap();
    stat(&mut s, 0, "/").await;
    let (h, _) = reply(&mut s).await;
    fatal(&h, RpcErrorCodeProto::FatalInvalidRpcHeader);
    assert!(closed(&mut s).await);

    // A frame cut short, then silence: closed after the frame timeout.
    let mut s = connected(addr, "mallory").await;
    s.write_all(&[0, 0, 1, 0, 1, 2, 3]).await.unwrap();
    assert!(closed(&mut s).await);

    assert_serving(addr).await;
}
