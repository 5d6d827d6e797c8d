#!/usr/bin/env bash
# The metadata benchmark with its anchors, all in one run:
#   1. this disk's fdatasync latency (4 KiB write + os.fdatasync, 300 times, python3);
#   2. a three-member etcd on loopback, `etcdctl check perf --load=l` (writes/s);
#   3. three `tdfs meta` processes on loopback (fsync on): `tdfs bench meta` for
#      every op at concurrency 64, one JSON line each;
# then a summary with mkdir / etcd.
#   usage: scripts/bench-meta.sh [OPS]      (needs target/release/tdfs: cargo build --release;
#                                           etcd and etcdctl: apt-get install etcd-server etcd-client)
# TDFS_BENCH_SKIP_ETCD=1 skips step 2; TDFS_BENCH_OPS="mkdir stat" picks the ops; TDFS_BENCH_KEEP=1
# keeps the run's directory (the nodes' logs);
# TDFS_BENCH_PERF=DIR records the leader with `perf record -g` during each op (DIR/OP.data);
# TDFS_BENCH_PERF_FREQ (999) and TDFS_BENCH_PERF_CALLGRAPH ("-g"; "--call-graph dwarf,16384") tune it,
# TDFS_BENCH_PERF_WHO=follower records a follower instead.
# Each op's line is followed by the CPU time per operation of the leader, the two followers
# and the benchmark client (from /proc/PID/stat and the shell's `times`), and the context
# switches per operation of each metadata node's threads.
set -euo pipefail
ops=${1:-100000}
bin=${TDFS_BIN:-$(dirname "$0")/../target/release/tdfs}
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-meta.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; if [ -n "${TDFS_BENCH_KEEP:-}" ]; then echo "kept $dir"; else rm -rf "$dir"; fi' EXIT
out="$dir/results.jsonl"
: >"$out"

# 1. fdatasync latency of the disk the nodes write to.
python3 "$(dirname "$0")/fdatasync-probe.py" "$dir" >>"$out"
tail -1 "$out"

base=$((20000 + RANDOM % 20000))

# 2. etcd, three members on loopback, stopped before tdfs starts.
if [ -z "${TDFS_BENCH_SKIP_ETCD:-}" ]; then
  command -v etcd >/dev/null || { echo "etcd missing: apt-get install -y etcd-server etcd-client" >&2; exit 1; }
  cluster="e1=http://127.0.0.1:$((base+11)),e2=http://127.0.0.1:$((base+12)),e3=http://127.0.0.1:$((base+13))"
  pids=()
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$dir/etcd$i" \
      --listen-client-urls "http://127.0.0.1:$((base+20+i))" \
      --advertise-client-urls "http://127.0.0.1:$((base+20+i))" \
      --listen-peer-urls "http://127.0.0.1:$((base+10+i))" \
      --initial-advertise-peer-urls "http://127.0.0.1:$((base+10+i))" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token "bench-$base" 2>"$dir/etcd$i.log" &
    pids+=($!)
  done
  endpoints="127.0.0.1:$((base+21)),127.0.0.1:$((base+22)),127.0.0.1:$((base+23))"
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints="$endpoints" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
  done
  perf=$(ETCDCTL_API=3 etcdctl --endpoints="$endpoints" check perf --load=l 2>&1 | tr '\r' '\n' | grep -v ' / 60 ' || true)
  echo "$perf" >"$dir/etcd-perf.txt"
  # "PASS: Throughput is N writes/s" or "FAIL: Throughput too low: N writes/s".
  writes=$(echo "$perf" | grep -oE 'Throughput[^0-9]*[0-9.]+ writes/s' | grep -oE '[0-9.]+' | head -1)
  [ -n "$writes" ] || { echo "etcdctl check perf gave no throughput:" >&2; echo "$perf" >&2; exit 1; }
  echo "{\"anchor\": \"etcd\", \"members\": 3, \"writes_per_sec\": $writes}" >>"$out"
  tail -1 "$out"
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
  # etcd's data and the page cache it dirtied are written back now, not during tdfs's first op.
  rm -rf "$dir"/etcd1 "$dir"/etcd2 "$dir"/etcd3
  sync
fi

# 3. tdfs: three metadata processes, fsync on.
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
declare -A meta_pid
for i in 1 2 3; do
  "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --data-dir "$dir/m$i" --peers "$peers" \
    2>"$dir/m$i.log" &
  meta_pid[127.0.0.1:$((base+i-1))]=$!
done
export TDFS_META="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for _ in $(seq 100); do "$bin" dfs -test -d / 2>/dev/null && break; sleep 0.1; done
# CPU seconds (user + system) a process has used so far.
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
# CPU seconds the shell's finished children (the benchmark clients) have used so far.
# (`times` runs in this shell, not in a command substitution's subshell.)
children_cpu() { times >"$dir/times"; tail -1 "$dir/times" | awk '{gsub(/[ms]/, " "); printf "%.3f", $1*60+$2+$3*60+$4}'; }
# Context switches so far of a process's live threads.
switches_of() { cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'; }
for op in ${TDFS_BENCH_OPS:-mkdir create open stat ls rename delete}; do
  case $op in
    stat|open) n=$((ops * 2)) ;;
    mkdir) n=$ops ;;
    *) n=$((ops / 2)) ;;
  esac
  leader=$("$bin" haadmin -getAllServiceState | awk '$2 == "leader" {print $1}')
  perf_pid=
  if [ -n "${TDFS_BENCH_PERF:-}" ]; then
    mkdir -p "$TDFS_BENCH_PERF"
    who=$leader
    if [ "${TDFS_BENCH_PERF_WHO:-leader}" = follower ]; then
      for a in "${!meta_pid[@]}"; do [ "$a" != "$leader" ] && who=$a; done
    fi
    perf record -F ${TDFS_BENCH_PERF_FREQ:-999} ${TDFS_BENCH_PERF_CALLGRAPH:--g} -p "${meta_pid[$who]}" -o "$TDFS_BENCH_PERF/$op.data" \
      2>"$TDFS_BENCH_PERF/$op.perf.log" &
    perf_pid=$!
  fi
  declare -A cpu0
  declare -A sw0
  for a in "${!meta_pid[@]}"; do
    cpu0[$a]=$(cpu_of "${meta_pid[$a]}")
    sw0[$a]=$(switches_of "${meta_pid[$a]}")
  done
  children_cpu >"$dir/client0"
  "$bin" bench meta --op "$op" --ops "$n" --concurrency 64 --json >>"$out"
  tail -1 "$out"
  # The timed phase and its preparation both count: CPU per timed op is an upper bound.
  line="cpu per $op op (µs, preparation included):"
  for a in "${!meta_pid[@]}"; do
    role=follower; [ "$a" = "$leader" ] && role=leader
    line+=" $role $(echo "$(cpu_of "${meta_pid[$a]}") ${cpu0[$a]} $n" | awk '{printf "%.1f", ($1-$2)*1e6/$3}')"
  done
  children_cpu >"$dir/client1"
  line+=" client $(echo "$(cat "$dir/client1") $(cat "$dir/client0") $n" | awk '{printf "%.1f", ($1-$2)*1e6/$3}')"
  echo "$line"
  line="context switches per $op op:"
  for a in "${!meta_pid[@]}"; do
    role=follower; [ "$a" = "$leader" ] && role=leader
    line+=" $role $(echo "$(switches_of "${meta_pid[$a]}") ${sw0[$a]} $n" | awk '{printf "%.2f", ($1-$2)/$3}')"
  done
  echo "$line"
  if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
done

# Summary.
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
anchor = {r["anchor"]: r for r in rows if "anchor" in r}
ops = {r["op"]: r for r in rows if "op" in r}
if "fdatasync" in anchor:
    f = anchor["fdatasync"]
    print(f"fdatasync 4 KiB: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms")
etcd = anchor.get("etcd", {}).get("writes_per_sec")
if etcd:
    print(f"etcd (3 members, check perf --load=l): {etcd:.0f} writes/s")
for name, r in ops.items():
    ratio = f", {r['ops_per_sec'] / etcd:.1f}x etcd" if etcd and name != "stat" and name != "open" and name != "ls" else ""
    print(f"{name:7} {r['ops_per_sec']:>10,.0f} ops/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms"
          f"  leader RSS {r['leader_rss_bytes'] / 2**20:.0f} MiB{ratio}")
EOF
