//! The `tdfs` binary; everything lives in the `tdfs-cli` crate.

// glibc's malloc keeps freed memory in its per-thread arenas (a leader's RSS
// after a burst of writes stays at several times its live heap) and zeroes
// fresh pages as arenas grow and shrink again; mimalloc returns memory and
// reuses it per thread. docs/benchmarks.md has the figures.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tdfs_cli::main()
}
