use super::*;
use crate::proto::hdfs::{BaseHeaderProto, ClientOperationHeaderProto, ExtendedBlockProto};

fn crc32c_512() -> ChecksumProto {
    ChecksumProto {
        r#type: ChecksumTypeProto::ChecksumCrc32c as i32,
        bytes_per_checksum: 512,
    }
}

/// READ_BLOCK of block 7 (gen 1001, pool "BP") for client "c", offset 3,
/// length 9, written out byte by byte as Hadoop's Sender puts it.
const READ_BLOCK: &[u8] = &[
    0x00, 0x1c, // version 28
    0x51, // READ_BLOCK (81)
    22,   // varint length of OpReadBlockProto
    0x0a, 16, // header: ClientOperationHeaderProto
    0x0a, 11, // baseHeader: BaseHeaderProto
    0x0a, 9, // block: ExtendedBlockProto
    0x0a, 2, b'B', b'P', // poolId
    0x10, 7, // blockId
    0x18, 0xe9, 0x07, // generationStamp 1001
    0x12, 1, b'c', // clientName
    0x10, 3, // offset
    0x18, 9, // len
];

#[test]
fn hand_built_read_block_decodes() {
    let mut b = Bytes::from_static(READ_BLOCK);
    let Some(OpRequest::ReadBlock(r)) = decode_op_from(&mut b).unwrap() else {
        panic!("a read")
    };
    let blk = &r.header.base_header.block;
    assert_eq!(
        (blk.pool_id.as_str(), blk.block_id, blk.generation_stamp),
        ("BP", 7, 1001)
    );
    assert_eq!(
        (r.header.client_name.as_str(), r.offset, r.len),
        ("c", 3, 9)
    );
    assert_eq!(
        r.send_checksums, None,
        "absent means true (Hadoop's default)"
    );
    assert!(b.is_empty());
    // Re-encoding gives the same bytes.
    assert_eq!(encode_op(&OpRequest::ReadBlock(r)), READ_BLOCK);
}

#[test]
fn op_prefix_and_truncations() {
    assert_eq!(parse_op_prefix([0, 28, 80]), Ok(Op::WriteBlock));
    assert_eq!(parse_op_prefix([0, 28, 86]), Ok(Op::TransferBlock));
    assert_eq!(parse_op_prefix([0, 27, 81]), Err(DtpError::Version(27)));
    assert_eq!(parse_op_prefix([0, 28, 87]), Err(DtpError::Op(87)));
    // Every prefix of a valid op asks for more bytes; none panics.
    for cut in 0..READ_BLOCK.len() {
        let mut b = Bytes::copy_from_slice(&READ_BLOCK[..cut]);
        assert_eq!(decode_op_from(&mut b), Ok(None), "cut at {cut}");
    }
    // A message whose inner length overruns it is an error.
    let mut bad = READ_BLOCK.to_vec();
    bad[5] = 40;
    assert!(matches!(
        decode_op_from(&mut Bytes::from(bad)),
        Err(DtpError::Decode { .. })
    ));
}

#[test]
fn varint_lengths_are_bounded() {
    assert_eq!(varint_prefix(&[0x05]), Ok(Some((5, 1))));
    assert_eq!(varint_prefix(&[0xac, 0x02]), Ok(Some((300, 2))));
    assert_eq!(varint_prefix(&[0x80]), Ok(None));
    assert_eq!(varint_prefix(&[]), Ok(None));
    // 2 MiB claimed: refused before anything is read.
    assert_eq!(
        varint_prefix(&[0x80, 0x80, 0x80, 0x01]),
        Err(DtpError::MessageTooLarge(2 << 20))
    );
    assert_eq!(varint_prefix(&[0xff; 10]), Err(DtpError::Varint));
    let mut huge = vec![0, 28, 80];
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(decode_op_from(&mut Bytes::from(huge)).is_err());
}

#[test]
fn write_block_round_trip() {
    let w = OpWriteBlockProto {
        header: ClientOperationHeaderProto {
            base_header: BaseHeaderProto {
                block: ExtendedBlockProto {
                    pool_id: "BP-tdfs".into(),
                    block_id: 1 << 40,
                    generation_stamp: 5,
                    num_bytes: Some(0),
                },
                token: Some(crate::token::empty()),
                trace_info: None,
            },
            client_name: "DFSClient_1".into(),
        },
        stage: 6, // PIPELINE_SETUP_CREATE
        pipeline_size: 3,
        requested_checksum: crc32c_512(),
        ..Default::default()
    };
    let w = Box::new(w);
    let wire = encode_op(&OpRequest::WriteBlock(w.clone()));
    let mut b = Bytes::from(wire);
    // The client may pipeline its first packet right behind the op.
    let mut with_packet = b.to_vec();
    with_packet.extend_from_slice(&Packet::last(0, 0).encode());
    assert_eq!(
        decode_op_from(&mut b),
        Ok(Some(OpRequest::WriteBlock(w.clone())))
    );
    let mut b = Bytes::from(with_packet);
    assert_eq!(decode_op_from(&mut b), Ok(Some(OpRequest::WriteBlock(w))));
    assert_eq!(
        Packet::decode_from(&mut b).unwrap(),
        Some(Packet::last(0, 0))
    );
}

/// A packet of 700 bytes at offset 512 (two chunks: 512 + 188), seqno 2.
fn sample() -> (Vec<u8>, Vec<u8>) {
    let data: Vec<u8> = (0..700u32).map(|i| (i * 7) as u8).collect();
    let mut header = vec![0x09];
    header.extend_from_slice(&512i64.to_le_bytes());
    header.push(0x11);
    header.extend_from_slice(&2i64.to_le_bytes());
    header.extend_from_slice(&[0x18, 0x00, 0x25]);
    header.extend_from_slice(&700i32.to_le_bytes());
    header.extend_from_slice(&[0x28, 0x00]);
    assert_eq!(header.len(), 27);
    let mut wire = Vec::new();
    wire.extend_from_slice(&(4u32 + 8 + 700).to_be_bytes());
    wire.extend_from_slice(&27u16.to_be_bytes());
    wire.extend_from_slice(&header);
    wire.extend_from_slice(&crc32c::crc32c(&data[..512]).to_be_bytes());
    wire.extend_from_slice(&crc32c::crc32c(&data[512..]).to_be_bytes());
    wire.extend_from_slice(&data);
    (wire, data)
}

#[test]
fn hand_built_packet_decodes_and_verifies() {
    let (wire, data) = sample();
    let mut b = Bytes::from(wire.clone());
    let p = Packet::decode_from(&mut b).unwrap().unwrap();
    assert!(b.is_empty());
    assert_eq!((p.header.offset_in_block, p.header.seqno), (512, 2));
    assert!(!p.header.last_packet_in_block && !p.is_heartbeat());
    assert_eq!(p.data, data);
    p.verify(&crc32c_512()).unwrap();
    // Built by the encoder: the same bytes.
    let q = Packet::new(512, 2, Bytes::from(data), &crc32c_512(), false).unwrap();
    assert_eq!(q.encode(), wire);
}

#[test]
fn corrupt_and_truncated_packets_are_errors() {
    let (wire, _) = sample();
    for cut in 0..wire.len() {
        let mut b = Bytes::copy_from_slice(&wire[..cut]);
        assert_eq!(Packet::decode_from(&mut b), Ok(None), "cut at {cut}");
    }
    // A flipped data bit fails the second chunk's checksum.
    let mut bad = wire.clone();
    *bad.last_mut().unwrap() ^= 1;
    let p = Packet::decode_from(&mut Bytes::from(bad)).unwrap().unwrap();
    assert_eq!(
        p.verify(&crc32c_512()),
        Err(DtpError::Checksum {
            chunk: 1,
            offset: 1024
        })
    );
    // The same bytes read as CRC32 (another writer's choice) do not match.
    let crc32 = ChecksumProto {
        r#type: ChecksumTypeProto::ChecksumCrc32 as i32,
        bytes_per_checksum: 512,
    };
    let p = Packet::decode_from(&mut Bytes::from(wire.clone()))
        .unwrap()
        .unwrap();
    assert!(p.verify(&crc32).is_err());
    // dataLen larger than what the payload holds.
    let mut over = wire.clone();
    over[6 + 21..6 + 25].copy_from_slice(&5000i32.to_le_bytes());
    assert!(matches!(
        Packet::decode_from(&mut Bytes::from(over)),
        Err(DtpError::Packet(_))
    ));
    // Negative dataLen.
    let mut neg = wire;
    neg[6 + 21..6 + 25].copy_from_slice(&(-1i32).to_le_bytes());
    assert!(matches!(
        Packet::decode_from(&mut Bytes::from(neg)),
        Err(DtpError::Packet(_))
    ));
}

#[test]
fn packet_lengths_are_bounded_before_allocation() {
    assert_eq!(
        packet_lengths([0, 0, 0, 4, 0, 27]),
        Ok(PacketLengths {
            payload: 4,
            header: 27
        })
    );
    assert_eq!(
        packet_lengths([0, 0, 0, 3, 0, 27]),
        Err(DtpError::PayloadLength(3))
    );
    assert!(matches!(
        packet_lengths([0x01, 0, 0, 1, 0, 27]),
        Err(DtpError::PacketTooLarge(_))
    ));
    assert!(packet_lengths([0xff, 0xff, 0xff, 0xff, 0, 27]).is_err());
    assert!(packet_lengths([0, 0, 0, 4, 0xff, 0xff]).is_err());
}

#[test]
fn acks_carry_flags_and_replies() {
    let a = pipeline_ack(9, &[Status::Success, Status::ErrorChecksum]);
    let wire = encode_message(&a);
    // Hand-checked: seqno 9 as sint64 (zigzag 18), reply [0, 2], time 0, packed flags [0, 2].
    assert_eq!(
        wire,
        [12, 0x08, 18, 0x10, 0, 0x10, 2, 0x18, 0, 0x22, 2, 0, 2]
    );
    let mut b = Bytes::from(wire);
    let (len, pre) = varint_prefix(&b).unwrap().unwrap();
    b.advance(pre);
    let back: PipelineAckProto = decode_message(b.split_to(len), "ack").unwrap();
    assert_eq!(
        ack_statuses(&back),
        vec![Status::Success, Status::ErrorChecksum]
    );
    // Hadoop 3's flag with ECN bits set still yields the status.
    let mut f = back.clone();
    f.flag = vec![0x20 | Status::ErrorChecksum as u32];
    assert_eq!(ack_statuses(&f), vec![Status::ErrorChecksum]);
    let r = encode_message(&read_status(Status::ChecksumOk));
    assert_eq!(r, [2, 0x08, 6]);
    let resp = encode_message(&op_response(Status::Success, None));
    assert_eq!(resp, [2, 0x08, 0]);
}

#[test]
fn crc32_matches_the_reference_value() {
    assert_eq!(crc32_ieee(b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}
