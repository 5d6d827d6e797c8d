//! The Python WebHDFS clients (HdfsCLI `hdfs`, `fsspec`'s webhdfs), installed
//! once into a venv under `target/tmp` (`CARGO_TARGET_TMPDIR`); used by
//! t80 and t83, whichever runs first installs it.
#![allow(dead_code)]

use std::path::PathBuf;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// A venv with the Python WebHDFS clients, installed once per test run.
pub async fn python() -> &'static PathBuf {
    static VENV: OnceCell<PathBuf> = OnceCell::const_new();
    VENV.get_or_init(|| async {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("webhdfs-venv");
        let py = venv.join("bin/python");
        let ready = venv.join(".installed");
        if !ready.exists() {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .await
                .expect("python3 runs");
            assert!(ok.success(), "python3 -m venv failed");
            let out = Command::new(&py)
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(["hdfs==2.7.3", "fsspec==2026.9.0", "requests"])
                .output()
                .await
                .expect("pip runs");
            assert!(
                out.status.success(),
                "pip install failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&ready, b"ok").unwrap();
        }
        py
    })
    .await
}
