//! A raw DataTransferProtocol peer for tests that need to send what no
//! well-behaved client sends (garbage ops, oversized lengths, bad
//! checksums, a packet cut in half), built on `tdfs_hdfs_rpc`'s own codec.

use bytes::{Bytes, BytesMut};
use prost::Message;
use std::time::Duration;
use tdfs_hdfs_rpc::dtp::{self, OpRequest, Packet};
use tdfs_hdfs_rpc::proto::hdfs::op_write_block_proto::BlockConstructionStage;
use tdfs_hdfs_rpc::proto::hdfs::{
    BaseHeaderProto, BlockOpResponseProto, ChecksumProto, ChecksumTypeProto,
    ClientOperationHeaderProto, ExtendedBlockProto, OpReadBlockProto, OpWriteBlockProto,
    PipelineAckProto,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(20);

pub fn crc32c_512() -> ChecksumProto {
    ChecksumProto {
        r#type: ChecksumTypeProto::ChecksumCrc32c as i32,
        bytes_per_checksum: 512,
    }
}

pub fn header(block: u64, gen: u64, len: u64) -> ClientOperationHeaderProto {
    ClientOperationHeaderProto {
        base_header: BaseHeaderProto {
            block: ExtendedBlockProto {
                pool_id: "BP-tdfs".into(),
                block_id: block,
                generation_stamp: gen,
                num_bytes: Some(len),
            },
            token: None,
            trace_info: None,
        },
        client_name: "raw-test".into(),
    }
}

pub fn write_op(block: u64, gen: u64) -> OpRequest {
    OpRequest::WriteBlock(Box::new(OpWriteBlockProto {
        header: header(block, gen, 0),
        stage: BlockConstructionStage::PipelineSetupCreate as i32,
        pipeline_size: 1,
        requested_checksum: crc32c_512(),
        ..Default::default()
    }))
}

pub fn read_op(block: u64, gen: u64, offset: u64, len: u64) -> OpRequest {
    OpRequest::ReadBlock(OpReadBlockProto {
        header: header(block, gen, len),
        offset,
        len,
        send_checksums: Some(true),
        caching_strategy: None,
    })
}

/// Reads one varint-delimited message; `None` on EOF or a decode error.
pub async fn read_msg<M: Message + Default>(s: &mut TcpStream) -> Option<M> {
    let mut pre = Vec::new();
    let len = loop {
        let b = tokio::time::timeout(WAIT, s.read_u8()).await.ok()?.ok()?;
        pre.push(b);
        if let Some((len, _)) = dtp::varint_prefix(&pre).ok()? {
            break len;
        }
    };
    let mut buf = vec![0u8; len];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    M::decode(Bytes::from(buf)).ok()
}

/// True once the peer closed the connection (EOF or reset) within 20 s.
pub async fn closed(s: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

/// Sends raw bytes on a new connection and returns the datanode's answer.
pub async fn send_raw(addr: &str, bytes: &[u8]) -> (TcpStream, Option<BlockOpResponseProto>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let r = read_msg(&mut s).await;
    (s, r)
}

/// Reads a block through READ_BLOCK, checking every packet's checksums.
pub async fn read_block(addr: &str, block: u64, gen: u64, offset: u64, len: u64) -> Vec<u8> {
    let (mut s, resp) = send_raw(addr, &dtp::encode_op(&read_op(block, gen, offset, len))).await;
    let resp = resp.expect("an answer to READ_BLOCK");
    assert_eq!(resp.status, 0, "READ_BLOCK refused: {:?}", resp.message);
    let info = resp.read_op_checksum_info.expect("checksum info");
    let start = info.chunk_offset;
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    loop {
        let mut chunk = [0u8; 65536];
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the stream ended before the last packet");
        buf.extend_from_slice(&chunk[..n]);
        let mut b = buf.clone().freeze();
        let mut last = false;
        while let Some(p) = Packet::decode_from(&mut b).unwrap() {
            p.verify(&info.checksum).unwrap();
            out.extend_from_slice(&p.data);
            last |= p.header.last_packet_in_block;
        }
        buf = BytesMut::from(&b[..]);
        if last {
            break;
        }
    }
    let status = dtp::encode_message(&dtp::read_status(
        tdfs_hdfs_rpc::proto::hdfs::Status::ChecksumOk,
    ));
    s.write_all(&status).await.unwrap();
    let skip = (offset - start) as usize;
    out[skip..skip + len as usize].to_vec()
}

/// Reads one pipeline acknowledgement.
pub async fn read_ack(s: &mut TcpStream) -> Option<PipelineAckProto> {
    read_msg(s).await
}
