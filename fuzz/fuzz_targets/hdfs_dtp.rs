//! DataTransferProtocol as a datanode will read it from a Hadoop client
//! (`tdfs_hdfs_rpc::dtp`): an op (version, code, varint-delimited proto),
//! then packets, decoded from one buffer as they would be reassembled;
//! each packet verified against a few checksum choices. Control messages
//! (acks, read status, op responses) and block tokens decode too. Checks
//! that a packet that decodes re-encodes to one that decodes the same.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tdfs_hdfs_rpc::dtp::{self, Packet};
use tdfs_hdfs_rpc::proto::hdfs::{
    BlockOpResponseProto, ChecksumProto, ClientReadStatusProto, PipelineAckProto,
};

fn control(b: &[u8]) {
    if let Ok(Some((len, pre))) = dtp::varint_prefix(b) {
        let Some(msg) = b.get(pre..pre + len) else {
            return;
        };
        let m = Bytes::copy_from_slice(msg);
        if let Ok(a) = dtp::decode_message::<PipelineAckProto>(m.clone(), "ack") {
            let _ = dtp::ack_statuses(&a);
        }
        let _ = dtp::decode_message::<ClientReadStatusProto>(m.clone(), "status");
        let _ = dtp::decode_message::<BlockOpResponseProto>(m.clone(), "resp");
        if let Ok(t) = dtp::decode_message::<tdfs_hdfs_rpc::proto::common::TokenProto>(m, "token") {
            let _ = tdfs_hdfs_rpc::token::decode(&t);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    control(data);
    let mut b = Bytes::copy_from_slice(data);
    if !matches!(dtp::decode_op_from(&mut b), Ok(Some(_))) {
        b = Bytes::copy_from_slice(data);
    }
    let sums = [
        ChecksumProto { r#type: 2, bytes_per_checksum: 512 },
        ChecksumProto { r#type: 1, bytes_per_checksum: 1 },
        ChecksumProto { r#type: 0, bytes_per_checksum: 0 },
    ];
    for _ in 0..64 {
        let before = b.clone();
        match Packet::decode_from(&mut b) {
            Ok(Some(p)) => {
                assert!(before.len() > b.len());
                let again = Packet::decode_from(&mut Bytes::from(p.encode()));
                assert_eq!(again, Ok(Some(p.clone())), "a decoded packet round-trips");
                for s in &sums {
                    let _ = p.verify(s);
                }
            }
            _ => return,
        }
    }
});
