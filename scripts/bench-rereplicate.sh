#!/usr/bin/env bash
# Re-replication after a datanode is killed, over real processes:
# 3 `tdfs meta` + 4 `tdfs datanode`, a file of BYTES at replication 3,
# kill -9 of one datanode, then the time until fsck is HEALTHY again
# (grace period set to 2 s), and the copy throughput.
#   usage: scripts/bench-rereplicate.sh [BYTES]     (needs target/release/tdfs)
set -euo pipefail
bytes=${1:-1073741824}
bin=${TDFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tdfs}
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
base=$((20000 + RANDOM % 20000))
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
meta="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for i in 1 2 3; do
  "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --data-dir "$dir/m$i" --peers "$peers" \
    --dead-after-ms 2000 --balance-threshold 0 2>"$dir/m$i.log" &
done
pids=()
for i in 1 2 3 4; do
  "$bin" datanode --addr 127.0.0.1:$((base+10+i)) --data-dir "$dir/d$i" --meta "$meta" 2>"$dir/d$i.log" &
  pids+=($!)
done
export TDFS_META=$meta
for _ in $(seq 200); do
  n=$("$bin" dfsadmin -report --json 2>/dev/null | python3 -c 'import json,sys; print(sum(d["state"]=="live" for d in json.load(sys.stdin)["datanodes"]))' 2>/dev/null || echo 0)
  [ "$n" = 4 ] && break; sleep 0.1
done
head -c "$bytes" /dev/urandom > "$dir/src"
"$bin" dfs -put "$dir/src" /data
# Peak resident memory of each datanode after storing the file (it must not
# grow with the size of the files a datanode stores or streams).
for p in "${pids[@]}"; do grep VmHWM /proc/$p/status | awk -v p=$p '{print "datanode pid " p " peak RSS " $2 " kB"}'; done
for _ in $(seq 300); do "$bin" fsck / --json >/dev/null 2>&1 && break; sleep 0.1; done
victim_addr=127.0.0.1:$((base+11))
before=$("$bin" dfsadmin -report --json | python3 -c 'import json,sys; print([d["used"] for d in json.load(sys.stdin)["datanodes"] if d["addr"]==sys.argv[1]][0])' "$victim_addr")
victim=${pids[0]}
t0=$(date +%s.%N)
kill -9 "$victim"
# Wait for the node to be declared dead, then for health.
until "$bin" dfsadmin -report --json | python3 -c 'import json,sys; sys.exit(0 if any(d["state"]=="dead" for d in json.load(sys.stdin)["datanodes"]) else 1)'; do sleep 0.05; done
t1=$(date +%s.%N)
until "$bin" fsck / --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["under_replicated"]==0 and d["missing"]==0 else 1)'; do sleep 0.1; done
t2=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$before" "$bytes" <<'PY'
import json, sys
t0, t1, t2, moved, size = map(float, sys.argv[1:])
print(json.dumps({"file_bytes": int(size), "bytes_rereplicated": int(moved),
                  "kill_to_dead_s": round(t1 - t0, 2), "dead_to_healthy_s": round(t2 - t1, 2),
                  "kill_to_healthy_s": round(t2 - t0, 2),
                  "rereplication_mb_s": round(moved / 1e6 / (t2 - t1), 1)}))
PY
"$bin" fsck / --json
