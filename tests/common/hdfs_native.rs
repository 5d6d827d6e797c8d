//! The `hdfs-native` Python package (a Rust HDFS client with Python
//! bindings), installed once into a venv under `target/tmp`
//! (`CARGO_TARGET_TMPDIR`). Hadoop's Java client is in `hadoop.rs`.
#![allow(dead_code)]

use std::path::PathBuf;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// The Python of a venv holding `hdfs-native`.
pub async fn python() -> &'static PathBuf {
    static PY: OnceCell<PathBuf> = OnceCell::const_new();
    PY.get_or_init(|| async {
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hdfs-venv");
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
                .arg("hdfs-native==0.14.7")
                .output()
                .await
                .expect("pip runs");
            assert!(
                out.status.success(),
                "pip install hdfs-native failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::write(&ready, b"ok").unwrap();
        }
        venv.join("bin/python")
    })
    .await
}
