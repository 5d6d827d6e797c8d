//! The `hdfs-native` Python package (a Rust HDFS client with Python
//! bindings), installed once into a venv under `target/tmp`
//! (`CARGO_TARGET_TMPDIR`). Hadoop's Java client is in `hadoop.rs`.
#![allow(dead_code)]

use std::path::PathBuf;
use tokio::sync::OnceCell;

/// The Python of a venv holding `hdfs-native`.
pub async fn python() -> &'static PathBuf {
    static PY: OnceCell<PathBuf> = OnceCell::const_new();
    PY.get_or_init(|| crate::common::pip_venv("hdfs-venv", &["hdfs-native==0.14.7"]))
        .await
}
