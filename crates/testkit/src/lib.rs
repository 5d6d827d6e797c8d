//! The one test kit of tdfs: dev-only helpers shared by every crate's tests
//! (a dev-dependency only; nothing in a release build depends on it).
//!
//! - [`alloc`]: global allocators for memory figures and tests: counting
//!   (live and peak heap bytes) and watching (the largest single allocation).
//! - [`log`]: the two-level logging rule enforced. Every warning a tdfs
//!   crate logs names whose fault it is — `fault = "peer"` (a node that sent
//!   garbage, timed out or died) or `fault = "local"` (this process: a bug, a
//!   full disk, a broken invariant). In tests, a local-fault warning, or a
//!   warning that names no fault, fails the test binary's cluster shutdown
//!   unless the test declared it expects it ([`log::allow_local`]).
//! - [`wait`]: waiting on conditions with deadlines (never sleep-and-hope).
//! - [`data`]: deterministic test bytes for a seed, digests, and the seed
//!   of a seeded test (from the environment on a replay, printed).
//! - [`disk`]: a small tmpfs disk mounted for a test (needs root).
//! - [`paths`]: the workspace root and its `target/tmp`.
//!
//! Behind cargo features, so that a crate needing only the above pulls in
//! no tdfs server crate (a crate's `[dev-dependencies]` name the features its
//! tests use):
//!
//! - feature `cluster`, module `cluster`: an in-process metadata cluster (`tdfs-meta-raft`
//!   nodes on loopback, every connection through a `FaultNet`, optionally on
//!   memory disks that can lose power), its clients and namespace helpers
//!   (meta-raft's tests).
//! - feature `datanodes`, module `datanodes`: in-process datanodes (block stores behind
//!   real transfer servers on loopback), block stores on memory disks
//!   (`datanodes::store`) and a fake metadata node (`datanodes::meta`)
//!   (datanode's tests).
//! - feature `procs` (the root package's end-to-end tests):
//!   - `procs`: `tdfs meta` processes (`procs::MetaProcs`: start, kill -9,
//!     restart, the agreed leader), `tdfs local` (`procs::spawn_local`),
//!     the `tdfs` shell (`procs::run_tdfs`), the `tdfs` binary
//!     (`procs::tdfs_bin`), free ports, pip venvs, the async wait;
//!   - `files`: an in-process `tdfs_local` cluster with fast timers and the
//!     logging check, and writing, reading and replica waits on it;
//!   - `ns`: the namespace-feature tests' block ids, stored replicas, and
//!     waits for truncate recovery and freed blocks;
//!   - `hadoop`: Apache Hadoop's own Java client (FsShell, Spark) from the
//!     `pyspark` wheel;
//!   - `hdfs_native`, `webhdfs_py`: the Python HDFS and WebHDFS clients.
//! - feature `dtp`, module `dtp_raw`: a raw DataTransferProtocol peer that sends what no
//!   well-behaved client sends.

pub mod alloc;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod data;
#[cfg(feature = "datanodes")]
pub mod datanodes;
pub mod disk;
#[cfg(feature = "dtp")]
pub mod dtp_raw;
#[cfg(feature = "procs")]
pub mod files;
#[cfg(feature = "procs")]
pub mod hadoop;
#[cfg(feature = "procs")]
pub mod hdfs_native;
pub mod log;
#[cfg(feature = "procs")]
pub mod ns;
pub mod paths;
#[cfg(feature = "procs")]
pub mod procs;
pub mod wait;
#[cfg(feature = "procs")]
pub mod webhdfs_py;
