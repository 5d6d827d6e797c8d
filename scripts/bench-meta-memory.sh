#!/usr/bin/env bash
# Leader resident memory per empty file: three `tdfs meta` processes on loopback
# (fsync on), `tdfs bench meta --op create --keep` in STEPS steps of OPS files;
# prints the leader's RSS before and after each step and bytes per file.
# TDFS_BENCH_RATES="mkdir create stat" also measures those ops (TDFS_BENCH_RATE_OPS each,
# default 100000, concurrency 64, not kept) on the empty namespace and after the last step,
# with the disk's fdatasync latency beside them, TDFS_BENCH_RATE_ROUNDS times (default 1).
# TDFS_BENCH_RESTART=1 then measures each node's CPU while idle (30 s), kills all three
# with SIGKILL, restarts them and times them until they serve a linearizable read.
#   usage: scripts/bench-meta-memory.sh [OPS] [STEPS]   (default 200000 x 5 = 1M files)
set -euo pipefail
ops=${1:-200000}
steps=${2:-5}
bin=${TDFS_BIN:-$(dirname "$0")/../target/release/tdfs}
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-mem.XXXXXX")
# TDFS_BENCH_KEEP=1 keeps the run's directory (the nodes' logs), without the data.
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null
  if [ -n "${TDFS_BENCH_KEEP:-}" ]; then rm -rf "$dir"/m?/raft "$dir"/m?/sm; echo "kept $dir"; else rm -rf "$dir"; fi' EXIT
base=$((20000 + RANDOM % 20000))
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
declare -A pids
start_nodes() {
  for i in 1 2 3; do
    "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --data-dir "$dir/m$i" --peers "$peers" \
      2>>"$dir/m$i.log" &
    pids[$i]=$!
  done
}
start_nodes
export TDFS_META="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for _ in $(seq 100); do "$bin" dfs -test -d / 2>/dev/null && break; sleep 0.1; done
fdatasync() {
  python3 "$(dirname "$0")/fdatasync-probe.py" "$dir"
}
# Each op of TDFS_BENCH_RATES once, on a namespace of $1 files.
rates() {
  [ -n "${TDFS_BENCH_RATES:-}" ] || return 0
  for _ in $(seq "${TDFS_BENCH_RATE_ROUNDS:-1}"); do
    fdatasync
    for op in $TDFS_BENCH_RATES; do
      "$bin" bench meta --op "$op" --ops "${TDFS_BENCH_RATE_OPS:-100000}" --concurrency 64 --json |
        python3 -c "import json, sys; r = json.load(sys.stdin); r['files'] = $1; print(json.dumps(r))"
    done
  done
}
# The empty namespace's figure: a 1-op run (kept, so it is one file more).
r0=$("$bin" bench meta --op create --ops 1 --concurrency 1 --keep --json)
echo "$r0"
rss0=$(echo "$r0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader_rss_bytes"])')
# rss0 is taken before these runs: their transient memory counts against the files.
rates 1
files=1
for s in $(seq "$steps"); do
  r=$("$bin" bench meta --op create --ops "$ops" --concurrency 64 --keep --files-per-dir 1000 --json)
  files=$((files + ops))
  echo "$r" | python3 -c "
import json, sys
r = json.load(sys.stdin); r['files'] = $files
r['bytes_per_file'] = round((r['leader_rss_bytes'] - $rss0) / ($files - 1), 1)
print(json.dumps(r))"
done
rates "$files"
# Idle CPU of each node, then a restart of all three after kill -9.
restart() {
  [ -n "${TDFS_BENCH_RESTART:-}" ] || return 0
  local leader tck window=30 t0 t1 i
  leader=$("$bin" haadmin -getAllServiceState --json |
    python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin) if n["role"]=="leader"][0])')
  tck=$(getconf CLK_TCK)
  cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
  rss() { echo $(($(awk '/VmRSS/{print $2}' "/proc/$1/status") * 1024)); }
  declare -A c0
  for i in 1 2 3; do c0[$i]=$(cpu "${pids[$i]}"); done
  sleep "$window"
  for i in 1 2 3; do
    echo "{\"node\": $i, \"leader\": $([ "$i" = "$leader" ] && echo true || echo false), \"files\": $files, \"idle_cpu_pct_of_a_core\": $(python3 -c "print(round(($(cpu "${pids[$i]}") - ${c0[$i]}) * 100 / $tck / $window, 2))"), \"rss_bytes\": $(rss "${pids[$i]}")}"
  done
  for i in 1 2 3; do kill -9 "${pids[$i]}"; done
  for i in 1 2 3; do wait "${pids[$i]}" 2>/dev/null || true; done
  t0=$(date +%s.%N)
  start_nodes
  until "$bin" dfs -test -d / 2>/dev/null; do sleep 0.1; done
  t1=$(date +%s.%N)
  "$bin" dfs -ls / >/dev/null
  echo "{\"files\": $files, \"restart_all_three_to_serving_s\": $(python3 -c "print(round($t1 - $t0, 2))"), \"rss_bytes_after\": [$(for i in 1 2 3; do printf '%s%d' "$([ "$i" = 1 ] || echo ,)" "$(rss "${pids[$i]}")"; done)]}"
}
restart
