//! Malformed inputs of the kinds the `hdfs_ipc` and `hdfs_dtp` fuzz
//! targets (`fuzz/`, docs/fuzzing.md) generate, kept under `cargo test`:
//! each is refused without a panic and without a large allocation —
//! lengths claimed on the wire are checked before anything is allocated.
//! `write_fuzz_seeds` (ignored) writes the targets' seed inputs.

#[global_allocator]
static A: tdfs_testkit::alloc::Watch = tdfs_testkit::alloc::Watch;

use bytes::Bytes;
use std::sync::Arc;
use tdfs_hdfs_rpc::dtp::{self, OpRequest, Packet};
use tdfs_hdfs_rpc::ipc::{self, call_frame, client_hello, Call, Outcome};
use tdfs_hdfs_rpc::proto::hdfs as p;
use tdfs_hdfs_rpc::server::{serve_connection, IpcConfig, IpcHandler, Peer};
use tdfs_testkit::alloc::largest_allocation;
use tokio::io::AsyncWriteExt;

struct Echo;

impl IpcHandler for Echo {
    async fn call(&self, _peer: &Peer, call: Call) -> Outcome {
        use prost::Message;
        match p::GetFileInfoRequestProto::decode_length_delimited(call.body) {
            Ok(_) => Outcome::Success(Vec::new()),
            Err(e) => Outcome::Failure {
                fatal: true,
                class: "x".into(),
                message: e.to_string(),
                code: ipc::IpcError::Header(String::new()).code(),
            },
        }
    }
}

/// Feeds `input` to a server connection (then EOF) on a current-thread
/// runtime; returns the largest allocation it made.
fn serve(input: Vec<u8>) -> usize {
    let ((), largest) = largest_allocation(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let (_stop, shutdown) = tdfs_rpc::Shutdown::new();
            let addr = "127.0.0.1:9".parse().unwrap();
            let conn = tokio::spawn(serve_connection(
                server,
                addr,
                Arc::new(Echo),
                IpcConfig::default(),
                shutdown,
            ));
            let _ = client.write_all(&input).await;
            let _ = client.shutdown().await;
            // Drain replies so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
            conn.await.unwrap();
        })
    });
    largest
}

fn hello() -> Vec<u8> {
    client_hello("mallory", &[1; 16])
}

#[test]
fn ipc_frames_claiming_huge_lengths_allocate_nothing_like_them() {
    // 64 MiB claimed (the cap), 10 bytes sent.
    let mut a = hello();
    a.extend_from_slice(&(ipc::MAX_FRAME as u32).to_be_bytes());
    a.extend_from_slice(&[0; 10]);
    // 4 GiB - 1 claimed: over the cap.
    let mut b = hello();
    b.extend_from_slice(&[0xff; 4]);
    // A context frame whose user name claims 60 MiB inside a 20-byte frame.
    use prost::Message;
    let mut c = b"hrpc\x09\x00\x00".to_vec();
    let mut f = ipc::request_header(ipc::CONNECTION_CONTEXT_CALL_ID, &[1; 16], -1)
        .encode_length_delimited_to_vec();
    // Context: userInfo (field 2) claiming 60 MiB, one byte present.
    f.extend_from_slice(&[6, 0x12, 0x80, 0x80, 0x80, 0x1e, b'a']);
    c.extend_from_slice(&(f.len() as u32).to_be_bytes());
    c.extend_from_slice(&f);
    for input in [a, b, c] {
        let largest = serve(input);
        assert!(largest < 1 << 20, "allocated {largest} bytes at once");
    }
}

#[test]
fn ipc_garbage_is_refused_without_panic() {
    let get = p::GetFileInfoRequestProto { src: "/".into() };
    let good = call_frame(1, &[1; 16], "getFileInfo", &get);
    let inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hrpc".to_vec(),
        b"hrpc\x09\x00\x00\x00\x00".to_vec(),
        b"hrpc\x09\x00\x00\x00\x00\x00\x00".to_vec(),
        [hello(), vec![0, 0, 0, 1, 0xff]].concat(),
        [hello(), good[..good.len() - 1].to_vec()].concat(),
        [hello(), good.clone(), vec![0xde, 0xad, 0xbe, 0xef]].concat(),
        [hello(), hello()].concat(),
        (0..=255u8).cycle().take(4096).collect(),
    ];
    for input in inputs {
        assert!(serve(input) < 1 << 20);
    }
    // A clean exchange goes through the same path.
    assert!(serve([hello(), good].concat()) < 1 << 20);
}

#[test]
fn dtp_claims_are_bounded() {
    // An op whose varint claims 2 GiB.
    let op = b"\x00\x1c\x50\xff\xff\xff\xff\x07".to_vec();
    let (r, largest) = largest_allocation(|| dtp::decode_op_from(&mut Bytes::from(op)));
    assert!(r.is_err());
    assert!(largest < 1 << 20);
    // A packet claiming 16 MiB of payload with 100 bytes present waits for
    // more (the caller reads incrementally); 17 MiB is refused outright.
    let mut pk = (16u32 << 20).to_be_bytes().to_vec();
    pk.extend_from_slice(&[0, 0]);
    pk.resize(106, 0);
    let (r, largest) = largest_allocation(|| Packet::decode_from(&mut Bytes::from(pk)));
    assert!(matches!(r, Ok(None) | Err(_)));
    assert!(largest < 1 << 20);
    let big = [(17u32 << 20).to_be_bytes().to_vec(), vec![0, 27]].concat();
    assert!(Packet::decode_from(&mut Bytes::from(big)).is_err());
    // A header whose proto claims more than its header length holds.
    let bad = [4u32.to_be_bytes().to_vec(), vec![0, 3, 0x09, 0xff, 0xff]].concat();
    assert!(Packet::decode_from(&mut Bytes::from(bad)).is_err());
}

/// Writes `fuzz/seeds/hdfs_ipc/*` and `fuzz/seeds/hdfs_dtp/*`:
/// `cargo test -p tdfs-hdfs-rpc --test fuzz_regressions -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/seeds");
    let write = |dir: &str, name: &str, b: &[u8]| {
        let d = format!("{root}/{dir}");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(format!("{d}/{name}"), b).unwrap();
    };
    let get = p::GetFileInfoRequestProto { src: "/a/b".into() };
    let list = p::GetListingRequestProto {
        src: "/".into(),
        start_after: b"x".to_vec(),
        need_location: true,
    };
    let session = [
        hello(),
        call_frame(0, &[1; 16], "getFileInfo", &get),
        call_frame(1, &[1; 16], "getListing", &list),
    ]
    .concat();
    // Mode byte: 0x80 = also run the server, low bits = read piece size.
    write("hdfs_ipc", "session", &[&[0x83], &session[..]].concat());
    write("hdfs_ipc", "codec-only", &[&[0x00], &session[..]].concat());
    let block = p::ExtendedBlockProto {
        pool_id: "BP-tdfs".into(),
        block_id: 7,
        generation_stamp: 1001,
        num_bytes: Some(0),
    };
    let header = p::ClientOperationHeaderProto {
        base_header: p::BaseHeaderProto {
            block,
            token: None,
            trace_info: None,
        },
        client_name: "c".into(),
    };
    let read = OpRequest::ReadBlock(p::OpReadBlockProto {
        header: header.clone(),
        offset: 0,
        len: 100,
        ..Default::default()
    });
    write("hdfs_dtp", "read_block", &dtp::encode_op(&read));
    let sum = p::ChecksumProto {
        r#type: p::ChecksumTypeProto::ChecksumCrc32c as i32,
        bytes_per_checksum: 512,
    };
    let write_op = OpRequest::WriteBlock(Box::new(p::OpWriteBlockProto {
        header,
        stage: 6,
        pipeline_size: 1,
        requested_checksum: sum,
        ..Default::default()
    }));
    let data = Bytes::from((0..1500u32).map(|i| i as u8).collect::<Vec<_>>());
    let stream = [
        dtp::encode_op(&write_op),
        Packet::new(0, 0, data, &sum, false).unwrap().encode(),
        Packet::last(1500, 1).encode(),
    ]
    .concat();
    write("hdfs_dtp", "write_block", &stream);
    let ack = dtp::encode_message(&dtp::pipeline_ack(3, &[p::Status::Success]));
    write("hdfs_dtp", "ack", &ack);
}
