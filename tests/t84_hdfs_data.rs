//! HDFS's DataTransferProtocol on the datanodes (`--hdfs-addr`), with
//! unmodified clients over `hdfs://tdfs` (the HA nameservice of
//! `hadoop-conf/`): the `hdfs-native` Python package and Hadoop's own Java
//! FsShell and Spark write, read, append and checksum multi-block files;
//! what they write is an ordinary tdfs replica the tdfs client reads, and
//! the reverse. Malformed DataTransferProtocol input gets an error and the
//! datanode keeps serving.

#[path = "hdfs/bench.rs"]
mod bench;
#[path = "hdfs/dtp.rs"]
mod dtp_ops;
#[path = "hdfs/processes.rs"]
mod processes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tdfs_hdfs_rpc::dtp::{self, Packet};
use tdfs_hdfs_rpc::proto::hdfs::{BlockOpResponseProto, Status};
use tdfs_local::LocalCluster;
use tdfs_testkit::dtp_raw;
use tdfs_testkit::files::{bytes, cluster, read, sha, write};
use tdfs_testkit::hadoop::{cmd_as, Hadoop, ShellCmd};
use tdfs_testkit::hdfs_native;
use tdfs_testkit::procs;
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
    procs::wait_for(
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
    let received = procs::wait_for(
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
