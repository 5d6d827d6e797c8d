//! The `hdfs-native` Python package (a Rust HDFS client with Python
//! bindings), installed once into a venv under `target/tmp`
//! ([`crate::paths::target_tmp`]). Hadoop's Java client is in
//! [`crate::hadoop`].

use std::path::PathBuf;
use tokio::sync::OnceCell;

/// The Python of a venv holding `hdfs-native`.
pub async fn python() -> &'static PathBuf {
    static PY: OnceCell<PathBuf> = OnceCell::const_new();
    PY.get_or_init(|| crate::procs::pip_venv("hdfs-venv", &["hdfs-native==0.14.7"]))
        .await
}
