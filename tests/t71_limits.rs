//! Limits a gateway enforces so that no request makes it buffer or wait
//! without end, on an in-process cluster over real sockets: the block size
//! bounds of a create on every gateway (tdfs RPC, WebHDFS, Hadoop RPC), and
//! a WebHDFS upload whose client stalls its body, cut off and recovered.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tdfs_client::{CreateOptions, FileWriter};
use tdfs_hdfs_rpc::ipc::{call_frame, client_hello, parse_reply};
use tdfs_hdfs_rpc::proto::common::rpc_response_header_proto::RpcStatusProto;
use tdfs_hdfs_rpc::proto::hdfs as p;
use tdfs_local::LocalCluster;
use tdfs_testkit::files::{bytes, cluster, read};
use tdfs_testkit::procs::wait_for;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// Lowers the metadata nodes' block size limits to 64 KiB ..= 8 MiB (the
/// cluster helper's own tweaks kept).
fn limits(cfg: &mut tdfs_local::LocalConfig) {
    let prev = cfg.tweak_meta.take();
    cfg.tweak_meta = Some(Arc::new(move |m| {
        if let Some(p) = &prev {
            p(m);
        }
        m.min_block_size = 64 * KIB;
        m.max_block_size = 8 * MIB;
        m.lease_timeout_ms = 1_500;
    }));
}

/// One HTTP/1.1 request on a new connection; the status and the body.
async fn http(addr: &str, method: &str, target: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Step one of a WebHDFS CREATE on the leader's gateway: the datanode URL
/// (host:port, path and query) step two goes to.
async fn create_location(c: &LocalCluster, path: &str, query: &str) -> (String, String) {
    let meta = &c.meta_http[&c.leader().unwrap().id()];
    let target = format!("/webhdfs/v1{path}?op=CREATE&user.name=root&noredirect=true{query}");
    let (status, body) = http(meta, "PUT", &target, b"").await;
    assert_eq!(status, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loc = j["Location"]
        .as_str()
        .unwrap()
        .strip_prefix("http://")
        .unwrap();
    let (host, rest) = loc.split_once('/').unwrap();
    (host.to_string(), format!("/{rest}"))
}

/// A Hadoop RPC `create` on the leader's HDFS port: the error class and
/// message, if it failed.
async fn hdfs_create(c: &LocalCluster, path: &str, block_size: u64) -> Option<(String, String)> {
    let addr = &c.meta_hdfs[&c.leader().unwrap().id()];
    let req = p::CreateRequestProto {
        src: path.into(),
        client_name: "DFSClient_test".into(),
        create_flag: 1,
        create_parent: true,
        replication: 1,
        block_size,
        ..Default::default()
    };
    let id = [7u8; 16];
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&client_hello("root", &id)).await.unwrap();
    s.write_all(&call_frame(1, &id, "create", &req))
        .await
        .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.unwrap();
    let (h, _) = parse_reply(Bytes::from(buf)).unwrap();
    (h.status != RpcStatusProto::Success as i32).then(|| {
        (
            h.exception_class_name.unwrap_or_default(),
            h.error_msg.unwrap_or_default(),
        )
    })
}

/// A create asking for a block size outside the metadata nodes' limits is
/// refused with HDFS's `IOException` and wording on all three gateways;
/// sizes within them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_size_limits_hold_on_every_gateway() {
    let (_dir, c) = cluster(1, MIB, limits).await;
    let root = c.client("root");
    let create = |path: &'static str, bs: u64| {
        let o = CreateOptions {
            block_size: Some(bs),
            replication: Some(1),
            ..Default::default()
        };
        FileWriter::create(root.clone(), path, o)
    };
    for (bs, key) in [(16 * MIB, "max-block-size"), (4 * KIB, "min-block-size")] {
        // tdfs RPC.
        let e = create("/rpc", bs).await.err().expect("refused");
        assert!(matches!(e, tdfs_proto::FsError::Io(_)), "{e:?}");
        assert!(e.to_string().contains(&format!("fs-limits.{key}")), "{e}");
        // WebHDFS: step two on the datanode creates the file.
        let (dn, target) = create_location(&c, "/web", &format!("&blocksize={bs}")).await;
        let (status, body) = http(&dn, "PUT", &target, b"hello").await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body.contains("\"IOException\"") && body.contains(key),
            "{body}"
        );
        // Hadoop RPC.
        let (class, msg) = hdfs_create(&c, "/hdfs", bs).await.expect("refused");
        assert_eq!(class, "java.io.IOException");
        assert!(msg.contains(key), "{msg}");
        for path in ["/rpc", "/web", "/hdfs"] {
            assert!(root.stat(path).await.is_err(), "{path} was created");
        }
    }
    let mut w = create("/rpc", 8 * MIB).await.unwrap();
    w.write(b"fine").await.unwrap();
    w.close().await.unwrap();
    let (dn, target) = create_location(&c, "/web", &format!("&blocksize={}", 64 * KIB)).await;
    assert_eq!(http(&dn, "PUT", &target, b"hello").await.0, 201);
    assert_eq!(hdfs_create(&c, "/hdfs", 8 * MIB).await, None);
    assert_eq!(root.stat("/web").await.unwrap().block_size, 64 * KIB);
    c.shutdown().await;
}

/// A WebHDFS upload whose client sends its headers and part of the body,
/// then stalls, is cut off after the body idle timeout: the connection
/// closes, the file is left open (never completed by the gateway) and lease
/// recovery closes it as for a dead writer; the datanode's only HTTP slot is
/// free again for the next upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_webhdfs_upload_is_cut_off_and_its_lease_recovered() {
    let (_dir, c) = cluster(1, MIB, |cfg| {
        limits(cfg);
        cfg.http_limits.body_idle_timeout = Duration::from_millis(500);
        cfg.http_limits.max_connections = 1;
    })
    .await;
    let root = c.client("root");
    let (dn, target) = create_location(&c, "/stalled", "&replication=1").await;
    let part = bytes(3, (MIB + 300 * KIB) as usize);
    let mut s = TcpStream::connect(&dn).await.unwrap();
    let head = format!(
        "PUT {target} HTTP/1.1\r\nhost: {dn}\r\ncontent-length: {}\r\n\r\n",
        4 * MIB
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&part).await.unwrap();
    let stalled = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut sink))
        .await
        .expect("the stalled upload was not cut off")
        .ok();
    let cut = stalled.elapsed();
    println!("stalled upload cut off after {cut:?}");
    assert!(cut >= Duration::from_millis(450), "{cut:?}");
    let answer = String::from_utf8_lossy(&sink);
    assert!(!answer.starts_with("HTTP/1.1 201"), "{answer}");
    // Lease recovery closes the file with what reached the datanodes.
    let st = wait_for(
        "lease recovery of the abandoned upload",
        Duration::from_secs(30),
        || {
            let root = root.clone();
            async move {
                let st = root.stat("/stalled").await.ok()?;
                (!st.under_construction).then_some(st)
            }
        },
    )
    .await;
    assert!(st.length < part.len() as u64 + 1, "{}", st.length);
    let got = read(&root, "/stalled", 0, st.length).await;
    assert!(
        got == part[..st.length as usize],
        "a prefix of what was sent"
    );
    // The slot is free: the next upload goes through the same datanode.
    let (dn2, target) = create_location(&c, "/next", "&replication=1").await;
    assert_eq!(dn2, dn);
    assert_eq!(http(&dn, "PUT", &target, b"next upload").await.0, 201);
    assert_eq!(read(&root, "/next", 0, 11).await, b"next upload");
    c.shutdown().await;
}
