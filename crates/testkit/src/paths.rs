//! Where things are for code that is not itself an integration test (so
//! sees neither `CARGO_TARGET_TMPDIR` nor the root package's files through
//! its own `CARGO_MANIFEST_DIR`).

use std::path::{Path, PathBuf};

/// The workspace's root directory (this crate is `crates/testkit` in it).
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/testkit lies two levels below the workspace root")
}

/// `target/tmp` of the workspace, created if missing: the directory cargo
/// hands integration tests as `CARGO_TARGET_TMPDIR` (with the default target
/// directory), where tests keep what outlives one run (venvs, compiled Java
/// classes).
pub fn target_tmp() -> PathBuf {
    let dir = workspace_root().join("target/tmp");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}
