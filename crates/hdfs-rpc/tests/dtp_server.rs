//! The DataTransferProtocol server over real sockets, on an in-memory
//! block store: a two-node pipeline (forwarding, per-node acks), reads of
//! ranges, both block checksum modes, append, a transfer, an unreachable
//! downstream node.

use bytes::{Bytes, BytesMut};
use prost::Message;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tdfs_hdfs_rpc::datanode::{self, BlockAccess, DtpConfig, ReplicaSink, ReplicaSource};
use tdfs_hdfs_rpc::dtp::{self, OpRequest, Packet};
use tdfs_hdfs_rpc::proto::hdfs::op_write_block_proto::BlockConstructionStage as Stage;
use tdfs_hdfs_rpc::proto::hdfs::*;
use tdfs_proto::FsError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 4096;

/// Finalized replicas: block → (gen, bytes).
#[derive(Default)]
struct Mem(Mutex<HashMap<u64, (u64, Vec<u8>)>>);

struct MemSink {
    mem: Arc<Mem>,
    block: u64,
    gen: u64,
    data: Vec<u8>,
}

impl ReplicaSink for MemSink {
    fn write(&mut self, d: &[u8]) -> Result<(), FsError> {
        self.data.extend_from_slice(d);
        Ok(())
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn finish(self: Box<Self>) -> Result<(), FsError> {
        let mut m = self.mem.0.lock().unwrap();
        m.insert(self.block, (self.gen, self.data));
        Ok(())
    }
}

struct MemSource(Vec<u8>);

impl ReplicaSource for MemSource {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }
    fn chunk_size(&self) -> usize {
        CHUNK
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        assert_eq!(offset % CHUNK as u64, 0);
        let o = offset as usize;
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
        Ok(())
    }
    fn chunk_crcs(&self) -> Vec<u32> {
        self.0.chunks(CHUNK).map(crc32c::crc32c).collect()
    }
}

struct Access(Arc<Mem>);

impl BlockAccess for Access {
    fn create(&self, block: u64, gen: u64, _: u64) -> Result<Box<dyn ReplicaSink>, FsError> {
        Ok(Box::new(MemSink {
            mem: self.0.clone(),
            block,
            gen,
            data: Vec::new(),
        }))
    }
    fn reopen(
        &self,
        block: u64,
        _: u64,
        gen: u64,
        keep: u64,
    ) -> Result<Box<dyn ReplicaSink>, FsError> {
        let m = self.0 .0.lock().unwrap();
        let (_, d) = m.get(&block).ok_or(FsError::BlockNotFound(block))?;
        Ok(Box::new(MemSink {
            mem: self.0.clone(),
            block,
            gen,
            data: d[..keep as usize].to_vec(),
        }))
    }
    fn open(&self, block: u64, gen: u64) -> Result<Arc<dyn ReplicaSource>, FsError> {
        let m = self.0 .0.lock().unwrap();
        match m.get(&block) {
            Some((g, d)) if *g == gen => Ok(Arc::new(MemSource(d.clone()))),
            _ => Err(FsError::BlockNotFound(block)),
        }
    }
}

async fn node() -> (Arc<Mem>, String, datanode::DtpServer) {
    let mem = Arc::new(Mem::default());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s = datanode::start(l, Arc::new(Access(mem.clone())), DtpConfig::default()).unwrap();
    (mem, s.addr.to_string(), s)
}

fn info(addr: &str) -> DatanodeInfoProto {
    let (h, p) = addr.rsplit_once(':').unwrap();
    DatanodeInfoProto {
        id: DatanodeIdProto {
            ip_addr: h.into(),
            host_name: h.into(),
            datanode_uuid: addr.into(),
            xfer_port: p.parse().unwrap(),
            info_port: 0,
            ipc_port: 0,
            info_secure_port: None,
        },
        ..Default::default()
    }
}

fn header(block: u64, gen: u64, len: u64) -> ClientOperationHeaderProto {
    ClientOperationHeaderProto {
        base_header: BaseHeaderProto {
            block: ExtendedBlockProto {
                pool_id: "BP".into(),
                block_id: block,
                generation_stamp: gen,
                num_bytes: Some(len),
            },
            token: None,
            trace_info: None,
        },
        client_name: "test".into(),
    }
}

fn sum() -> ChecksumProto {
    ChecksumProto {
        r#type: ChecksumTypeProto::ChecksumCrc32c as i32,
        bytes_per_checksum: 512,
    }
}

async fn msg<M: Message + Default>(s: &mut TcpStream) -> M {
    let mut pre = Vec::new();
    let len = loop {
        pre.push(s.read_u8().await.unwrap());
        if let Some((len, _)) = dtp::varint_prefix(&pre).unwrap() {
            break len;
        }
    };
    let mut b = vec![0u8; len];
    s.read_exact(&mut b).await.unwrap();
    M::decode(Bytes::from(b)).unwrap()
}

/// Writes `data` (from `offset`) through a pipeline; returns each ack's statuses.
async fn write(
    addr: &str,
    op: OpWriteBlockProto,
    offset: u64,
    data: &[u8],
) -> (BlockOpResponseProto, Vec<Vec<Status>>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&dtp::encode_op(&OpRequest::WriteBlock(Box::new(op))))
        .await
        .unwrap();
    let resp: BlockOpResponseProto = msg(&mut s).await;
    if resp.status != 0 {
        return (resp, Vec::new());
    }
    let mut seq = 0;
    let mut at = offset;
    for piece in data.chunks(65_024) {
        let p = Packet::new(at as i64, seq, Bytes::copy_from_slice(piece), &sum(), false).unwrap();
        s.write_all(&p.encode()).await.unwrap();
        at += piece.len() as u64;
        seq += 1;
    }
    s.write_all(&Packet::last(at as i64, seq).encode())
        .await
        .unwrap();
    let mut acks = Vec::new();
    for want in 0..=seq {
        let a: PipelineAckProto = msg(&mut s).await;
        assert_eq!(a.seqno, want);
        acks.push(dtp::ack_statuses(&a));
    }
    (resp, acks)
}

fn create(block: u64, gen: u64, targets: &[&str]) -> OpWriteBlockProto {
    OpWriteBlockProto {
        header: header(block, gen, 0),
        targets: targets.iter().map(|a| info(a)).collect(),
        stage: Stage::PipelineSetupCreate as i32,
        pipeline_size: 1 + targets.len() as u32,
        requested_checksum: sum(),
        ..Default::default()
    }
}

async fn read(addr: &str, block: u64, gen: u64, offset: u64, len: u64) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let op = OpReadBlockProto {
        header: header(block, gen, len),
        offset,
        len,
        send_checksums: Some(true),
        caching_strategy: None,
    };
    s.write_all(&dtp::encode_op(&OpRequest::ReadBlock(op)))
        .await
        .unwrap();
    let resp: BlockOpResponseProto = msg(&mut s).await;
    assert_eq!(resp.status, 0, "{:?}", resp.message);
    let ci = resp.read_op_checksum_info.unwrap();
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    'packets: loop {
        let mut b = [0u8; 8192];
        let n = s.read(&mut b).await.unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&b[..n]);
        let mut all = buf.clone().freeze();
        while let Some(p) = Packet::decode_from(&mut all).unwrap() {
            p.verify(&ci.checksum).unwrap();
            out.extend_from_slice(&p.data);
            if p.header.last_packet_in_block {
                break 'packets;
            }
        }
        buf = BytesMut::from(&all[..]);
    }
    s.write_all(&dtp::encode_message(&dtp::read_status(Status::ChecksumOk)))
        .await
        .unwrap();
    let skip = (offset - ci.chunk_offset) as usize;
    out[skip..skip + len as usize].to_vec()
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn a_two_node_pipeline_stores_serves_and_checksums() {
    let (a, aa, _sa) = node().await;
    let (b, ba, _sb) = node().await;
    let d = data(200_000);
    let (resp, acks) = write(&aa, create(1, 10, &[&ba]), 0, &d).await;
    assert_eq!(resp.status, 0);
    assert!(
        acks.iter()
            .all(|s| s == &[Status::Success, Status::Success]),
        "{acks:?}"
    );
    assert_eq!(a.0.lock().unwrap()[&1], (10, d.clone()));
    assert_eq!(b.0.lock().unwrap()[&1], (10, d.clone()));
    assert_eq!(read(&ba, 1, 10, 0, d.len() as u64).await, d);
    assert_eq!(read(&aa, 1, 10, 70_001, 5_000).await, &d[70_001..75_001]);

    let mut s = TcpStream::connect(&aa).await.unwrap();
    let op = OpBlockChecksumProto {
        header: header(1, 10, d.len() as u64).base_header,
        block_checksum_options: Some(BlockChecksumOptionsProto {
            block_checksum_type: Some(BlockChecksumTypeProto::CompositeCrc as i32),
            stripe_length: None,
        }),
    };
    s.write_all(&dtp::encode_op(&OpRequest::BlockChecksum(op)))
        .await
        .unwrap();
    let r: BlockOpResponseProto = msg(&mut s).await;
    let c = r.checksum_response.unwrap();
    assert_eq!(c.block_checksum, crc32c::crc32c(&d).to_be_bytes());
    assert_eq!((c.bytes_per_crc, c.crc_per_block), (CHUNK as u32, 49));
}

#[tokio::test]
async fn append_continues_a_replica_under_a_new_generation() {
    let (a, aa, _s) = node().await;
    let d = data(10_000);
    write(&aa, create(2, 1, &[]), 0, &d).await;
    let op = OpWriteBlockProto {
        header: header(2, 1, d.len() as u64),
        stage: Stage::PipelineSetupAppend as i32,
        min_bytes_rcvd: d.len() as u64,
        max_bytes_rcvd: d.len() as u64,
        latest_generation_stamp: 2,
        requested_checksum: sum(),
        ..Default::default()
    };
    let more = data(3_000);
    let (resp, acks) = write(&aa, op, d.len() as u64, &more).await;
    assert_eq!(resp.status, 0);
    assert!(acks.iter().all(|s| s == &[Status::Success]));
    let mut all = d.clone();
    all.extend_from_slice(&more);
    assert_eq!(a.0.lock().unwrap()[&2], (2, all));
}

#[tokio::test]
async fn an_unreachable_downstream_node_is_the_first_bad_link() {
    let (_a, aa, _s) = node().await;
    let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = gone.local_addr().unwrap().to_string();
    drop(gone);
    let (resp, _) = write(&aa, create(3, 1, &[&dead]), 0, &data(10)).await;
    assert_eq!(resp.status, Status::Error as i32);
    assert_eq!(resp.first_bad_link.as_deref(), Some(dead.as_str()));
}

#[tokio::test]
async fn transfer_block_copies_a_replica() {
    let (_a, aa, _sa) = node().await;
    let (b, ba, _sb) = node().await;
    let d = data(150_000);
    write(&aa, create(4, 5, &[]), 0, &d).await;
    let mut s = TcpStream::connect(&aa).await.unwrap();
    let op = OpTransferBlockProto {
        header: header(4, 5, d.len() as u64),
        targets: vec![info(&ba)],
        target_storage_types: vec![],
        target_storage_ids: vec![],
    };
    s.write_all(&dtp::encode_op(&OpRequest::TransferBlock(op)))
        .await
        .unwrap();
    let r: BlockOpResponseProto = msg(&mut s).await;
    assert_eq!(r.status, 0, "{:?}", r.message);
    assert_eq!(b.0.lock().unwrap()[&4], (5, d));
}

fn cluster_key() -> tdfs_rpc::ClusterKey {
    tdfs_rpc::ClusterKey::new(b"0123456789abcdef0123".to_vec()).unwrap()
}

/// A datanode of a keyed cluster whose uuid is its address.
async fn keyed_node() -> (Arc<Mem>, String, datanode::DtpServer) {
    let mem = Arc::new(Mem::default());
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let cfg = DtpConfig {
        key: Some(cluster_key()),
        datanode_uuid: addr.clone(),
        ..Default::default()
    };
    let s = datanode::start(l, Arc::new(Access(mem.clone())), cfg).unwrap();
    (mem, addr, s)
}

/// `op` carrying a write token for `pipeline`, in Hadoop's `TokenProto`.
fn with_token(mut op: OpWriteBlockProto, pipeline: &[&str]) -> OpWriteBlockProto {
    let b = &op.header.base_header.block;
    let t = cluster_key().write_token(
        b.block_id,
        b.generation_stamp,
        "alice",
        tdfs_rpc::auth::wall_ms() + 60_000,
        pipeline
            .iter()
            .map(|a| tdfs_proto::DatanodeId(a.to_string()))
            .collect(),
    );
    op.header.base_header.token = Some(tdfs_hdfs_rpc::token::encode(&t));
    op
}

/// On a keyed cluster the write token names the pipeline inside its
/// identifier bytes (opaque to Hadoop, forwarded unchanged): every datanode
/// checks it, and one outside the pipeline, or asked to forward outside it,
/// refuses with ERROR_ACCESS_TOKEN and stores nothing.
#[tokio::test]
async fn keyed_datanodes_check_the_pipeline_bound_into_the_token() {
    let (a, aa, _sa) = keyed_node().await;
    let (b, ba, _sb) = keyed_node().await;
    let d = data(100_000);
    let (resp, acks) = write(&aa, with_token(create(1, 3, &[&ba]), &[&aa, &ba]), 0, &d).await;
    assert_eq!(resp.status, 0, "{:?}", resp.message);
    assert!(acks
        .iter()
        .all(|s| s == &[Status::Success, Status::Success]));
    assert_eq!(b.0.lock().unwrap()[&1], (3, d.clone()));
    let refused = |resp: BlockOpResponseProto, want: &str| {
        assert_eq!(resp.status, Status::ErrorAccessToken as i32, "{resp:?}");
        let m = resp.message.unwrap_or_default();
        assert!(m.contains(want), "{want:?} in {m:?}");
    };
    // The head is asked to forward outside the token's pipeline.
    let (resp, _) = write(&aa, with_token(create(2, 1, &[&ba]), &[&aa]), 0, &d).await;
    refused(resp, &format!("forwarding to {ba} is not allowed"));
    // The second hop, reached with a token for another pipeline, none, or
    // a forged one (the pipeline is under the MAC).
    let (resp, _) = write(&ba, with_token(create(2, 1, &[]), &[&aa]), 0, &d).await;
    refused(resp, "does not include this datanode");
    let (resp, _) = write(&ba, create(2, 1, &[]), 0, &d).await;
    refused(resp, "no token");
    let mut forged = with_token(create(2, 1, &[]), &[&aa]);
    let t = forged.header.base_header.token.as_mut().unwrap();
    let mut tok = tdfs_hdfs_rpc::token::decode(t).unwrap();
    tok.pipeline.push(tdfs_proto::DatanodeId(ba.clone()));
    *t = tdfs_hdfs_rpc::token::encode(&tok);
    let (resp, _) = write(&ba, forged, 0, &d).await;
    refused(resp, "forged");
    assert!(!a.0.lock().unwrap().contains_key(&2));
    assert!(!b.0.lock().unwrap().contains_key(&2));
}
