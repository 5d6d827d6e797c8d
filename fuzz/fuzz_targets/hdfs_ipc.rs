//! Hadoop IPC as the HDFS front end of a metadata node reads it from
//! anyone who can reach its port (`tdfs_hdfs_rpc::ipc` and `::server`).
//! The first byte picks the piece size of the in-memory stream and whether
//! the bytes also go through a whole server connection; the rest is what
//! the peer sends: preamble, connection context, call frames. Every frame
//! is also parsed directly, and each call's body decoded as the requests
//! the namenode service decodes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use std::sync::Arc;
use tdfs_fuzz::{block_on, OwnedStream};
use tdfs_hdfs_rpc::ipc::{self, Call, Frame, Outcome};
use tdfs_hdfs_rpc::proto::hdfs as p;
use tdfs_hdfs_rpc::server::{serve_connection, IpcConfig, IpcHandler, Peer};

/// Decodes the body as a few ClientNamenodeProtocol requests, as the real
/// service's decoder does, and answers.
struct Stub;

fn bodies(b: &Bytes) {
    let _ = p::GetFileInfoRequestProto::decode_length_delimited(b.clone());
    let _ = p::GetListingRequestProto::decode_length_delimited(b.clone());
    let _ = p::CreateRequestProto::decode_length_delimited(b.clone());
    let _ = p::AddBlockRequestProto::decode_length_delimited(b.clone());
    let _ = p::GetAdditionalDatanodeRequestProto::decode_length_delimited(b.clone());
    let _ = p::UpdatePipelineRequestProto::decode_length_delimited(b.clone());
}

impl IpcHandler for Stub {
    async fn call(&self, _peer: &Peer, call: Call) -> Outcome {
        bodies(&call.body);
        Outcome::Success(Vec::new())
    }
}

fn frames(mut rest: &[u8]) {
    let mut first = true;
    while rest.len() >= 4 {
        let Ok(n) = ipc::frame_len([rest[0], rest[1], rest[2], rest[3]]) else {
            return;
        };
        let end = (4 + n).min(rest.len());
        let f = Bytes::copy_from_slice(&rest[4..end]);
        rest = &rest[end..];
        if first {
            let _ = ipc::parse_context(f.clone());
            first = false;
        }
        if let Ok(Frame::Call(c)) = ipc::parse_call(f.clone()) {
            bodies(&c.body);
        }
        let _ = ipc::parse_reply(f);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if rest.len() >= 7 {
        let _ = ipc::parse_preamble(rest[..7].try_into().unwrap());
        frames(&rest[7..]);
    }
    if mode & 0x80 != 0 {
        let stream = OwnedStream::new(rest.to_vec(), (mode & 0x7f) as usize + 1);
        let (_stop, shutdown) = tdfs_rpc::Shutdown::new();
        let addr = "127.0.0.1:9".parse().unwrap();
        block_on(serve_connection(stream, addr, Arc::new(Stub), IpcConfig::default(), shutdown));
    }
});
