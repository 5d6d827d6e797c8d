#!/usr/bin/env bash
# Balancer convergence over real processes: 3 `tdfs meta` + 3 `tdfs datanode`
# of 2 GiB capacity, BYTES written at replication 3, then a fourth, empty
# datanode and `tdfs balancer -threshold 10`; prints the time it takes and
# each node's utilization before and after.
#   usage: scripts/bench-balancer.sh [BYTES]     (needs target/release/tdfs)
set -euo pipefail
bytes=${1:-536870912}
bin=${TDFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tdfs}
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
base=$((20000 + RANDOM % 20000))
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
meta="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for i in 1 2 3; do
  "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --data-dir "$dir/m$i" --peers "$peers" \
    --balance-threshold 0 2>"$dir/m$i.log" &
done
dn() { "$bin" datanode --addr 127.0.0.1:$((base+10+$1)) --data-dir "$dir/d$1" --meta "$meta" --capacity 2g 2>"$dir/d$1.log" & }
for i in 1 2 3; do dn $i; done
export TDFS_META=$meta
live() { "$bin" dfsadmin -report --json 2>/dev/null | python3 -c 'import json,sys; print(sum(d["state"]=="live" for d in json.load(sys.stdin)["datanodes"]))' 2>/dev/null || echo 0; }
for _ in $(seq 200); do [ "$(live)" = 3 ] && break; sleep 0.1; done
head -c "$bytes" /dev/urandom > "$dir/src"
"$bin" dfs -put "$dir/src" /data
dn 4
for _ in $(seq 200); do [ "$(live)" = 4 ] && break; sleep 0.1; done
sleep 1.5   # usage reaches the leader with the next heartbeats
util() { "$bin" dfsadmin -report --json | python3 -c 'import json,sys; print(" ".join("%.1f%%" % (100*d["used"]/d["capacity"]) for d in json.load(sys.stdin)["datanodes"]))'; }
echo "before: $(util)"
t0=$(date +%s.%N)
"$bin" balancer -threshold 10
t1=$(date +%s.%N)
sleep 1.5
echo "after:  $(util)"
python3 -c "print('balancer converged in %.1f s' % ($t1 - $t0))"
"$bin" fsck / --json
