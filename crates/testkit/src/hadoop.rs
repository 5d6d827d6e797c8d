//! Apache Hadoop's own Java client, unmodified, for end-to-end tests: the
//! Hadoop 3.5 client jars and Spark come from the `pyspark` wheel, installed
//! once into a venv cached under the target directory (about 490 MB the
//! first time). Two small Java classes from `tests/hadoop/` are compiled
//! beside it: `TdfsRuntimeDelegate` (the media-type parsing the shaded
//! client lacks, HADOOP-19652) and `FsShellBatch`, which runs many FsShell
//! commands in one JVM (a JVM start costs seconds on 2 cores).
//!
//! ```ignore
//! let h = hadoop::Hadoop::get().await;
//! let conf = hadoop::conf_dir(dir, &[("dfs.blocksize", "1048576")]);
//! let out = h.fs_shell(&conf, &[cmd(&["-ls", "webhdfs://HOST:PORT/"]), cmd_as("bob", &["-mkdir", "..."])]).await;
//! out[0].ok();
//! let spark = h.pyspark(&conf, script, &[...]).await;
//! ```

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// The wheel that carries Hadoop's client jars (and Spark).
const PYSPARK: &str = "pyspark==4.3.0";
/// The jars of the Hadoop client inside the wheel.
const CLIENT_JARS: [&str; 3] = [
    "hadoop-client-api-3.5.0.jar",
    "hadoop-client-runtime-3.5.0.jar",
    "slf4j-api-2.0.17.jar",
];
/// Java options for every JVM: the delegate (`TdfsRuntimeDelegate`, the class
/// that stands in for Jersey's runtime delegate), and a quick start-up.
const JAVA_OPTS: [&str; 3] = [
    "-Dorg.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate=TdfsRuntimeDelegate",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
];

/// An installed Hadoop client.
pub struct Hadoop {
    /// The venv's python (runs PySpark).
    pub python: PathBuf,
    /// `site-packages/pyspark/jars`.
    pub jars: PathBuf,
    /// The compiled support classes.
    pub classes: PathBuf,
}

/// One FsShell command: its arguments and the user it runs as (Hadoop's
/// simple authentication; `None`: the JVM's own user).
#[derive(Clone, Debug)]
pub struct ShellCmd {
    pub user: Option<String>,
    pub args: Vec<String>,
}

pub fn cmd(args: &[&str]) -> ShellCmd {
    ShellCmd {
        user: None,
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn cmd_as(user: &str, args: &[&str]) -> ShellCmd {
    ShellCmd {
        user: Some(user.to_string()),
        ..cmd(args)
    }
}

/// What one FsShell command did.
#[derive(Clone, Debug)]
pub struct ShellOut {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ShellOut {
    /// Asserts exit status 0; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "hadoop fs {:?} failed:\n{}",
            self.args, self.stderr
        );
        &self.stdout
    }

    /// Asserts a non-zero exit with `msg` in stderr.
    pub fn fails_with(&self, msg: &str) {
        assert_ne!(self.code, 0, "hadoop fs {:?} should fail", self.args);
        assert!(
            self.stderr.contains(msg),
            "hadoop fs {:?}: stderr lacks {msg:?}:\n{}",
            self.args,
            self.stderr
        );
    }
}

/// Writes `DIR/hadoop-conf/core-site.xml` with `props` (Hadoop's client
/// insists on a `core-site.xml` on its classpath); returns the directory.
pub fn conf_dir(dir: &Path, props: &[(&str, &str)]) -> PathBuf {
    let conf = dir.join("hadoop-conf");
    std::fs::create_dir_all(&conf).unwrap();
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<configuration>\n");
    for (k, v) in props {
        xml.push_str(&format!(
            "  <property><name>{k}</name><value>{v}</value></property>\n"
        ));
    }
    xml.push_str("</configuration>\n");
    std::fs::write(conf.join("core-site.xml"), xml).unwrap();
    conf
}

async fn run(what: &str, c: &mut Command) -> Output {
    let out = c
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Installs `javac` from Debian when it is missing (Java 17, as Spark 4 needs).
async fn ensure_javac() {
    let have = || async {
        Command::new("javac")
            .arg("-version")
            .output()
            .await
            .is_ok_and(|o| o.status.success())
    };
    if have().await {
        return;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "openjdk-17-jdk-headless"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    if !install().await.is_ok_and(|o| o.status.success()) {
        let _ = Command::new("apt-get").arg("update").output().await;
        run(
            "apt-get install openjdk-17-jdk-headless",
            Command::new("apt-get")
                .args(["install", "-y", "-q", "openjdk-17-jdk-headless"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .await;
    }
    assert!(have().await, "javac is not installed");
}

/// The venv with `pyspark`, created once per target directory.
async fn install_venv(venv: &Path) -> PathBuf {
    let py = venv.join("bin/python");
    let ready = venv.join(".tdfs-installed");
    if ready.exists() {
        return py;
    }
    eprintln!(
        "installing {PYSPARK} into {} (about 490 MB, once)",
        venv.display()
    );
    run(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(venv),
    )
    .await;
    let pip = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            PYSPARK,
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("pip runs");
    assert!(
        pip.status.success(),
        "cannot install {PYSPARK} (it carries Hadoop's client jars; PyPI must be reachable): {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    std::fs::write(&ready, PYSPARK).unwrap();
    py
}

/// Compiles `tests/hadoop/*.java` against the client jars when a source is
/// newer than its class.
async fn compile(jars: &Path, classes: &Path) {
    let src = crate::paths::workspace_root().join("tests/hadoop");
    let sources: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "java"))
        .collect();
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = sources.iter().any(|s| {
        let class = classes.join(s.file_stem().unwrap()).with_extension("class");
        match (mtime(s), mtime(&class)) {
            (Some(a), Some(b)) => a > b,
            _ => true,
        }
    });
    if !stale {
        return;
    }
    ensure_javac().await;
    std::fs::create_dir_all(classes).unwrap();
    let cp = CLIENT_JARS
        .map(|j| jars.join(j).display().to_string())
        .join(":");
    run(
        "javac tests/hadoop/*.java",
        Command::new("javac")
            .arg("-d")
            .arg(classes)
            .args(["-cp", &cp])
            .args(&sources),
    )
    .await;
}

impl Hadoop {
    /// The client, installed and compiled on first use in this process
    /// (cached across runs under `target/tmp`).
    pub async fn get() -> &'static Hadoop {
        static H: OnceCell<Hadoop> = OnceCell::const_new();
        H.get_or_init(|| async {
            let tmp = crate::paths::target_tmp();
            let python = install_venv(&tmp.join("hadoop-venv")).await;
            let out = run(
                "locating pyspark",
                Command::new(&python).args([
                    "-c",
                    "import os, pyspark; print(os.path.dirname(pyspark.__file__))",
                ]),
            )
            .await;
            let jars = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("jars");
            for j in CLIENT_JARS {
                assert!(
                    jars.join(j).exists(),
                    "{PYSPARK} lacks {j} in {}",
                    jars.display()
                );
            }
            let classes = tmp.join("hadoop-classes");
            compile(&jars, &classes).await;
            Hadoop {
                python,
                jars,
                classes,
            }
        })
        .await
    }

    /// The classpath of a Hadoop client JVM with `conf` first.
    pub fn classpath(&self, conf: &Path) -> String {
        let mut cp = vec![
            conf.display().to_string(),
            self.classes.display().to_string(),
        ];
        cp.extend(CLIENT_JARS.map(|j| self.jars.join(j).display().to_string()));
        cp.join(":")
    }

    /// Runs `cmds` through Hadoop's FsShell (`hadoop fs`) in one JVM, with
    /// the configuration in `conf`; at most `timeout` for them all.
    pub async fn fs_shell_within(
        &self,
        conf: &Path,
        cmds: &[ShellCmd],
        timeout: Duration,
    ) -> Vec<ShellOut> {
        let file = conf.join(format!("fsshell-{}.txt", rand::random::<u64>()));
        let mut text = String::new();
        for c in cmds {
            assert!(
                c.args.iter().all(|a| !a.contains(['\t', '\n'])),
                "FsShellBatch arguments cannot hold tabs or newlines: {:?}",
                c.args
            );
            text.push_str(c.user.as_deref().unwrap_or("-"));
            for a in &c.args {
                text.push('\t');
                text.push_str(a);
            }
            text.push('\n');
        }
        std::fs::write(&file, text).unwrap();
        let child = Command::new("java")
            .args(JAVA_OPTS)
            .args(["-cp", &self.classpath(conf), "FsShellBatch"])
            .arg(&file)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(timeout, child)
            .await
            .unwrap_or_else(|_| panic!("FsShell batch did not finish within {timeout:?}"))
            .expect("java runs");
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let results = parse_batch(&stdout, cmds);
        assert_eq!(
            results.len(),
            cmds.len(),
            "FsShellBatch ran {} of {} commands:\n{stdout}\n{}",
            results.len(),
            cmds.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        results
    }

    /// Runs `java CLASS ARGS...` (a class of `tests/hadoop/`) as `user`
    /// with the configuration in `conf`, within `timeout`; asserts it
    /// succeeded and returns its stdout.
    pub async fn run_class(
        &self,
        conf: &Path,
        user: &str,
        class: &str,
        args: &[&str],
        timeout: Duration,
    ) -> String {
        let child = Command::new("java")
            .args(JAVA_OPTS)
            .args(["-cp", &self.classpath(conf), class])
            .args(args)
            .env("HADOOP_USER_NAME", user)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(timeout, child)
            .await
            .unwrap_or_else(|_| panic!("{class} did not finish within {timeout:?}"))
            .expect("java runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{class} {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// [`fs_shell_within`](Self::fs_shell_within) with 5 minutes.
    pub async fn fs_shell(&self, conf: &Path, cmds: &[ShellCmd]) -> Vec<ShellOut> {
        self.fs_shell_within(conf, cmds, Duration::from_secs(300))
            .await
    }

    /// Runs a PySpark `script ARGS...` from the venv with Hadoop's
    /// configuration in `conf` (on the driver's classpath, with the runtime
    /// delegate), for Spark's `local[N]` mode; at most `timeout`.
    pub async fn pyspark(
        &self,
        conf: &Path,
        script: &Path,
        args: &[&str],
        timeout: Duration,
    ) -> Output {
        let submit = format!(
            "--driver-class-path {}:{} --driver-java-options '{}' pyspark-shell",
            conf.display(),
            self.classes.display(),
            JAVA_OPTS[0]
        );
        let child = Command::new(&self.python)
            .arg(script)
            .args(args)
            .env("HADOOP_CONF_DIR", conf)
            .env("PYSPARK_SUBMIT_ARGS", submit)
            .env("PYSPARK_PYTHON", &self.python)
            .env("SPARK_LOCAL_IP", "127.0.0.1")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(timeout, child)
            .await
            .unwrap_or_else(|_| panic!("PySpark did not finish within {timeout:?}"))
            .expect("python runs")
    }
}

/// Splits FsShellBatch's output into one result per command.
fn parse_batch(stdout: &str, cmds: &[ShellCmd]) -> Vec<ShellOut> {
    let mut out = Vec::new();
    for part in stdout.split("\u{1}tdfs-fsshell ").skip(1) {
        let (head, rest) = part.split_once('\n').unwrap_or((part, ""));
        let code = head
            .rsplit_once("exit=")
            .and_then(|(_, c)| c.trim().parse().ok())
            .unwrap_or(i32::MIN);
        let (so, rest) = rest.split_once("\n\u{1}stderr\n").unwrap_or((rest, ""));
        let se = rest.split_once("\n\u{1}end\n").map_or(rest, |(e, _)| e);
        let i = out.len();
        out.push(ShellOut {
            args: cmds.get(i).map(|c| c.args.clone()).unwrap_or_default(),
            code,
            stdout: so.to_string(),
            stderr: se.to_string(),
        });
    }
    out
}
