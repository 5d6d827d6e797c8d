//! HDFS's own wire protocols, so that unmodified Hadoop clients (the Java
//! `DistributedFileSystem` behind `hdfs dfs` and Spark, `hdfs-native`)
//! reach tdfs over `hdfs://`:
//!
//! - [`ipc`]: Hadoop IPC framing (the `hrpc` preamble, the connection
//!   context, length-prefixed calls of varint-delimited protobufs), sans-IO;
//! - [`server`]: a bounded Hadoop IPC server over any [`server::IpcHandler`];
//! - `namenode` (feature `namenode`): `ClientNamenodeProtocol` served by a
//!   tdfs metadata node, every call mapped to a `MetaRequest` and executed
//!   on the same path as tdfs's own protocol;
//! - [`dtp`]: the DataTransferProtocol codec (ops, responses, packets, acks);
//! - [`datanode`]: DataTransferProtocol served by a datanode over any
//!   [`datanode::BlockAccess`] (its block store);
//! - [`token`]: tdfs block tokens carried in Hadoop's `TokenProto`.
//!
//! The protobuf types are generated from Hadoop's `.proto` files (vendored
//! under `proto/`) by `scripts/gen-hdfs-proto.sh` and checked in, so a build
//! needs `prost` only.

pub mod datanode;
pub mod dtp;
pub mod ipc;
#[cfg(feature = "namenode")]
pub mod namenode;
pub mod server;
pub mod token;

/// Generated protobuf types (`prost`), one module per protobuf package.
pub mod proto {
    /// `hadoop.common`: RPC headers, the connection context, tokens.
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod common {
        include!("generated/hadoop.common.rs");
    }
    /// `hadoop.hdfs`: ClientNamenodeProtocol, DataTransferProtocol, types.
    #[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
    pub mod hdfs {
        include!("generated/hadoop.hdfs.rs");
    }
}
