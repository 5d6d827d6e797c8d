//! The `tdfs dfs`, `haadmin` and `fsck` commands against `tdfs local`, as a
//! user types them: outputs, exit codes, HDFS semantics and permissions.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tdfs_testkit::procs::*;

struct Local {
    child: Child,
    dir: tempfile::TempDir,
}

impl Local {
    fn start(extra: &[&str]) -> Local {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> Local {
        let child = spawn_local(dir.path(), extra);
        Local { child, dir }
    }

    fn cluster(&self) -> String {
        self.dir.path().join("cluster.json").display().to_string()
    }

    /// Runs `tdfs dfs ARGS` as `user`.
    fn dfs(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let cluster = self.cluster();
        let mut all = vec!["dfs", "--cluster", &cluster, "--user", user];
        all.extend_from_slice(args);
        run_tdfs(&all, &[])
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.dfs("root", args);
        assert_eq!(code, 0, "tdfs dfs {args:?} failed: {err}");
        out
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(mut self) -> tempfile::TempDir {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "tdfs local exited with {st}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "tdfs local did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

#[test]
fn namespace_commands_follow_hdfs() {
    let l = Local::start(&["--datanodes", "0"]);
    l.ok(&["-mkdir", "-p", "/a/b/c"]);
    l.ok(&["mkdir", "/a/x"]);
    // mkdir without -p needs the parent, and fails on an existing directory.
    assert_eq!(l.dfs("root", &["-mkdir", "/no/such"]).0, 1);
    let (code, _, err) = l.dfs("root", &["-mkdir", "/a/x"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("tdfs: "), "{err}");

    let ls = l.ok(&["-ls", "/a"]);
    assert!(ls.starts_with("Found 2 items\n"), "{ls}");
    let line = ls.lines().nth(1).unwrap();
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cols[0], "drwxr-xr-x");
    assert_eq!(cols[1], "-");
    assert_eq!(cols[2], "root");
    assert_eq!(cols[3], "supergroup");
    assert_eq!(cols[4], "0");
    assert_eq!(cols[7], "/a/b");
    let rls = l.ok(&["-ls", "-R", "/a"]);
    let paths: Vec<&str> = rls.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(paths, vec!["/a/b", "/a/b/c", "/a/x"]);

    l.ok(&["-touchz", "/a/f"]);
    assert_eq!(
        l.ok(&["-stat", "%F %b %r %u %g %n", "/a/f"]).trim(),
        "regular file 0 3 root supergroup f"
    );
    assert_eq!(l.dfs("root", &["-test", "-e", "/a/f"]).0, 0);
    assert_eq!(l.dfs("root", &["-test", "-d", "/a/f"]).0, 1);
    assert_eq!(l.dfs("root", &["-test", "-f", "/a/f"]).0, 0);
    assert_eq!(l.dfs("root", &["-test", "-e", "/a/nope"]).0, 1);

    // -rm of a directory needs -r; -rm -f of a missing path succeeds quietly.
    let (code, _, err) = l.dfs("root", &["-rm", "/a/b"]);
    assert_eq!(code, 1, "{err}");
    assert!(l.ok(&["-rm", "-f", "/a/nope"]).is_empty());
    assert_eq!(l.dfs("root", &["-rm", "/a/nope"]).0, 1);

    // A directory rename moves the subtree.
    l.ok(&["-mv", "/a/b", "/moved"]);
    assert_eq!(l.dfs("root", &["-test", "-d", "/moved/c"]).0, 0);
    assert_eq!(l.dfs("root", &["-test", "-e", "/a/b"]).0, 1);
    // Moving into an existing directory keeps the name.
    l.ok(&["-mv", "/moved", "/a/x"]);
    assert_eq!(l.dfs("root", &["-test", "-d", "/a/x/moved/c"]).0, 0);

    let count = l.ok(&["-count", "/a"]);
    let cols: Vec<&str> = count.split_whitespace().collect();
    assert_eq!(cols, vec!["4", "1", "0", "/a"]);
    let du = l.ok(&["-du", "-s", "/a"]);
    assert_eq!(
        du.split_whitespace().collect::<Vec<_>>(),
        vec!["0", "0", "/a"]
    );
    assert!(l
        .ok(&["-setrep", "2", "/a/f"])
        .contains("Replication 2 set: /a/f"));
    assert_eq!(l.ok(&["-stat", "%r", "/a/f"]).trim(), "2");

    l.ok(&["-rm", "-r", "/a/x"]);
    assert_eq!(l.dfs("root", &["-test", "-e", "/a/x"]).0, 1);

    // Invalid paths get a clear error.
    let (code, _, err) = l.dfs("root", &["-mkdir", "/bad/../path"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid path"), "{err}");
}

#[test]
fn permissions_are_enforced() {
    let l = Local::start(&["--datanodes", "0"]);
    l.ok(&["-mkdir", "-p", "/user/alice"]);
    l.ok(&["-chown", "alice:alice", "/user/alice"]);
    l.ok(&["-mkdir", "/private"]);
    l.ok(&["-chmod", "700", "/private"]);

    // Alice writes in her home, not in /.
    assert_eq!(l.dfs("alice", &["-mkdir", "/user/alice/work"]).0, 0);
    let (code, _, err) = l.dfs("alice", &["-mkdir", "/top"]);
    assert_eq!(code, 1);
    assert!(err.contains("Permission denied"), "{err}");
    // Bob cannot write in alice's home (755) nor list /private (700).
    assert_eq!(l.dfs("bob", &["-mkdir", "/user/alice/x"]).0, 1);
    let (code, _, err) = l.dfs("bob", &["-ls", "/private"]);
    assert_eq!(code, 1);
    assert!(err.contains("Permission denied"), "{err}");
    // Only the owner or the superuser changes modes; only the superuser gives files away.
    assert_eq!(l.dfs("bob", &["-chmod", "777", "/user/alice"]).0, 1);
    assert_eq!(l.dfs("alice", &["-chmod", "777", "/user/alice/work"]).0, 0);
    assert_eq!(l.dfs("alice", &["-chown", "bob", "/user/alice/work"]).0, 1);
    // With the directory opened to all, bob may create but not delete alice's
    // entries once the sticky bit is set.
    l.ok(&["-mkdir", "/tmp"]);
    l.ok(&["-chmod", "1777", "/tmp"]);
    assert_eq!(l.dfs("alice", &["-mkdir", "/tmp/a"]).0, 0);
    assert_eq!(l.dfs("bob", &["-mkdir", "/tmp/b"]).0, 0);
    assert_eq!(l.dfs("bob", &["-rm", "-r", "/tmp/a"]).0, 1);
    assert_eq!(l.dfs("alice", &["-rm", "-r", "/tmp/a"]).0, 0);
    let st = l.ok(&["-stat", "%u %a", "/tmp/b"]);
    assert_eq!(st.trim(), "bob 755");
}

#[test]
fn restart_keeps_the_namespace_and_admin_commands_answer() {
    let l = Local::start(&["--datanodes", "0"]);
    for i in 0..20 {
        l.ok(&["-mkdir", "-p", &format!("/r/d{i}")]);
    }
    let cluster = l.cluster();
    let (code, out, err) = run_tdfs(
        &[
            "haadmin",
            "--cluster",
            &cluster,
            "-getAllServiceState",
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let roles: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "leader").count(), 1, "{out}");
    assert_eq!(roles.len(), 3);
    for n in v.as_array().unwrap() {
        assert!(
            n["id"].is_u64() && n["addr"].is_string() && n["term"].is_u64(),
            "{n}"
        );
    }
    let (code, out, _) = run_tdfs(&["fsck", "/", "--cluster", &cluster, "--json"], &[]);
    assert_eq!(code, 0);
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(f["status"], "HEALTHY");
    assert_eq!(f["directories"], 22);

    let dir = l.stop();
    let l = Local::start_in(dir, &["--datanodes", "0"]);
    let ls = l.ok(&["-ls", "/r"]);
    assert!(ls.starts_with("Found 20 items"), "{ls}");
}

#[test]
fn client_errors_are_one_line() {
    // No cluster anywhere: a clear error, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(tdfs_bin())
        .args(["dfs", "--meta", "127.0.0.1:1", "-ls", "/"])
        .current_dir(dir.path())
        .env("TDFS_CLIENT_DEADLINE_MS", "1500")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("tdfs: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn data_commands_and_a_restart_keep_every_byte() {
    let l = Local::start(&["--datanodes", "3", "--block-size", "1m"]);
    let src = tempfile::tempdir().unwrap();
    let local = src.path().join("in.bin");
    let data: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).unwrap();
    l.ok(&["-mkdir", "/d"]);
    l.ok(&["-put", local.to_str().unwrap(), "/d/f"]);
    // Without -f an existing file is refused; with -f it is replaced.
    assert_eq!(
        l.dfs("root", &["-put", local.to_str().unwrap(), "/d/f"]).0,
        1
    );
    l.ok(&["-put", "-f", local.to_str().unwrap(), "/d/f"]);
    let ls = l.ok(&["-ls", "/d"]);
    assert!(ls.contains(" 3500000 "), "{ls}");
    assert!(!ls.contains("_COPYING_"), "{ls}");
    let sum1 = l.ok(&["-checksum", "/d/f"]);
    let parts: Vec<&str> = sum1.trim().split('\t').collect();
    assert_eq!(parts.len(), 3, "{sum1}");
    assert_eq!(parts[0], "/d/f");
    // HDFS's composite CRC: the CRC32C of the file's bytes.
    assert_eq!(parts[1], "COMPOSITE-CRC32C");
    assert_eq!(parts[2], format!("{:08x}", crc32c::crc32c(&data)));
    let sha = l.ok(&["-checksum", "-sha256", "/d/f"]);
    assert!(sha.contains("\tSHA256-of-BLOCK-SHA256\t"), "{sha}");
    let cluster = l.cluster();
    let (code, out, _) = run_tdfs(
        &["dfsadmin", "--cluster", &cluster, "-report", "--json"],
        &[],
    );
    assert_eq!(code, 0);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["datanodes"].as_array().unwrap().len(), 3);
    for d in r["datanodes"].as_array().unwrap() {
        assert_eq!(d["state"], "live", "{d}");
        assert_eq!(d["admin_state"], "normal", "{d}");
    }
    assert!(r["leader"].is_u64() && r["capacity"].is_u64() && r["remaining"].is_u64());

    let dir = l.stop();
    let l = Local::start_in(dir, &["--datanodes", "3", "--block-size", "1m"]);
    assert_eq!(l.ok(&["-checksum", "/d/f"]), sum1);
    let back = src.path().join("back.bin");
    l.ok(&["-get", "/d/f", back.to_str().unwrap()]);
    assert!(
        std::fs::read(&back).unwrap() == data,
        "-get after a restart differs"
    );
    let cluster = l.cluster();
    let (code, out, _) = run_tdfs(&["fsck", "/", "--cluster", &cluster, "--json"], &[]);
    let f: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(f["status"], "HEALTHY");
    assert_eq!(f["files"], 1);
    assert_eq!(f["blocks"], 4);
    assert_eq!(f["total_size"], 3_500_000);
    assert_eq!(f["under_replicated"], 0);
}

#[test]
fn put_reads_stdin_and_cat_writes_stdout() {
    use std::io::Write;
    let l = Local::start(&["--datanodes", "2", "--replication", "2"]);
    let cluster = l.cluster();
    let mut child = Command::new(tdfs_bin())
        .args([
            "dfs",
            "--cluster",
            &cluster,
            "--user",
            "root",
            "-put",
            "-",
            "/from-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(l.ok(&["-cat", "/from-stdin"]), "hello from stdin\n");
    l.ok(&["-appendToFile", "-", "/from-stdin"]);
    let (code, _, err) = l.dfs("root", &["-cat", "/nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such file"), "{err}");
}

#[test]
fn daemons_refuse_bad_flags_and_dirs_in_one_line() {
    for args in [
        vec!["meta", "--bogus"],
        vec!["meta", "--id", "x"],
        vec![
            "meta",
            "--id",
            "1",
            "--addr",
            "127.0.0.1:1",
            "--data-dir",
            "/proc/nope",
            "--peers",
            "1=127.0.0.1:1",
        ],
        vec![
            "meta",
            "--id",
            "1",
            "--addr",
            "127.0.0.1:1",
            "--data-dir",
            "/tmp/x",
            "--peers",
            "1=127.0.0.1:2",
        ],
        vec![
            "datanode",
            "--addr",
            "127.0.0.1:1",
            "--data-dir",
            "/proc/nope",
            "--meta",
            "127.0.0.1:2",
        ],
    ] {
        let (code, _, err) = run_tdfs(&args, &[]);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.starts_with("tdfs: "), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    // A taken port.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run_tdfs(
        &[
            "meta",
            "--id",
            "1",
            "--addr",
            &addr,
            "--peers",
            &format!("1={addr}"),
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Runs `tdfs bench meta --op OP` against `l` and returns its JSON document.
fn bench_meta(l: &Local, op: &str, extra: &[&str]) -> serde_json::Value {
    let cluster = l.cluster();
    let mut args = vec![
        "bench",
        "meta",
        "--cluster",
        &cluster,
        "--user",
        "root",
        "--op",
        op,
        "--ops",
        "30",
        "--concurrency",
        "4",
        "--files-per-dir",
        "7",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = run_tdfs(&args, &[]);
    assert_eq!(code, 0, "bench meta --op {op} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{op}: {e}: {out}"))
}

/// Paths under `/` whose name starts with `prefix`.
fn roots_named(l: &Local, prefix: &str) -> Vec<String> {
    l.ok(&["-ls", "/"])
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .filter(|p| p.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn bench_meta_runs_every_op_reports_the_leader_and_keeps_on_request() {
    let l = Local::start(&["--datanodes", "0"]);
    for op in ["mkdir", "create", "open", "stat", "ls", "rename", "delete"] {
        let r = bench_meta(&l, op, &[]);
        assert_eq!(r["op"], op);
        assert_eq!(r["ops"], 30);
        assert_eq!(r["concurrency"], 4);
        for f in ["seconds", "ops_per_sec", "p50_ms", "p99_ms"] {
            assert!(r[f].as_f64().unwrap() > 0.0, "{op}: {f} in {r}");
        }
        // `tdfs local` is one process: the leader's resident memory is its own.
        let rss = r["leader_rss_bytes"].as_u64().unwrap();
        assert!(rss > 1 << 20, "{op}: leader_rss_bytes {rss}");
        assert!(roots_named(&l, "/bench-").is_empty(), "{op} left its tree");
    }
    // --keep: 30 objects in directories of 7, as the op left them.
    bench_meta(&l, "rename", &["--keep"]);
    let [base] = &roots_named(&l, "/bench-rename-")[..] else {
        panic!("one kept rename tree expected");
    };
    let listing = l.ok(&["-ls", "-R", base]);
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_whitespace().last()?.rsplit('/').next())
        .collect();
    let dirs = names.iter().filter(|n| n.starts_with('d')).count();
    let renamed = names.iter().filter(|n| n.starts_with('r')).count();
    let originals = names.iter().filter(|n| n.starts_with('f')).count();
    assert_eq!((dirs, renamed, originals), (5, 30, 0), "{listing}");
    bench_meta(&l, "mkdir", &["--keep"]);
    let [base] = &roots_named(&l, "/bench-mkdir-")[..] else {
        panic!("one kept mkdir tree expected");
    };
    let count = l.ok(&["-count", base]);
    // DIR_COUNT FILE_COUNT CONTENT_SIZE PATH: the base, 5 parents, 30 made.
    assert_eq!(count.split_whitespace().next(), Some("36"), "{count}");
    let (code, _, err) = run_tdfs(
        &["bench", "meta", "--cluster", &l.cluster(), "--op", "chmod"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("chmod"), "{err}");
}
