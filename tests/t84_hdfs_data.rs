//! HDFS's DataTransferProtocol on the datanodes (`--hdfs-addr`), with
//! unmodified clients over `hdfs://tdfs` (the HA nameservice of
//! `hadoop-conf/`): the `hdfs-native` Python package and Hadoop's own Java
//! FsShell and Spark write, read, append and checksum multi-block files;
//! what they write is an ordinary tdfs replica the tdfs client reads, and
//! the reverse. Malformed DataTransferProtocol input gets an error and the
//! datanode keeps serving.

#[path = "hdfs/bench.rs"]
mod bench;
mod common;
#[path = "common/dtp_raw.rs"]
mod dtp_raw;
#[path = "common/hdfs_native.rs"]
mod hdfs_native;

use common::data::{bytes, cluster, read, sha, write};
use common::hadoop::{cmd_as, Hadoop, ShellCmd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tdfs_hdfs_rpc::dtp::{self, Packet};
use tdfs_hdfs_rpc::proto::hdfs::{BlockOpResponseProto, Status};
use tdfs_local::LocalCluster;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const BLOCK: u64 = 1 << 20;

fn conf_dir(c: &LocalCluster) -> PathBuf {
    c.cfg.dir.join("hadoop-conf")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn root(args: &[&str]) -> ShellCmd {
    cmd_as("root", args)
}

/// The DataTransferProtocol address of the datanode with id `id`.
fn dn_hdfs(c: &LocalCluster, id: &str) -> String {
    c.datanodes
        .iter()
        .find(|d| d.id.as_ref().is_some_and(|i| i.0 == id))
        .and_then(|d| d.hdfs.clone())
        .expect("every datanode serves DataTransferProtocol")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hdfs_native_writes_reads_and_appends_multi_block_files() {
    let py = hdfs_native::python().await;
    let (_dir, c) = cluster(3, BLOCK, |_| {}).await;
    let size = (2 * BLOCK + BLOCK / 2 + 123).to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hdfs/native_data.py");
    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new(py)
            .args([script, "/hn", &size, &BLOCK.to_string()])
            .env("HADOOP_CONF_DIR", conf_dir(&c))
            .env("HADOOP_USER_NAME", "root")
            .output(),
    )
    .await
    .expect("hdfs-native script finishes within 3 minutes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "hdfs-native failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What it wrote is an ordinary tdfs file: the tdfs client reads the
    // same bytes, every block with three replicas.
    let client = c.client("root");
    for line in stdout.lines().filter_map(|l| l.strip_prefix("SHA ")) {
        let (path, want) = line.split_once(' ').unwrap();
        let st = client.stat(path).await.unwrap();
        let data = read(&client, path, 0, st.length).await;
        assert_eq!(hex(&sha(&data)), want, "{path} read by the tdfs client");
        let lbs = client.block_locations(path, 0, st.length).await.unwrap();
        for lb in &lbs.blocks {
            assert_eq!(lb.locations.len(), 3, "{path}: block {}", lb.block.id);
        }
    }
    c.shutdown().await;
}

/// FsShell over `hdfs://`: put, cat, get, appendToFile and checksum (both
/// Hadoop's MD5-of-MD5-of-CRC and COMPOSITE_CRC), and files crossing
/// between Hadoop's client and tdfs's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hadoop_fsshell_put_cat_get_append_checksum_and_cross_client() {
    let h = Hadoop::get().await;
    let (dir, c) = cluster(3, BLOCK, |_| {}).await;
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let big = bytes(1, (3 * BLOCK + 4321) as usize);
    let extra = bytes(2, 200_000);
    std::fs::write(local.join("big.bin"), &big).unwrap();
    std::fs::write(local.join("extra.bin"), &extra).unwrap();
    std::fs::write(local.join("small.txt"), "hello hadoop\n").unwrap();
    // Written by tdfs's client, read by Hadoop's.
    let client = c.client("root");
    let from_tdfs = bytes(3, (2 * BLOCK + 5) as usize);
    write(&client, "/x/from-tdfs.bin", &from_tdfs, 100_000).await;
    let l = |n: &str| local.join(n).display().to_string();
    let r = h
        .fs_shell(
            &conf_dir(&c),
            &[
                root(&["-mkdir", "-p", "/h"]),
                // Hadoop's client picks the block size (its default 128 MiB).
                root(&[
                    "-Ddfs.blocksize=1048576",
                    "-put",
                    &l("big.bin"),
                    "/h/big.bin",
                ]),
                root(&["-put", &l("small.txt"), "/h/small.txt"]),
                root(&["-cat", "/h/small.txt"]),
                root(&["-get", "/h/big.bin", &l("got.bin")]),
                root(&["-appendToFile", &l("extra.bin"), "/h/big.bin"]),
                root(&["-get", "/h/big.bin", &l("appended.bin")]),
                root(&["-checksum", "/h/big.bin"]),
                root(&[
                    "-Ddfs.checksum.combine.mode=COMPOSITE_CRC",
                    "-checksum",
                    "/h/big.bin",
                ]),
                root(&["-get", "/x/from-tdfs.bin", &l("from-tdfs.bin")]),
                root(&["-ls", "/h"]),
            ],
        )
        .await;
    for o in &r {
        o.ok();
    }
    assert_eq!(r[3].stdout, "hello hadoop\n");
    assert!(std::fs::read(local.join("got.bin")).unwrap() == big, "-get");
    let mut all = big.clone();
    all.extend_from_slice(&extra);
    assert!(
        std::fs::read(local.join("appended.bin")).unwrap() == all,
        "-appendToFile then -get"
    );
    assert!(
        std::fs::read(local.join("from-tdfs.bin")).unwrap() == from_tdfs,
        "Hadoop reads what tdfs wrote"
    );
    assert!(
        r[10].stdout.contains(&format!("{} ", all.len())),
        "{}",
        r[10].stdout
    );

    // The checksums Hadoop computes from the datanodes' BLOCK_CHECKSUM
    // answers are the ones tdfs (and so WebHDFS) reports.
    let sum = tdfs_client::file_checksum(&client, "/h/big.bin")
        .await
        .unwrap();
    let want = format!(
        "/h/big.bin\t{}\t{}",
        sum.md5_algorithm(),
        hex(&sum.md5_bytes())
    );
    assert_eq!(r[7].stdout.trim_end(), want);
    let crc = crc32c::crc32c(&all);
    assert_eq!(sum.crc32c, crc);
    assert_eq!(
        r[8].stdout.trim_end(),
        format!("/h/big.bin\tCOMPOSITE-CRC32C\t{crc:08x}")
    );

    // Written by Hadoop's client, read by tdfs's with its SHA-256.
    let back = read(&client, "/h/big.bin", 0, all.len() as u64).await;
    assert_eq!(sha(&back), sha(&all), "tdfs reads what Hadoop wrote");
    let lbs = client
        .block_locations("/h/big.bin", 0, all.len() as u64)
        .await
        .unwrap();
    // tdfs appends into a new block (HDFS's NEW_BLOCK append).
    assert_eq!(lbs.blocks.len(), 5);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spark_parquet_round_trip_over_hdfs() {
    let h = Hadoop::get().await;
    let (_dir, c) = cluster(3, BLOCK, |_| {}).await;
    c.client("root").mkdirs("/spark", true).await.unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hadoop/spark_parquet.py");
    let t0 = Instant::now();
    let out = h
        .pyspark(
            &conf_dir(&c),
            &script,
            &["hdfs://tdfs/spark/ds", "200000"],
            Duration::from_secs(400),
        )
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().find(|l| l.starts_with("RESULT "));
    assert!(
        out.status.success() && result.is_some(),
        "Spark over hdfs:// failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "spark parquet over hdfs://: {} (whole run {:.1} s)",
        result.unwrap(),
        t0.elapsed().as_secs_f64()
    );
    c.shutdown().await;
}

/// The metadata leader goes away in the middle of Hadoop's multi-block
/// write: the client's addBlock and complete fail over to the new leader,
/// the data path is not interrupted, and the file reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_during_a_hadoop_multi_block_write() {
    let h = Hadoop::get().await;
    let (dir, mut c) = cluster(3, BLOCK, |_| {}).await;
    let data = bytes(7, (64 * BLOCK + 99) as usize);
    let src = dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let conf = conf_dir(&c);
    let cmds = vec![
        root(&["-mkdir", "-p", "/k"]),
        root(&[
            "-Ddfs.blocksize=1048576",
            "-put",
            &src.display().to_string(),
            "/k/big.bin",
        ]),
    ];
    let put = tokio::spawn(async move { h.fs_shell(&conf, &cmds).await });
    // Once a few blocks are in, the leader stops.
    let client = c.client("root");
    common::wait_for(
        "4 blocks of the Hadoop write",
        Duration::from_secs(120),
        || {
            let client = client.clone();
            async move {
                let lbs = client
                    .block_locations("/k/big.bin._COPYING_", 0, u64::MAX / 2)
                    .await
                    .ok()?;
                (lbs.blocks.len() >= 4).then_some(())
            }
        },
    )
    .await;
    let old = c.leader().unwrap().config().id;
    c.stop_meta(old).await;
    let r = put.await.unwrap();
    r[0].ok();
    r[1].ok();
    let client = c.client("root");
    let st = client.stat("/k/big.bin").await.unwrap();
    assert_eq!(st.length, data.len() as u64);
    let back = read(&client, "/k/big.bin", 0, st.length).await;
    assert!(
        back == data,
        "the file written across the failover reads back"
    );
    assert_ne!(c.leader().unwrap().config().id, old);
    c.start_meta(old).await.unwrap();
    c.shutdown().await;
}

/// Printable bytes (letters, a newline every 100), so that what `-cat`
/// prints can be compared byte for byte.
fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut b = bytes(seed, len);
    for (i, x) in b.iter_mut().enumerate() {
        *x = if i % 100 == 99 { b'\n' } else { b'a' + *x % 26 };
    }
    b
}

/// A datanode of the pipeline stops in the middle of a block of a Hadoop
/// client's write: the client's `DataStreamer` recovers the pipeline
/// (`updateBlockForPipeline`, `PIPELINE_SETUP_STREAMING_RECOVERY` on the
/// surviving datanodes, which reopen the replica the broken write left
/// under the new generation, `updatePipeline`) and the put finishes; the
/// file reads back whole through tdfs's client and Hadoop's `-cat`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn datanode_stopped_mid_block_of_a_hadoop_write_the_pipeline_recovers() {
    const BIG: u64 = 8 << 20;
    let h = Hadoop::get().await;
    // Three datanodes, replication 3: every pipeline holds every datanode,
    // so the one stopped is in the pipeline of the block being written.
    let (dir, mut c) = cluster(3, BIG, |_| {}).await;
    let data = text_bytes(11, (5 * BIG + 777) as usize);
    let src = dir.path().join("big.txt");
    std::fs::write(&src, &data).unwrap();
    let conf = conf_dir(&c);
    let cmds = vec![
        root(&["-mkdir", "-p", "/p"]),
        root(&[
            "-Ddfs.blocksize=8388608",
            "-Ddfs.replication=3",
            "-put",
            &src.display().to_string(),
            "/p/big.txt",
        ]),
    ];
    let put_conf = conf.clone();
    let put = tokio::spawn(async move { h.fs_shell(&put_conf, &cmds).await });
    // Halfway through the second block, datanode 1 (in every pipeline)
    // stops: its connections drop in the middle of the block.
    let client = c.client("root");
    let store = c.datanodes[1].handle.as_ref().unwrap().store.clone();
    let received = common::wait_for(
        "datanode 1 halfway through the second block",
        Duration::from_secs(180),
        || {
            let got = store.stats.bytes_written.get();
            async move { (got >= BIG + BIG / 2).then_some(got) }
        },
    )
    .await;
    let first_gen = client
        .block_locations("/p/big.txt._COPYING_", 0, 1)
        .await
        .map(|l| l.blocks[0].block.gen)
        .unwrap_or_default();
    c.stop_datanode(1).await;
    eprintln!("datanode 1 stopped after receiving {received} bytes");
    let r = put.await.unwrap();
    r[0].ok();
    r[1].ok();
    let client = c.client("root");
    let st = client.stat("/p/big.txt").await.unwrap();
    assert_eq!(st.length, data.len() as u64);
    let back = read(&client, "/p/big.txt", 0, st.length).await;
    assert_eq!(
        sha(&back),
        sha(&data),
        "tdfs reads the recovered file whole"
    );
    // New blocks take the next block id and the next generation together;
    // a recovered block carries the generation `updateBlockForPipeline`
    // gave it on top (an abandoned block would shift both).
    let lbs = client
        .block_locations("/p/big.txt", 0, st.length)
        .await
        .unwrap();
    let ids: Vec<(u64, u64)> = lbs
        .blocks
        .iter()
        .map(|b| (b.block.id, b.block.gen))
        .collect();
    eprintln!("blocks (id, gen) {ids:?} (the first was at gen {first_gen} while written)");
    assert_eq!(ids.len(), 6);
    let offset = |(id, gen): (u64, u64)| gen.wrapping_sub(id);
    assert!(
        ids.iter().any(|b| offset(*b) != offset(ids[0])),
        "some block was recovered under a new generation: {ids:?}"
    );
    let r = h.fs_shell(&conf, &[root(&["-cat", "/p/big.txt"])]).await;
    let cat = r[0].ok();
    assert_eq!(cat.len(), data.len(), "-cat prints the whole file");
    assert!(
        cat.as_bytes() == data.as_slice(),
        "-cat prints the file's bytes"
    );
    c.shutdown().await;
}

/// Child processes killed (-9) when dropped, a failing test's included.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Real daemons: three `tdfs meta --hdfs-addr` and three `tdfs datanode
/// --hdfs-addr` processes, a Hadoop configuration with the HA nameservice
/// over the metas' HDFS addresses (as `tdfs local` writes it), and a
/// `kill -9` of the leader's process in the middle of a multi-block
/// FsShell `-put`: Hadoop's failover proxy finds the new leader, the put
/// finishes and the file reads back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_kill_9_of_a_meta_process_during_a_hadoop_multi_block_put() {
    let h = Hadoop::get().await;
    let mut m = common::MetaProcs::start_hdfs(3, &[]);
    let client = m.client("root");
    let leader = m.wait_leader(&client, Duration::from_secs(60)).await;
    let ports = common::free_ports(6);
    let mut dns = Procs(Vec::new());
    for i in 0..3 {
        let dir = m.dir.path().join(format!("dn-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(m.dir.path().join(format!("dn-{i}.log"))).unwrap();
        let child = std::process::Command::new(common::tdfs_bin())
            .args(["datanode", "--addr", &format!("127.0.0.1:{}", ports[2 * i])])
            .args(["--hdfs-addr", &format!("127.0.0.1:{}", ports[2 * i + 1])])
            .args(["--meta", &m.addr_list().join(",")])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        dns.0.push(child);
    }
    common::wait_for(
        "three datanodes announcing their HDFS address",
        Duration::from_secs(60),
        || async {
            match client
                .admin(tdfs_proto::meta::AdminRequest::Report)
                .await
                .ok()?
            {
                tdfs_proto::meta::AdminResponse::Report(r) => {
                    (r.datanodes.iter().filter(|d| d.hdfs.is_some()).count() >= 3).then_some(())
                }
                _ => None,
            }
        },
    )
    .await;
    let conf = tdfs_local::hadoop_conf::write(m.dir.path(), &m.hdfs).unwrap();
    let data = bytes(13, (48 * BLOCK + 5) as usize);
    let src = m.dir.path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    let cmds = vec![
        root(&["-mkdir", "-p", "/k9"]),
        root(&[
            "-Ddfs.blocksize=1048576",
            "-put",
            &src.display().to_string(),
            "/k9/big.bin",
        ]),
    ];
    let put_conf = conf.clone();
    let put = tokio::spawn(async move { h.fs_shell(&put_conf, &cmds).await });
    let t = Instant::now();
    let blocks = common::wait_for(
        "4 blocks of the Hadoop write",
        Duration::from_secs(180),
        || async {
            let lbs = client
                .block_locations("/k9/big.bin._COPYING_", 0, u64::MAX / 2)
                .await
                .ok()?;
            (lbs.blocks.len() >= 4).then_some(lbs.blocks.len())
        },
    )
    .await;
    m.kill(leader);
    eprintln!(
        "leader {leader} killed -9 with {blocks} of 49 blocks written ({:?} into the put)",
        t.elapsed()
    );
    assert!(blocks < 49, "the kill lands in the middle of the write");
    let r = put.await.unwrap();
    if r[1].code != 0 {
        m.dump_logs();
    }
    r[0].ok();
    r[1].ok();
    let client = m.client("root");
    let st = client.stat("/k9/big.bin").await.unwrap();
    assert_eq!(st.length, data.len() as u64);
    let back = read(&client, "/k9/big.bin", 0, st.length).await;
    assert_eq!(
        sha(&back),
        sha(&data),
        "the file written across kill -9 reads back"
    );
    let now = m.wait_leader(&client, Duration::from_secs(30)).await;
    assert_ne!(now, leader);
    eprintln!(
        "put, read back and a new leader {:?} after the put began",
        t.elapsed()
    );
    assert!(!m.panicked());
    drop(dns);
}

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
    common::wait_for(
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

/// `tdfs datanode --hdfs-addr` serves DataTransferProtocol there and
/// announces it at registration (Hadoop clients learn it as the xfer port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tdfs_datanode_daemon_serves_and_announces_hdfs_addr() {
    let m = common::MetaProcs::start(1);
    let ports = common::free_ports(2);
    let (addr, hdfs) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(common::tdfs_bin())
        .args(["datanode", "--addr", &addr, "--hdfs-addr", &hdfs])
        .args(["--meta", &m.addr_list().join(",")])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = m.client("root");
    let report = common::wait_for(
        "the datanode's registration",
        Duration::from_secs(30),
        || async {
            match c.admin(tdfs_proto::meta::AdminRequest::Report).await.ok()? {
                tdfs_proto::meta::AdminResponse::Report(r) => {
                    r.datanodes.into_iter().find(|d| d.hdfs.is_some())
                }
                _ => None,
            }
        },
    )
    .await;
    assert_eq!(report.hdfs.as_deref(), Some(hdfs.as_str()));
    let (_, r) = dtp_raw::send_raw(&hdfs, &[0, 27, 81]).await;
    let r = r.expect("an answer");
    assert!(r.message.unwrap_or_default().contains("Version Mismatch"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The figure for docs/benchmarks.md ("HDFS clients"): put and cat of one
/// large file through Hadoop's FsShell over `hdfs://` beside `tdfs dfs` on
/// the same `tdfs local` cluster (3 datanodes, replication 3, fsync on).
/// Each client puts twice, in the order A B B A, with the CPU time spent.
/// `TDFS_BENCH_MB=1024 cargo test --test t84_hdfs_data -- --ignored --nocapture bench_hadoop`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it explicitly"]
async fn bench_hadoop_hdfs_put_cat_beside_tdfs_dfs() {
    let mb: u64 = std::env::var("TDFS_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    bench::put_cat(mb).await;
}

/// Small-file create rate: Hadoop's client creating (and closing) 1,000
/// empty files one after another over `hdfs://` (`tests/hadoop/CreateLoop.java`,
/// timed in the JVM), beside `tdfs bench meta --op create` on the same
/// cluster, with one operation in flight and with 64.
/// `cargo test --test t84_hdfs_data -- --ignored --nocapture bench_small_file`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it explicitly"]
async fn bench_small_file_create_rate_hadoop_beside_tdfs_bench() {
    bench::small_files().await;
}
