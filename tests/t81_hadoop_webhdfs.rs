//! Apache Hadoop's own client, unmodified, over `webhdfs://` against an
//! in-process cluster: every everyday FsShell command (batched into few
//! JVMs), its errors, and Spark writing and reading a Parquet data set.
//! The client comes from the `pyspark` wheel (see `tdfs_testkit::hadoop`).

use md5::{Digest, Md5};
use std::path::Path;
use std::time::{Duration, Instant};
use tdfs_local::LocalCluster;
use tdfs_testkit::files::cluster;
use tdfs_testkit::hadoop::{cmd_as, conf_dir, Hadoop, ShellCmd, ShellOut};
use tdfs_testkit::{files, procs};

const MIB: usize = 1 << 20;
/// The chunk every stored CRC32C covers.
const CHUNK: usize = 64 << 10;

/// A cluster with 1 MiB blocks, and the `webhdfs://` URL of its leader.
async fn start(datanodes: usize) -> (tempfile::TempDir, LocalCluster, String) {
    let (dir, c) = cluster(datanodes, MIB as u64, |_| {}).await;
    let leader = c.leader().unwrap().id();
    let url = format!("webhdfs://{}", c.meta_http[&leader]);
    (dir, c, url)
}

/// Printable pseudo-random text (so FsShell's output compares exactly),
/// a newline every 80 bytes.
fn text(seed: u64, len: usize) -> Vec<u8> {
    files::bytes(seed, len)
        .iter()
        .enumerate()
        .map(|(i, b)| if i % 80 == 79 { b'\n' } else { b'a' + b % 26 })
        .collect()
}

/// Hadoop's MD5-of-MD5-of-CRC32C of `data` stored in `block`-byte blocks
/// with a CRC32C per 64 KiB chunk: (algorithm name, hex of its bytes).
fn md5_md5_crc32c(data: &[u8], block: usize) -> (String, String) {
    let mut file = Md5::new();
    for b in data.chunks(block) {
        let mut m = Md5::new();
        for ch in b.chunks(CHUNK) {
            m.update(crc32c::crc32c(ch).to_be_bytes());
        }
        file.update(m.finalize());
    }
    // Hadoop hashes its whole DataOutputBuffer: zeros up to its capacity.
    let n = data.chunks(block).count() * 16;
    file.update(vec![0u8; tdfs_client::checksum::hadoop_buffer_len(n) - n]);
    let per_block = if data.len() > block { block / CHUNK } else { 0 };
    let mut bytes = (CHUNK as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(per_block as u64).to_be_bytes());
    bytes.extend_from_slice(&file.finalize());
    let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
    (format!("MD5-of-{per_block}MD5-of-{CHUNK}CRC32C"), hex)
}

/// Runs `cmds` and prints each command's outcome (shown when a test fails).
async fn shell(h: &Hadoop, conf: &Path, cmds: &[ShellCmd]) -> Vec<ShellOut> {
    let t = Instant::now();
    let out = h.fs_shell(conf, cmds).await;
    println!("{} FsShell commands in {:?}", cmds.len(), t.elapsed());
    for o in &out {
        println!("hadoop fs {:?} -> {}", o.args, o.code);
    }
    out
}

fn curl_json(url: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", "30", url])
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "curl {url}");
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsshell_everyday_commands_over_webhdfs() {
    let h = Hadoop::get().await;
    let (dir, c, w) = start(3).await;
    let d = dir.path();
    let conf = conf_dir(d, &[("dfs.blocksize", "1048576")]);
    // Two blocks and a 100-byte third: -tail's last KiB crosses a boundary.
    let big = text(1, 2 * MIB + 100);
    let small = b"hello\nworld\n".to_vec();
    let (bigf, smallf) = (d.join("big.txt"), d.join("small.txt"));
    std::fs::write(&bigf, &big).unwrap();
    std::fs::write(&smallf, &small).unwrap();
    let (bigs, smalls) = (bigf.to_str().unwrap(), smallf.to_str().unwrap());
    let got = d.join("got.txt");
    let merged = d.join("merged.txt");
    let u = |p: &str| format!("{w}{p}");
    let r = |args: &[&str]| cmd_as("root", args);
    let (wbig, wsmall) = (u("/w/big.txt"), u("/w/small.txt"));

    let cmds = vec![
        r(&["-mkdir", "-p", &u("/w/a/b")]),
        r(&["-put", bigs, &wbig]),
        r(&["-put", smalls, &wsmall]),
        r(&["-ls", &u("/w")]),
        r(&["-ls", "-R", &u("/w")]),
        r(&["-stat", "%n %b %o %r %F %u:%g", &wbig]),
        r(&["-cat", &wsmall]),
        r(&["-get", &wbig, got.to_str().unwrap()]),
        r(&["-tail", &wbig]),
        r(&["-head", &wbig]),
        r(&["-text", &wsmall]),
        r(&["-du", "-s", &u("/w")]),
        r(&["-count", &u("/w")]),
        r(&["-df", &u("/")]),
        r(&["-checksum", &wbig]),
        r(&["-mv", &wsmall, &u("/w/a/small.txt")]),
        r(&["-cp", &wbig, &u("/w/a/copy.txt")]),
        r(&["-touchz", &u("/w/empty")]),
        r(&["-test", "-e", &u("/w/empty")]),
        r(&["-test", "-f", &u("/w/empty")]),
        r(&["-test", "-d", &u("/w/empty")]),
        r(&["-appendToFile", smalls, &u("/w/empty")]),
        r(&["-cat", &u("/w/empty")]),
        r(&[
            "-getmerge",
            &u("/w/a/small.txt"),
            &u("/w/empty"),
            merged.to_str().unwrap(),
        ]),
        r(&["-chmod", "640", &u("/w/a/small.txt")]),
        r(&["-chown", "alice:eng", &u("/w/a/small.txt")]),
        r(&["-ls", &u("/w/a/small.txt")]),
        r(&["-setrep", "2", &wbig]),
        // -w polls GETFILEBLOCKLOCATIONS until each block has 2 hosts.
        r(&["-setrep", "-w", "2", &u("/w/a/copy.txt")]),
        r(&["-rm", &u("/w/a/small.txt")]),
        r(&["-rm", "-r", &u("/w/a")]),
        r(&["-test", "-e", &u("/w/a")]),
        // A umask of the client's own is applied by the client, once.
        r(&["-Dfs.permissions.umask-mode=000", "-mkdir", &u("/w/open")]),
        r(&[
            "-Dfs.permissions.umask-mode=077",
            "-put",
            smalls,
            &u("/w/secret"),
        ]),
        r(&["-ls", "-d", &u("/w/open")]),
        r(&["-ls", &u("/w/secret")]),
    ];
    let o = shell(h, &conf, &cmds).await;
    let out = |i: usize| o[i].ok();
    let ls = out(3);
    assert!(ls.contains("Found 3 items"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-rw-r--r--   3 root") && l.contains(" 2097252 ")),
        "{ls}"
    );
    assert!(out(4).contains("/w/a/b"), "{}", out(4));
    assert_eq!(
        out(5).trim(),
        "big.txt 2097252 1048576 3 regular file root:supergroup"
    );
    assert_eq!(out(6).as_bytes(), &small[..]);
    assert!(std::fs::read(&got).unwrap() == big, "-get differs");
    assert_eq!(out(8).as_bytes(), &big[big.len() - 1024..], "-tail");
    assert_eq!(out(9).as_bytes(), &big[..1024], "-head");
    assert_eq!(out(10).as_bytes(), &small[..]);
    let total = big.len() + small.len();
    assert!(
        out(11).starts_with(&format!("{total}  {}  ", 3 * total)),
        "{}",
        out(11)
    );
    let count: Vec<&str> = out(12).split_whitespace().collect();
    assert_eq!(&count[..3], &["3", "2", &total.to_string()], "{}", out(12));
    assert!(
        out(13).contains("Size") && out(13).contains("Available"),
        "{}",
        out(13)
    );
    let (alg, hex) = md5_md5_crc32c(&big, MIB);
    assert_eq!(out(14).trim(), format!("{wbig}\t{alg}\t{hex}"));
    for i in 15..=19 {
        out(i);
    }
    assert_eq!(o[20].code, 1, "-test -d on a file");
    out(21);
    assert_eq!(out(22).as_bytes(), &small[..]);
    assert_eq!(
        std::fs::read(&merged).unwrap(),
        [&small[..], &small[..]].concat()
    );
    out(24);
    out(25);
    assert!(
        out(26).starts_with("-rw-r-----   3 alice eng "),
        "{}",
        out(26)
    );
    assert!(out(27).contains("Replication 2 set"), "{}", out(27));
    assert!(out(28).contains("Replication 2 set"), "{}", out(28));
    assert!(out(29).contains("Deleted"), "{}", out(29));
    assert!(out(30).contains("Deleted"), "{}", out(30));
    assert_eq!(o[31].code, 1, "-test -e after -rm -r");
    out(32);
    out(33);
    assert!(out(34).starts_with("drwxrwxrwx"), "{}", out(34));
    assert!(out(35).starts_with("-rw-------"), "{}", out(35));

    // The composite CRC over HTTP and through tdfs's own CLI: the CRC32C
    // of the file's bytes.
    let crc = format!("{:08x}", crc32c::crc32c(&big));
    let http = w.trim_start_matches("webhdfs://");
    let q = "op=GETFILECHECKSUM&checksumcombinemode=COMPOSITE_CRC&user.name=root";
    let j = curl_json(&format!("http://{http}/webhdfs/v1/w/big.txt?{q}"));
    assert_eq!(
        j["FileChecksum"],
        serde_json::json!({"algorithm": "COMPOSITE-CRC32C", "bytes": crc, "length": 4})
    );
    let meta = c.meta_addrs.values().cloned().collect::<Vec<_>>().join(",");
    let (code, so, se) = procs::run_tdfs(
        &[
            "dfs",
            "--meta",
            &meta,
            "--user",
            "root",
            "-checksum",
            "/w/big.txt",
        ],
        &[],
    );
    assert_eq!(code, 0, "{se}");
    assert_eq!(so.trim(), format!("/w/big.txt\tCOMPOSITE-CRC32C\t{crc}"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fsshell_errors_over_webhdfs() {
    let h = Hadoop::get().await;
    let (dir, c, w) = start(3).await;
    let conf = conf_dir(dir.path(), &[]);
    let u = |p: &str| format!("{w}{p}");
    let r = |args: &[&str]| cmd_as("root", args);
    let cmds = vec![
        r(&["-mkdir", "-p", &u("/e/d")]),
        r(&["-touchz", &u("/e/f")]),
        r(&["-cat", &u("/e/missing")]),
        r(&["-rm", &u("/e/missing")]),
        r(&["-ls", &u("/e/missing")]),
        cmd_as("mallory", &["-mkdir", &u("/e/d/x")]),
        cmd_as("mallory", &["-rm", "-r", &u("/e/d")]),
        cmd_as("mallory", &["-chmod", "777", &u("/e/f")]),
        r(&["-mkdir", &u("/e/f/sub")]),
        r(&["-mkdir", &u("/e/d")]),
        r(&["-rm", &u("/e/d")]),
        r(&["-put", "/nonexistent-local-file", &u("/e/g")]),
        r(&["-touchz", &u("/e/f")]),
    ];
    let o = shell(h, &conf, &cmds).await;
    o[0].ok();
    o[1].ok();
    o[2].fails_with("No such file or directory");
    o[3].fails_with("No such file or directory");
    o[4].fails_with("No such file or directory");
    o[5].fails_with("Permission denied: user=mallory, access=WRITE");
    o[6].fails_with("Permission denied: user=mallory");
    o[7].fails_with("Permission denied");
    o[8].fails_with("not a directory");
    o[9].fails_with("File exists");
    o[10].fails_with("Is a directory");
    o[11].fails_with("No such file or directory");
    // An existing empty file: touchz succeeds (HDFS updates its times).
    o[12].ok();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spark_writes_and_reads_parquet_over_webhdfs() {
    let h = Hadoop::get().await;
    let (dir, c, w) = start(3).await;
    let conf = conf_dir(dir.path(), &[("dfs.blocksize", "1048576")]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hadoop/spark_parquet.py");
    let url = format!("{w}/spark/table.parquet");
    let t = Instant::now();
    let out = h
        .pyspark(&conf, &script, &[&url, "200000"], Duration::from_secs(300))
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("spark over webhdfs:// took {:?}\n{stdout}", t.elapsed());
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT from Spark:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["got"], r["want"], "{r}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<&str> = r["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    assert!(files.contains(&"_SUCCESS"), "{files:?}");
    assert_eq!(files.iter().filter(|f| f.ends_with(".parquet")).count(), 3);
    // The data set is really in tdfs.
    let root = c.client("root");
    let st = root.list("/spark/table.parquet").await.unwrap();
    assert_eq!(st.len(), 4, "{st:?}");
    c.shutdown().await;
}
