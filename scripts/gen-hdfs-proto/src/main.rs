//! Writes prost code for the vendored Hadoop protocol files into
//! `crates/hdfs-rpc/src/generated/` (one file per protobuf package).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("crates/hdfs-rpc"));
    let proto = root.join("proto");
    let out = root.join("src/generated");
    std::fs::create_dir_all(&out)?;
    let files = [
        "common/RpcHeader.proto",
        "common/IpcConnectionContext.proto",
        "common/ProtobufRpcEngine2.proto",
        "common/Security.proto",
        "hdfs/ClientNamenodeProtocol.proto",
        "hdfs/datatransfer.proto",
    ];
    let files: Vec<PathBuf> = files.iter().map(|f| proto.join(f)).collect();
    prost_build::Config::new()
        .out_dir(&out)
        .compile_protos(&files, &[proto.join("common"), proto.join("hdfs")])
}
