//! t84's benchmarks (run explicitly; figures for docs/benchmarks.md, "HDFS
//! clients"): a large file's put and cat through Hadoop's FsShell over
//! `hdfs://` beside `tdfs dfs`, and the small-file create rate, each on one
//! `tdfs local` process.

use std::path::Path;
use tdfs_testkit::{files::bytes, hadoop::Hadoop, procs};
use tokio::process::Command;

/// CPU seconds (user + system) of process `pid`, or of this process's
/// waited-for children with `pid` "self" (`/proc/PID/stat`, 100 ticks/s).
fn cpu_s(pid: &str, children: bool) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis, from field 3 on.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |r| r.1)
        .split_whitespace()
        .collect();
    let at = if children { 13 } else { 11 };
    let tick = |i: usize| {
        rest.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(at) + tick(at + 1)) / 100.0
}

/// Milliseconds of each `FsShellTimed` command (the JVM's start not
/// counted), with the datanodes' and the client's output discarded.
pub async fn hadoop_timed(h: &Hadoop, conf: &Path, args: &[&str]) -> Vec<u64> {
    let out = Command::new("java")
        .arg("-Dorg.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate=TdfsRuntimeDelegate")
        .args(["-cp", &h.classpath(conf), "FsShellTimed"])
        .args(args)
        .env("HADOOP_USER_NAME", "root")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ms: Vec<u64> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("timed exit=0 ms="))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        ms.len(),
        args.split(|a| *a == "--").count(),
        "FsShellTimed failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ms
}

/// One timed run: its label, milliseconds, and the CPU seconds the
/// cluster and the client spent on it.
struct Run {
    what: String,
    ms: u64,
    cluster: f64,
    client: f64,
}

/// Put then cat of one `mb` MiB file, `tdfs dfs` and Hadoop's FsShell in
/// the order A B B A (the second writer of the same amount pays more for
/// its page cache here, so each client gets both places), with the CPU
/// time of the cluster (the `tdfs local` process) and of the client.
pub async fn put_cat(mb: u64) {
    let size = mb << 20;
    let h = Hadoop::get().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cluster");
    let mut local = procs::spawn_local(&data_dir, &["--datanodes", "3", "--replication", "3"]);
    let pid = local.id().to_string();
    let src = dir.path().join("bench.bin");
    {
        let mut f = std::fs::File::create(&src).unwrap();
        for i in 0..mb.div_ceil(64) {
            let n = (size - i * (64 << 20)).min(64 << 20);
            std::io::Write::write_all(&mut f, &bytes(100 + i, n as usize)).unwrap();
        }
    }
    let cluster_json = data_dir.join("cluster.json").display().to_string();
    let tdfs = |args: &[&str]| {
        let t0 = std::time::Instant::now();
        let st = std::process::Command::new(procs::tdfs_bin())
            .args(["dfs", "--cluster", &cluster_json, "--user", "root"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "tdfs dfs {args:?}");
        t0.elapsed().as_millis() as u64
    };
    let s = src.display().to_string();
    let conf = data_dir.join("hadoop-conf");
    tdfs(&["-mkdir", "-p", "/bench"]);
    let mut runs = Vec::new();
    for (op, arg) in [("-put", Some(s.as_str())), ("-cat", None)] {
        for (k, hadoop) in [(1, false), (1, true), (2, true), (2, false)] {
            let name = format!("/bench/{}{k}.bin", if hadoop { "hadoop" } else { "tdfs" });
            let args = match arg {
                Some(src) => vec![op, src, &name],
                None => vec![op, &name],
            };
            let (c0, k0) = (cpu_s(&pid, false), cpu_s("self", true));
            let ms = match hadoop {
                true => hadoop_timed(h, &conf, &args).await[0],
                false => tdfs(&args),
            };
            runs.push(Run {
                what: format!(
                    "{} {op} #{k}",
                    if hadoop { "hadoop fs" } else { "tdfs dfs" }
                ),
                ms,
                cluster: cpu_s(&pid, false) - c0,
                client: cpu_s("self", true) - k0,
            });
        }
    }
    report(mb, size, &runs);
    let _ = local.kill();
    let _ = local.wait();
}

fn report(mb: u64, size: u64, runs: &[Run]) {
    let rate = |ms: u64| size as f64 / 1e6 / (ms as f64 / 1e3);
    println!("BENCH {mb} MiB, 3 datanodes, replication 3, tdfs local, same run (order A B B A):");
    for r in runs {
        println!(
            "BENCH {:<20} {:>6} ms {:>7.1} MB/s  cpu: cluster {:>5.1} s, client {:>5.1} s",
            r.what,
            r.ms,
            rate(r.ms),
            r.cluster,
            r.client
        );
    }
    for (i, op) in ["-put", "-cat"].iter().enumerate() {
        let four = &runs[i * 4..i * 4 + 4];
        let tdfs = four[0].ms + four[3].ms;
        let hadoop = four[1].ms + four[2].ms;
        println!(
            "BENCH {op}: tdfs dfs {:.1} MB/s, hadoop {:.1} MB/s (means of two), ratio {:.2}",
            rate(tdfs / 2),
            rate(hadoop / 2),
            tdfs as f64 / hadoop as f64
        );
    }
}

/// 1,000 empty files created one after another through Hadoop's client
/// (`CreateLoop`), then `tdfs bench meta --op create` with 1 and 64 in
/// flight, on one cluster.
pub async fn small_files() {
    const N: u64 = 1000;
    let h = Hadoop::get().await;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cluster");
    let mut local = procs::spawn_local(&data_dir, &["--datanodes", "3", "--replication", "3"]);
    let conf = data_dir.join("hadoop-conf");
    let out = Command::new("java")
        .arg("-Dorg.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate=TdfsRuntimeDelegate")
        .args([
            "-cp",
            &h.classpath(&conf),
            "CreateLoop",
            "/small",
            &N.to_string(),
        ])
        .env("HADOOP_USER_NAME", "root")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ms: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("created {N} in "))?
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .expect("CreateLoop prints its time");
    println!(
        "BENCH hadoop FileSystem.create+close x{N} (hdfs://, 1 in flight): {ms} ms, {:.0} files/s",
        N as f64 * 1e3 / ms as f64
    );
    let cluster_json = data_dir.join("cluster.json").display().to_string();
    for conc in ["1", "64"] {
        let out = std::process::Command::new(procs::tdfs_bin())
            .args([
                "bench",
                "meta",
                "--cluster",
                &cluster_json,
                "--user",
                "root",
            ])
            .args([
                "--op",
                "create",
                "--ops",
                &N.to_string(),
                "--concurrency",
                conc,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            println!("BENCH tdfs bench meta --op create --concurrency {conc}: {l}");
        }
    }
    let _ = local.kill();
    let _ = local.wait();
}
