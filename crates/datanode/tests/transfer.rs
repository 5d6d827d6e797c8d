//! The data-transfer protocol over real loopback sockets, with in-process
//! datanodes served by `tdfs_rpc::serve`.

use std::time::{Duration, Instant};
use tdfs_datanode::transfer::{replicate, StoreEvent};
use tdfs_proto::meta::DatanodeAddr;
use tdfs_proto::{DatanodeId, FsError};
use tdfs_testkit::datanodes::*;
use tdfs_transfer::{
    connect, packet_header, read_block, read_control, write_control, BlockWriter, Finish, Op,
    WriteAck, CHUNK,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addrs(nodes: &[Node]) -> Vec<DatanodeAddr> {
    nodes.iter().map(|n| n.addr.clone()).collect()
}

fn assert_all_ok(ack: &WriteAck, pipeline: &[DatanodeAddr]) {
    let ids: Vec<&DatanodeId> = ack.statuses.iter().map(|s| &s.node).collect();
    let want: Vec<&DatanodeId> = pipeline.iter().map(|a| &a.id).collect();
    assert_eq!(ids, want, "one status per node, in order");
    for s in &ack.statuses {
        assert_eq!(s.result, Ok(()), "node {}", s.node);
    }
}

/// An address where nothing listens.
async fn dead_addr() -> DatanodeAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    DatanodeAddr {
        id: DatanodeId("dead0000dead0000".into()),
        addr,
        http: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_store_identical_replicas() {
    let mut nodes = start_nodes(3).await;
    let pipeline = addrs(&nodes);
    let sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5];
    for (i, &n) in sizes.iter().enumerate() {
        let id = 100 + i as u64;
        let data = pattern(n, id);
        let ack = write_block(&pipeline, id, 3, &data, None).await.unwrap();
        assert_all_ok(&ack, &pipeline);
        for node in &mut nodes {
            let r = node.store.get(id).expect("replica on every node");
            assert_eq!((r.gen, r.len, r.sha256), (3, n as u64, sha(&data)));
            assert!(node.store.verify(id).unwrap());
            assert_eq!(read(&node.addr, id, 3, 0, u64::MAX).await.unwrap(), data);
            match node.events.try_recv() {
                Ok(StoreEvent::Finalized(rep)) => assert_eq!(rep, r),
                other => panic!("expected a Finalized event, got {other:?}"),
            }
            let u = node.store.usage();
            assert_eq!(u.pending, 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads() {
    let nodes = start_nodes(1).await;
    let node = &nodes[0].addr;
    let len = 3 * CHUNK + 5;
    let data = pattern(len, 9);
    let ack = write_block(std::slice::from_ref(node), 1, 1, &data, None)
        .await
        .unwrap();
    assert_all_ok(&ack, std::slice::from_ref(node));
    let c = CHUNK as u64;
    let l = len as u64;
    let cases = [
        (0, 1),
        (5, 100),
        (c - 3, 10),
        (c, c),
        (c - 1, c + 2),
        (1, 3 * c),
        (2 * c + 7, u64::MAX),
        (3 * c, 5),
        (l - 1, 1),
        (0, l),
        (0, 0),
        (17, 0),
        (l, 10),
        (l + 100, 10),
        (u64::MAX - 1, 10),
    ];
    for (off, n) in cases {
        let got = read(node, 1, 1, off, n).await.unwrap();
        let a = (off.min(l)) as usize;
        let b = (off.saturating_add(n).min(l)) as usize;
        assert_eq!(got.len(), b - a, "range {off}+{n}");
        assert!(got == data[a..b], "range {off}+{n}");
    }
    // Missing replicas and other generations.
    assert_eq!(
        read(node, 2, 1, 0, 10).await,
        Err(FsError::BlockNotFound(2))
    );
    assert_eq!(
        read(node, 1, 2, 0, 10).await,
        Err(FsError::BlockNotFound(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_second_node_does_not_stop_the_first() {
    let nodes = start_nodes(2).await;
    let dead = dead_addr().await;
    let pipeline = vec![nodes[0].addr.clone(), dead.clone(), nodes[1].addr.clone()];
    let data = pattern(2 * CHUNK + 3, 1);
    let ack = write_block(&pipeline, 1, 1, &data, None).await.unwrap();
    assert_eq!(ack.statuses.len(), 2, "{ack:?}");
    assert_eq!(ack.statuses[0].node, nodes[0].addr.id);
    assert_eq!(ack.statuses[0].result, Ok(()));
    assert_eq!(ack.statuses[1].node, dead.id);
    assert!(ack.statuses[1].result.is_err());
    assert_eq!(nodes[0].store.get(1).unwrap().sha256, sha(&data));
    assert!(
        nodes[1].store.get(1).is_none(),
        "nodes after a failed one get nothing"
    );
}

/// A datanode that takes the operation and one packet, then hangs up.
struct Flaky;

impl tdfs_rpc::Handler<(), ()> for Flaky {
    async fn handle(&self, _peer: &tdfs_rpc::Peer, _req: ()) -> Result<(), FsError> {
        Err(FsError::Unsupported("flaky".into()))
    }

    async fn stream(&self, _peer: tdfs_rpc::Peer, mut s: tokio::net::TcpStream) {
        let _op: Result<Op, _> = read_control(&mut s, Duration::from_secs(10)).await;
        let mut buf = vec![0u8; 8 + CHUNK];
        let _ = s.read_exact(&mut buf).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_failing_mid_stream_does_not_stop_the_head() {
    let nodes = start_nodes(2).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let flaky = DatanodeAddr {
        id: DatanodeId("f1a4f1a4f1a4f1a4".into()),
        addr: listener.local_addr().unwrap().to_string(),
        http: None,
    };
    let (_stop, shutdown) = tdfs_rpc::Shutdown::new();
    tokio::spawn(tdfs_rpc::serve::<(), (), _>(
        listener,
        std::sync::Arc::new(Flaky),
        tdfs_rpc::ServerConfig::default(),
        shutdown,
    ));
    let pipeline = vec![nodes[0].addr.clone(), flaky.clone(), nodes[1].addr.clone()];
    let data = pattern(64 * CHUNK + 3, 6);
    let ack = write_block(&pipeline, 1, 1, &data, None).await.unwrap();
    assert_eq!(ack.statuses.len(), 2, "{ack:?}");
    assert_eq!(ack.statuses[0].result, Ok(()));
    assert_eq!(ack.statuses[1].node, flaky.id);
    assert!(ack.statuses[1].result.is_err());
    assert_eq!(nodes[0].store.get(1).unwrap().sha256, sha(&data));
    assert!(read(&nodes[0].addr, 1, 1, 0, u64::MAX).await.unwrap() == data);
    assert!(nodes[1].store.get(1).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_answers_no_space() {
    let n1 = start_node(None, None).await;
    let tiny = start_node(Some(1000), None).await;
    let n3 = start_node(None, None).await;
    let data = pattern(3 * CHUNK, 1);

    // As the head: the answer comes at once, before the data.
    let ack = write_block(&[tiny.addr.clone(), n1.addr.clone()], 1, 1, &data, None)
        .await
        .unwrap();
    assert_eq!(ack.statuses.len(), 1, "{ack:?}");
    assert_eq!(ack.statuses[0].node, tiny.addr.id);
    assert!(
        matches!(ack.statuses[0].result, Err(FsError::NoSpace(_))),
        "{ack:?}"
    );
    assert!(n1.store.get(1).is_none());

    // In the middle: the head still stores the block.
    let pipeline = vec![n1.addr.clone(), tiny.addr.clone(), n3.addr.clone()];
    let ack = write_block(&pipeline, 2, 1, &data, None).await.unwrap();
    assert_eq!(ack.statuses.len(), 2, "{ack:?}");
    assert_eq!(ack.statuses[0].result, Ok(()));
    assert_eq!(ack.statuses[1].node, tiny.addr.id);
    assert!(
        matches!(ack.statuses[1].result, Err(FsError::NoSpace(_))),
        "{ack:?}"
    );
    assert_eq!(n1.store.get(2).unwrap().len, data.len() as u64);
    assert!(tiny.store.get(2).is_none());
    assert_eq!(tiny.store.usage().pending, 0);

    // A block that fits is fine on the small node too.
    let small = pattern(900, 2);
    let ack = write_block(&pipeline, 3, 1, &small, None).await.unwrap();
    assert_all_ok(&ack, &pipeline);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_that_fills_up_mid_stream_still_forwards() {
    // The head accepts the announced 10 bytes, then runs out of space; the
    // block still reaches the next node.
    let tiny = start_node(Some(100_000), None).await;
    let n2 = start_node(None, None).await;
    let pipeline = vec![tiny.addr.clone(), n2.addr.clone()];
    let data = pattern(3 * CHUNK, 7);
    let mut w = BlockWriter::open(&pipeline, info(1, 1, 10), None)
        .await
        .unwrap();
    for c in data.chunks(CHUNK) {
        w.send_chunk(c).await.unwrap();
    }
    let ack = w
        .finish(Finish {
            len: data.len() as u64,
            sha256: sha(&data),
        })
        .await
        .unwrap();
    assert_eq!(ack.statuses.len(), 2, "{ack:?}");
    assert!(
        matches!(ack.statuses[0].result, Err(FsError::NoSpace(_))),
        "{ack:?}"
    );
    assert_eq!(ack.statuses[1].result, Ok(()));
    assert!(tiny.store.get(1).is_none());
    assert_eq!(tiny.store.usage().pending, 0);
    assert_eq!(n2.store.get(1).unwrap().sha256, sha(&data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_chunk_on_disk_fails_the_read() {
    let nodes = start_nodes(1).await;
    let node = &nodes[0];
    let data = pattern(3 * CHUNK + 5, 4);
    write_block(std::slice::from_ref(&node.addr), 7, 2, &data, None)
        .await
        .unwrap();
    let path = node.data_path(7, 2);
    let mut b = std::fs::read(&path).unwrap();
    b[CHUNK + 10] ^= 0x40;
    std::fs::write(&path, &b).unwrap();
    match read(&node.addr, 7, 2, 0, u64::MAX).await {
        Err(FsError::ChecksumMismatch { block: 7, .. }) => {}
        other => panic!("expected ChecksumMismatch, got {other:?}"),
    }
    // Ranges that avoid the damaged chunk still read.
    let c = CHUNK as u64;
    assert!(read(&node.addr, 7, 2, 0, c).await.unwrap() == data[..CHUNK]);
    assert!(read(&node.addr, 7, 2, 2 * c, c).await.unwrap() == data[2 * CHUNK..3 * CHUNK]);
    assert!(matches!(
        read(&node.addr, 7, 2, c + 5000, 1).await,
        Err(FsError::ChecksumMismatch { .. })
    ));
    assert!(!node.store.verify(7).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_digest_is_rejected_everywhere() {
    let nodes = start_nodes(3).await;
    let pipeline = addrs(&nodes);
    let data = pattern(CHUNK + 77, 5);
    let mut w = BlockWriter::open(&pipeline, info(1, 1, data.len() as u64), None)
        .await
        .unwrap();
    for c in data.chunks(CHUNK) {
        w.send_chunk(c).await.unwrap();
    }
    let mut digest = sha(&data);
    digest[31] ^= 1;
    let ack = w
        .finish(Finish {
            len: data.len() as u64,
            sha256: digest,
        })
        .await
        .unwrap();
    assert_eq!(ack.statuses.len(), 3);
    for s in &ack.statuses {
        assert!(
            matches!(s.result, Err(FsError::ChecksumMismatch { .. })),
            "{ack:?}"
        );
    }
    for n in &nodes {
        assert!(n.store.get(1).is_none());
        assert_eq!(n.store.usage().pending, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_packet_is_refused_and_garbage_closes_the_connection() {
    let nodes = start_nodes(2).await;
    let pipeline = addrs(&nodes);

    // A packet whose CRC does not match its bytes.
    let mut s = connect(&pipeline[0].addr, None).await.unwrap();
    write_control(
        &mut s,
        &Op::Write {
            block: info(1, 1, 10),
            downstream: pipeline[1..].to_vec(),
            token: None,
        },
    )
    .await
    .unwrap();
    s.write_all(&packet_header(4, crc32c::crc32c(b"abce")))
        .await
        .unwrap();
    s.write_all(b"abcd").await.unwrap();
    let ack: WriteAck = read_control(&mut s, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack.statuses.len(), 1);
    assert!(matches!(
        ack.statuses[0].result,
        Err(FsError::ChecksumMismatch { .. })
    ));
    drop(s);

    // Garbage instead of an operation; an oversized packet; an oversized
    // control frame. Each is refused by closing, and the node lives on.
    let mut s = connect(&pipeline[0].addr, None).await.unwrap();
    s.write_all(&[0, 0, 0, 9, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5])
        .await
        .unwrap();
    assert_closed(&mut s).await;

    let mut s = connect(&pipeline[0].addr, None).await.unwrap();
    write_control(
        &mut s,
        &Op::Write {
            block: info(2, 1, 10),
            downstream: vec![],
            token: None,
        },
    )
    .await
    .unwrap();
    s.write_all(&packet_header(64 << 20, 0)).await.unwrap();
    assert_closed(&mut s).await;

    let mut s = connect(&pipeline[0].addr, None).await.unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    assert_closed(&mut s).await;

    let data = pattern(1000, 1);
    let ack = write_block(&pipeline, 3, 1, &data, None).await.unwrap();
    assert_all_ok(&ack, &pipeline);
    assert!(nodes[0].store.get(2).is_none());
    assert_eq!(nodes[0].store.usage().pending, 0);
}

async fn assert_closed(s: &mut tdfs_rpc::LinkStream) {
    let mut buf = [0u8; 256];
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the datanode did not close the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_writer_frees_its_reservation() {
    // The reservation holds while the stream is open; dropping the
    // connection releases it and leaves nothing behind.
    let nodes = start_nodes(1).await;
    let mut w = BlockWriter::open(&[nodes[0].addr.clone()], info(1, 1, 5 * CHUNK as u64), None)
        .await
        .unwrap();
    w.send_chunk(&pattern(CHUNK, 1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes[0].store.usage().pending == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nodes[0].store.usage().pending, 5 * CHUNK as u64);
    drop(w);
    while nodes[0].store.usage().pending != 0 {
        assert!(Instant::now() < deadline, "reservation not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(nodes[0].store.get(1).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_copies_a_replica() {
    let mut nodes = start_nodes(3).await;
    let data = pattern(2 * CHUNK + 1, 8);
    write_block(&[nodes[0].addr.clone()], 5, 4, &data, None)
        .await
        .unwrap();
    let targets = vec![nodes[1].addr.clone(), nodes[2].addr.clone()];
    let ack = replicate(&nodes[0].ctx, &info(5, 4, 0), &targets, None)
        .await
        .unwrap();
    assert_all_ok(&ack, &targets);
    for n in &nodes[1..] {
        assert_eq!(read(&n.addr, 5, 4, 0, u64::MAX).await.unwrap(), data);
    }
    // A corrupt source is not copied.
    let path = nodes[0].data_path(5, 4);
    let mut b = std::fs::read(&path).unwrap();
    b[3] ^= 1;
    std::fs::write(&path, &b).unwrap();
    let fresh = start_node(None, None).await;
    let r = replicate(
        &nodes[0].ctx,
        &info(5, 4, 0),
        std::slice::from_ref(&fresh.addr),
        None,
    )
    .await;
    assert!(matches!(r, Err(FsError::ChecksumMismatch { .. })), "{r:?}");
    assert!(fresh.store.get(5).is_none());
    // Its own data failed: the source quarantined its replica and said so.
    assert!(nodes[0].store.get(5).is_none());
    assert_eq!(nodes[0].store.quarantined(), vec![(5, 4)]);
    let mut events = Vec::new();
    while let Ok(e) = nodes[0].events.try_recv() {
        events.push(e);
    }
    assert!(
        events.contains(&StoreEvent::Quarantined { id: 5, gen: 4 }),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_fails_downstream_leaves_the_source_alone() {
    let nodes = start_nodes(2).await;
    let data = pattern(CHUNK + 3, 9);
    write_block(&[nodes[0].addr.clone()], 6, 1, &data, None)
        .await
        .unwrap();
    // A target that is down, then a target that holds a newer generation.
    let r = replicate(&nodes[0].ctx, &info(6, 1, 0), &[dead_addr().await], None).await;
    assert!(r.is_err(), "{r:?}");
    write_block(&[nodes[1].addr.clone()], 6, 2, &pattern(10, 1), None)
        .await
        .unwrap();
    let ack = replicate(
        &nodes[0].ctx,
        &info(6, 1, 0),
        &[nodes[1].addr.clone()],
        None,
    )
    .await
    .unwrap();
    assert!(ack.statuses[0].result.is_err(), "{ack:?}");
    assert_eq!(nodes[0].store.get(6).unwrap().sha256, sha(&data));
    assert!(nodes[0].store.quarantined().is_empty());
    assert!(nodes[0].store.verify(6).unwrap());
}

/// Run by hand: `cargo test --release -p tdfs-datanode --test transfer -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_256_mib() {
    const SIZE: usize = 256 << 20;
    let nodes = start_nodes(3).await;
    let mb = SIZE as f64 / 1e6;
    // One megabyte of pattern, repeated.
    let unit = pattern(1 << 20, 1);
    let digest = {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for _ in 0..SIZE / unit.len() {
            h.update(&unit);
        }
        <[u8; 32]>::from(h.finalize())
    };
    for (label, pipeline, id) in [
        ("1 node", vec![nodes[0].addr.clone()], 1u64),
        ("3-node pipeline", addrs(&nodes), 2u64),
    ] {
        let t = Instant::now();
        let mut w = BlockWriter::open(&pipeline, info(id, 1, SIZE as u64), None)
            .await
            .unwrap();
        let mut h = {
            use sha2::Digest;
            sha2::Sha256::new()
        };
        for _ in 0..SIZE / unit.len() {
            for c in unit.chunks(CHUNK) {
                sha2::Digest::update(&mut h, c);
                w.send_chunk(c).await.unwrap();
            }
        }
        let sha256: [u8; 32] = sha2::Digest::finalize(h).into();
        assert_eq!(sha256, digest);
        let streamed = t.elapsed().as_secs_f64();
        let ack = w
            .finish(Finish {
                len: SIZE as u64,
                sha256,
            })
            .await
            .unwrap();
        assert_all_ok(&ack, &pipeline);
        let s = t.elapsed().as_secs_f64();
        println!(
            "write {label}: {:.0} MB/s ({s:.2} s: {streamed:.2} s streaming, {:.2} s \
             finalizing; client SHA-256 included)",
            mb / s,
            s - streamed
        );
    }
    for round in 0..3 {
        let t = Instant::now();
        let mut sink = tokio::io::sink();
        let n = read_block(&nodes[0].addr.addr, None, 1, 1, 0, u64::MAX, &mut sink)
            .await
            .unwrap();
        assert_eq!(n, SIZE as u64);
        let s = t.elapsed().as_secs_f64();
        println!(
            "read round {round}: {:.0} MB/s ({s:.2} s, CRC32C verified)",
            mb / s
        );
    }
    // Reading into a buffered writer and checking the SHA-256 too, as a
    // client that verifies whole blocks would.
    let t = Instant::now();
    let mut out = HashingSink(<sha2::Sha256 as sha2::Digest>::new());
    read_block(&nodes[2].addr.addr, None, 2, 1, 0, u64::MAX, &mut out)
        .await
        .unwrap();
    let s = t.elapsed().as_secs_f64();
    assert_eq!(<[u8; 32]>::from(sha2::Digest::finalize(out.0)), digest);
    println!("read + SHA-256: {:.0} MB/s ({s:.2} s)", mb / s);
}

struct HashingSink(sha2::Sha256);

impl tokio::io::AsyncWrite for HashingSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        sha2::Digest::update(&mut self.0, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
