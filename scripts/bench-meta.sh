#!/usr/bin/env bash
# Starts three `tdfs meta` processes on loopback (fsync on), runs `tdfs bench meta`
# for mkdir and stat at concurrency 64, prints JSON lines, and stops the nodes.
#   usage: scripts/bench-meta.sh [OPS]        (needs target/release/tdfs: cargo build --release)
set -euo pipefail
ops=${1:-100000}
bin=${TDFS_BIN:-$(dirname "$0")/../target/release/tdfs}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
base=$((20000 + RANDOM % 20000))
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
for i in 1 2 3; do
  "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --data-dir "$dir/m$i" --peers "$peers" \
    2>"$dir/m$i.log" &
done
export TDFS_META="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for _ in $(seq 100); do "$bin" dfs -test -d / 2>/dev/null && break; sleep 0.1; done
"$bin" bench meta --op mkdir --ops "$ops" --concurrency 64 --json
"$bin" bench meta --op stat --ops "$((ops * 2))" --concurrency 64 --json
"$bin" bench meta --op create --ops "$((ops / 2))" --concurrency 64 --json
