//! Hadoop's own clients for the `hdfs://` tests, installed once per machine
//! under `target/tmp` (`CARGO_TARGET_TMPDIR`):
//! - the Java client from the `pyspark` wheel (`hadoop-client-api` and
//!   `-runtime` 3.5.0, FsShell and `DistributedFileSystem` unmodified), run
//!   through `tests/hdfs/TdfsShell.java`, which batches FsShell commands in
//!   one JVM (start-up costs seconds here);
//! - the `hdfs-native` Python package in a venv.
//!
//! Kept apart from the WebHDFS harness so the two can be merged later: the
//! only shared piece is the pyspark venv and its `jars/` directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::OnceCell;

fn tmp() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A venv at `target/tmp/NAME` with `packages` installed (once).
async fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let venv = tmp().join(name);
    let ready = venv.join(".installed");
    if !ready.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .await
            .expect("python3 runs");
        assert!(ok.success(), "python3 -m venv failed");
        let out = Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(packages)
            .output()
            .await
            .expect("pip runs");
        assert!(
            out.status.success(),
            "pip install {packages:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&ready, b"ok").unwrap();
    }
    venv
}

/// The Python of a venv holding `hdfs-native`.
pub async fn hdfs_native_python() -> &'static PathBuf {
    static PY: OnceCell<PathBuf> = OnceCell::const_new();
    PY.get_or_init(|| async {
        venv("hdfs-venv", &["hdfs-native==0.14.7"])
            .await
            .join("bin/python")
    })
    .await
}

/// The Hadoop client jars (pyspark's `jars/`) and the compiled helper.
pub struct Java {
    pub jars: PathBuf,
    pub helper: PathBuf,
}

pub async fn java() -> &'static Java {
    static JAVA: OnceCell<Java> = OnceCell::const_new();
    JAVA.get_or_init(|| async {
        let venv = venv("hadoop-venv", &["--no-deps", "pyspark==4.3.0"]).await;
        let jars = venv.join("lib/python3.11/site-packages/pyspark/jars");
        let jars = if jars.exists() {
            jars
        } else {
            // Whatever python3 the venv has.
            let lib = std::fs::read_dir(venv.join("lib")).unwrap();
            let py = lib.flatten().next().expect("a python lib dir").path();
            py.join("site-packages/pyspark/jars")
        };
        assert!(
            jars.join("hadoop-client-api-3.5.0.jar").exists(),
            "{jars:?}"
        );
        let helper = tmp().join("hdfs-java-helper");
        std::fs::create_dir_all(&helper).unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hdfs/TdfsShell.java");
        let out = Command::new("javac")
            .arg("-d")
            .arg(&helper)
            .arg("-cp")
            .arg(jars.join("hadoop-client-api-3.5.0.jar"))
            .arg(src)
            .output()
            .await
            .expect("javac runs (Debian: openjdk-17-jdk-headless)");
        assert!(
            out.status.success(),
            "javac failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Java { jars, helper }
    })
    .await
}

impl Java {
    /// `java TdfsShell ARGS` with `conf` first on the classpath, as `user`.
    pub fn command(&self, conf: &Path, user: &str, args: &[&str]) -> Command {
        let cp = format!(
            "{}:{}:{}/*",
            conf.display(),
            self.helper.display(),
            self.jars.display()
        );
        let mut c = Command::new("java");
        c.args([
            "-Xshare:auto",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            &cp,
            "TdfsShell",
        ])
        .args(args)
        .env("HADOOP_USER_NAME", user)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        c
    }

    /// Runs FsShell commands (each a slice of arguments) in one JVM; returns
    /// each command's exit code and output.
    pub async fn fs(&self, conf: &Path, user: &str, cmds: &[&[&str]]) -> Vec<(i32, String)> {
        let mut args: Vec<&str> = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            if i > 0 {
                args.push("--next");
            }
            args.extend_from_slice(c);
        }
        let out = tokio::time::timeout(
            Duration::from_secs(180),
            self.command(conf, user, &args).output(),
        )
        .await
        .expect("FsShell batch finishes within 3 minutes")
        .expect("java runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        parse_batch(&text, cmds.len()).unwrap_or_else(|| {
            panic!(
                "FsShell batch output:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

/// Splits `### CMD` / output / `### rc N` blocks.
fn parse_batch(text: &str, n: usize) -> Option<Vec<(i32, String)>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        if let Some(rc) = line.strip_prefix("### rc ") {
            out.push((rc.trim().parse().ok()?, cur.take()?));
        } else if line.starts_with("### ") {
            cur = Some(String::new());
        } else if let Some(c) = cur.as_mut() {
            if !line.starts_with("SLF4J") && !line.contains("NativeCodeLoader") {
                c.push_str(line);
                c.push('\n');
            }
        }
    }
    (out.len() == n).then_some(out)
}
