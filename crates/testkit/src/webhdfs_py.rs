//! The Python WebHDFS clients (HdfsCLI `hdfs`, `fsspec`'s webhdfs), installed
//! once into a venv under `target/tmp` ([`crate::paths::target_tmp`]); used
//! by t80 and t83, whichever runs first installs it.

use std::path::PathBuf;
use tokio::sync::OnceCell;

/// A venv with the Python WebHDFS clients, installed once per test run.
pub async fn python() -> &'static PathBuf {
    static VENV: OnceCell<PathBuf> = OnceCell::const_new();
    VENV.get_or_init(|| {
        crate::procs::pip_venv(
            "webhdfs-venv",
            &["hdfs==2.7.3", "fsspec==2026.9.0", "requests"],
        )
    })
    .await
}
