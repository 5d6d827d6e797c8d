//! Raw DataTransferProtocol against a datanode: malformed input refused
//! with the datanode still serving, block tokens in Hadoop's token fields.

use super::*;

/// Block id, generation and the DataTransferProtocol address of one
/// replica of the first block of `path`.
async fn first_block(c: &LocalCluster, path: &str) -> (u64, u64, String) {
    let lbs = c.client("root").block_locations(path, 0, 1).await.unwrap();
    let lb = &lbs.blocks[0];
    (lb.block.id, lb.block.gen, dn_hdfs(c, &lb.locations[0].id.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_dtp_input_is_refused_and_the_datanode_keeps_serving() {
    let (_dir, c) = cluster(3, BLOCK, |_| {}).await;
    let client = c.client("root");
    let data = bytes(9, 300_000);
    write(&client, "/m/f.bin", &data, 65_536).await;
    let (id, gen, addr) = first_block(&c, "/m/f.bin").await;
    assert_eq!(
        dtp_raw::read_block(&addr, id, gen, 1000, 150_000).await,
        &data[1000..151_000]
    );
    let refused = |r: Option<BlockOpResponseProto>, what: &str, msg: &str| {
        let r = r.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_ne!(r.status, Status::Success as i32, "{what}");
        let m = r.message.unwrap_or_default();
        assert!(m.contains(msg), "{what}: {m:?} lacks {msg:?}");
    };
    // A wrong version, an unknown op, an oversized length, a broken proto.
    let (mut s, r) = dtp_raw::send_raw(&addr, b"GET / HTTP/1.1\r\n\r\n").await;
    refused(r, "garbage", "Version Mismatch");
    assert!(dtp_raw::closed(&mut s).await);
    let (_, r) = dtp_raw::send_raw(&addr, &[0, 28, 99, 0]).await;
    refused(r, "unknown op", "op code 99");
    let (_, r) = dtp_raw::send_raw(&addr, &[0, 28, 81, 0x80, 0x80, 0x80, 0x40]).await;
    refused(r, "oversized length", "larger than");
    let (_, r) = dtp_raw::send_raw(&addr, &[0, 28, 81, 3, 0xff, 0xff, 0xff]).await;
    refused(r, "broken proto", "malformed OpReadBlockProto");
    // A read past the block's end, of a block that is not there.
    let op = dtp::encode_op(&dtp_raw::read_op(id, gen, 0, 10 << 20));
    refused(
        dtp_raw::send_raw(&addr, &op).await.1,
        "long read",
        "don't match",
    );
    let op = dtp::encode_op(&dtp_raw::read_op(id + 1_000_000, gen, 0, 1));
    assert!(dtp_raw::send_raw(&addr, &op)
        .await
        .1
        .is_some_and(|r| r.status != 0));

    // A write whose packet fails its checksum: ERROR_CHECKSUM, nothing kept.
    let bad = 7_777_001;
    let op = dtp::encode_op(&dtp_raw::write_op(bad, 1));
    let (mut s, r) = dtp_raw::send_raw(&addr, &op).await;
    assert_eq!(r.unwrap().status, Status::Success as i32);
    let sum = dtp_raw::crc32c_512();
    let mut p = Packet::new(0, 0, bytes(10, 4096).into(), &sum, false).unwrap();
    let mut sums = p.checksums.to_vec();
    sums[5] ^= 1;
    p.checksums = sums.into();
    s.write_all(&p.encode()).await.unwrap();
    let ack = dtp_raw::read_ack(&mut s).await.expect("an ack");
    assert_eq!(dtp::ack_statuses(&ack), vec![Status::ErrorChecksum]);
    assert!(dtp_raw::closed(&mut s).await);

    // A packet length beyond the limit; a client dying mid-packet.
    let (mut s, _) =
        dtp_raw::send_raw(&addr, &dtp::encode_op(&dtp_raw::write_op(bad + 1, 1))).await;
    s.write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 10]).await.unwrap();
    assert!(dtp_raw::closed(&mut s).await, "oversized packet closes");
    let (mut s, _) =
        dtp_raw::send_raw(&addr, &dtp::encode_op(&dtp_raw::write_op(bad + 2, 1))).await;
    let p = Packet::new(0, 0, bytes(11, 60_000).into(), &sum, false).unwrap();
    s.write_all(&p.encode()[..30_000]).await.unwrap();
    drop(s);

    // Nothing of those writes is kept; the block is still served.
    procs::wait_for(
        "the refused writes to be dropped",
        Duration::from_secs(10),
        || async {
            let partial = c.datanodes.iter().any(|d| {
                let st = &d.handle.as_ref().unwrap().store;
                (bad..bad + 3).any(|b| st.get(b).is_some()) || st.usage().pending > 0
            });
            (!partial).then_some(())
        },
    )
    .await;
    assert_eq!(dtp_raw::read_block(&addr, id, gen, 0, 300_000).await, data);
    assert_eq!(read(&client, "/m/f.bin", 0, 300_000).await, data);
    c.shutdown().await;
}

/// On a cluster with a key, Hadoop's client carries the block tokens the
/// metadata nodes hand out to the datanodes; an op without one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn block_tokens_travel_in_hadoop_token_fields() {
    let h = Hadoop::get().await;
    let (dir, c) = cluster(3, BLOCK, |cfg| cfg.use_generated_key().unwrap()).await;
    let local = dir.path().join("t.bin");
    let data = bytes(12, (BLOCK + 77) as usize);
    std::fs::write(&local, &data).unwrap();
    let got = dir.path().join("t-back.bin");
    let r = h
        .fs_shell(
            &conf_dir(&c),
            &[
                root(&["-put", &local.display().to_string(), "/t.bin"]),
                root(&["-get", "/t.bin", &got.display().to_string()]),
                root(&["-checksum", "/t.bin"]),
            ],
        )
        .await;
    for o in &r {
        o.ok();
    }
    assert!(std::fs::read(&got).unwrap() == data);
    let (id, gen, addr) = first_block(&c, "/t.bin").await;
    let op = dtp::encode_op(&dtp_raw::read_op(id, gen, 0, 100));
    let r = dtp_raw::send_raw(&addr, &op).await.1.expect("an answer");
    assert_eq!(r.status, Status::ErrorAccessToken as i32, "{:?}", r.message);
    c.shutdown().await;
}
