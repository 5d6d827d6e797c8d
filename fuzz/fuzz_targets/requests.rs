//! Every request decoder: the first byte picks a wire type, the rest is
//! decoded as it. Covers the metadata service messages, the data-transfer
//! control messages and packet headers, the Raft RPCs carried in
//! `Request::Raft`, the connection handshake (both sides, driven over an
//! in-memory stream), gossip datagrams (envelope and foca payload) and path
//! validation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tdfs_fuzz::{block_on, MemStream};
use tdfs_gossip::auth::PacketAuth;
use tdfs_gossip::{ClusterKey, GossipConfig, GossipCore, NodeIdentity, Role};
use tdfs_namespace::Batch;
use tdfs_meta_raft::types::{NodeId, TypeConfig};
use tdfs_proto::codec::{decode, decode_large};
use tdfs_proto::meta::*;
use tdfs_proto::{path, FsError};
use tdfs_rpc::{handshake, Channel, Envelope, Reply};
use tdfs_transfer::{Finish, Op, ReadReply, WriteAck, PACKET_HEADER};

fn d<T: serde::de::DeserializeOwned>(b: &[u8]) {
    let _ = decode::<T>(b);
}

fn key() -> ClusterKey {
    ClusterKey::new(vec![7u8; 32]).expect("key")
}

fn check_path(b: &[u8]) {
    let Ok(s) = std::str::from_utf8(b) else {
        return;
    };
    match path::components(s) {
        Ok(comps) => {
            assert!(comps.len() <= path::MAX_DEPTH);
            for c in &comps {
                assert!(!c.is_empty() && *c != "." && *c != "..");
                assert!(!c.contains('/') && !c.contains('\0') && !c.contains(':'));
                assert!(c.len() <= path::MAX_COMPONENT_LEN);
            }
            let canon = path::normalize(s).expect("valid path normalizes");
            assert_eq!(path::normalize(&canon).expect("canonical"), canon);
            assert_eq!(path::components(&canon).expect("canonical"), comps);
            if let Some((parent, name)) = path::split_parent(&canon) {
                assert!(path::is_within(&canon, parent));
                assert_eq!(path::child(parent, name), canon);
            }
        }
        Err(e) => assert!(matches!(e, FsError::InvalidPath { .. }), "{e:?}"),
    }
}

fn gossip(b: &[u8], keyed: bool) {
    let now = Instant::now();
    let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // The envelope alone, with and without a key.
    let mut auth = PacketAuth::new(keyed.then(key), 30_000);
    let _ = auth.open(b, 1_700_000_000_000);
    // A whole member handling the datagram (plain: the payload reaches foca).
    let addr: SocketAddr = "10.0.0.1:9000".parse().expect("addr");
    let mut id = NodeIdentity::new("meta-1", Role::Meta, addr);
    id.generation = 1;
    let mut config = GossipConfig::new(id, vec!["10.0.0.2:9000".parse().expect("addr")]);
    config.key = keyed.then(key);
    let mut core = GossipCore::new(&config, 1, now, wall).expect("core");
    let from: SocketAddr = "10.0.0.3:9000".parse().expect("addr");
    core.handle_data(from, b, now);
    while core.poll_transmit().is_some() {}
    while core.poll_event().is_some() {}
    let _ = core.members(now);
    let _ = SystemTime::now();
}

fn handshake_server(b: &[u8], keyed: bool) {
    let k = keyed.then(key);
    block_on(async {
        let mut s = MemStream::new(b, 3);
        let _ = handshake::server(&mut s, k.as_ref()).await;
    });
}

fn handshake_client(b: &[u8], keyed: bool) {
    let k = keyed.then(key);
    block_on(async {
        let mut s = MemStream::new(b, 5);
        let _ = handshake::client(&mut s, Channel::Rpc, k.as_ref()).await;
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, b)) = data.split_first() else {
        return;
    };
    match sel % 40 {
        0 => d::<Request>(b),
        1 => d::<Response>(b),
        2 => d::<MetaRequest>(b),
        3 => d::<MetaResponse>(b),
        4 => d::<AdminRequest>(b),
        5 => d::<AdminResponse>(b),
        6 => d::<DatanodeRequest>(b),
        7 => d::<DatanodeResponse>(b),
        8 => d::<DatanodeCommand>(b),
        9 => d::<Envelope<Request>>(b),
        10 => d::<Reply<Response>>(b),
        11 => d::<FsError>(b),
        // Data transfer.
        12 => d::<Op>(b),
        13 => d::<Finish>(b),
        14 => d::<WriteAck>(b),
        15 => d::<ReadReply>(b),
        16 => {
            if let Some(h) = b.first_chunk::<PACKET_HEADER>() {
                if let Ok((len, _)) = tdfs_transfer::parse_packet_header(*h) {
                    assert!(len <= tdfs_transfer::MAX_PACKET);
                }
            }
        }
        // Raft RPCs (what `serve_raft` decodes) and their replies.
        17 => d::<AppendEntriesRequest<TypeConfig>>(b),
        18 => d::<VoteRequest<NodeId>>(b),
        19 => d::<InstallSnapshotRequest<TypeConfig>>(b),
        20 => d::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(b),
        21 => d::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(b),
        22 => {
            d::<Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>>(b)
        }
        23 => d::<Batch>(b),
        24 => {
            let _ = decode_large::<tdfs_meta_raft::types::Entry>(b);
        }
        // Handshake, both sides, with and without a cluster key.
        25 => handshake_server(b, false),
        26 => handshake_server(b, true),
        27 => handshake_client(b, false),
        28 => handshake_client(b, true),
        // Gossip datagrams.
        29..=31 => gossip(b, false),
        32 => gossip(b, true),
        // Paths.
        _ => check_path(b),
    }
});
