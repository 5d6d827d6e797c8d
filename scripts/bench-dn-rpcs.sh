#!/usr/bin/env bash
# Calls from datanodes to metadata nodes per datanode per minute, idle and while writing.
# Starts `tdfs local` (3 metadata nodes, 4 datanodes), reads every metadata node's
# tdfs_meta_datanode_requests_total before and after a window.
#   usage: scripts/bench-dn-rpcs.sh [SECONDS]   (needs target/release/tdfs or TDFS_BIN)
set -euo pipefail
secs=${1:-60}
bin=${TDFS_BIN:-$(dirname "$0")/../target/release/tdfs}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
"$bin" local --data-dir "$dir" --datanodes 4 >"$dir/out" 2>"$dir/log" &
for _ in $(seq 300); do grep -q ready "$dir/out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$dir/out" || { echo "cluster did not start"; cat "$dir/log"; exit 1; }
https=$(python3 -c "import json,sys; print(' '.join(m['http'] for m in json.load(open(sys.argv[1]))['meta']))" "$dir/cluster.json")
count() { # kind (or total) summed over every metadata node
  for h in $https; do curl -s "http://$h/metrics"; done |
    awk -v k="$1" '$1 ~ /^tdfs_meta_datanode_requests_total/ && (k == "total" || index($1, "op=\"" k "\"")) {s += $2} END {print s + 0}'
}
sleep 5 # let registration and the first full reports finish
for phase in idle writing; do
  declare -A before
  for k in register full_report incremental_report poll total; do before[$k]=$(count "$k"); done
  if [ $phase = writing ]; then
    ( end=$((SECONDS + secs)); i=0
      while [ $SECONDS -lt $end ]; do
        head -c 1048576 /dev/urandom | "$bin" dfs --cluster "$dir/cluster.json" -put - /f$i >/dev/null 2>&1; i=$((i + 1))
      done; echo "$i files of 1 MiB written" >&2 ) &
    wait $!
  else
    sleep "$secs"
  fi
  line="$phase ($secs s):"
  for k in register full_report incremental_report poll total; do
    n=$(( $(count "$k") - ${before[$k]} ))
    per=$(python3 -c "print(round($n / 4 * 60 / $secs, 1))")
    line="$line $k=$per"
  done
  echo "$line  (per datanode per minute)"
done
