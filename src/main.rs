//! The `tdfs` binary; everything lives in the `tdfs-cli` crate.

fn main() -> std::process::ExitCode {
    tdfs_cli::main()
}
