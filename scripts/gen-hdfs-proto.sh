#!/bin/sh
# Regenerates crates/hdfs-rpc/src/generated/ from crates/hdfs-rpc/proto/.
# Needs protoc (Debian: apt-get install protobuf-compiler).
set -e
cd "$(dirname "$0")/.."
cargo run -q --manifest-path scripts/gen-hdfs-proto/Cargo.toml \
  --target-dir target/gen-hdfs-proto -- crates/hdfs-rpc
echo "generated:"; ls crates/hdfs-rpc/src/generated/
