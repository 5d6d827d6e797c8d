#!/usr/bin/env bash
# WebHDFS throughput beside the native client, in the same run:
# 3 `tdfs meta` (with --http) + 4 `tdfs datanode` (with --http), replication 3.
# Times `tdfs dfs -put/-get` of a BYTES file, then the same bytes through
# WebHDFS with curl: CREATE (307 to a datanode, chunked upload) and OPEN
# (307 to a datanode holding the first block), and prints MB/s for each.
#   usage: scripts/bench-webhdfs.sh [BYTES]     (needs target/release/tdfs)
set -euo pipefail
bytes=${1:-1073741824}
bin=${TDFS_BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/tdfs}
dir=$(mktemp -d)
trap 'kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
base=$((20000 + RANDOM % 20000))
peers="1=127.0.0.1:$base,2=127.0.0.1:$((base+1)),3=127.0.0.1:$((base+2))"
meta="127.0.0.1:$base,127.0.0.1:$((base+1)),127.0.0.1:$((base+2))"
for i in 1 2 3; do
  "$bin" meta --id $i --addr 127.0.0.1:$((base+i-1)) --http 127.0.0.1:$((base+100+i)) \
    --data-dir "$dir/m$i" --peers "$peers" --superuser "$(id -un)" 2>"$dir/m$i.log" &
done
for i in 1 2 3 4; do
  "$bin" datanode --addr 127.0.0.1:$((base+10+i)) --http 127.0.0.1:$((base+110+i)) \
    --data-dir "$dir/d$i" --meta "$meta" 2>"$dir/d$i.log" &
done
export TDFS_META=$meta
for _ in $(seq 200); do
  n=$("$bin" dfsadmin -report --json 2>/dev/null | python3 -c 'import json,sys; print(sum(d["state"]=="live" for d in json.load(sys.stdin)["datanodes"]))' 2>/dev/null || echo 0)
  [ "$n" = 4 ] && break; sleep 0.1
done
head -c "$bytes" /dev/urandom > "$dir/src"
want=$(sha256sum < "$dir/src" | cut -d' ' -f1)
now() { date +%s.%N; }
mbs() { python3 -c "import sys; print(round($bytes / 1e6 / ($2 - $1), 1))"; }
# The leader's HTTP address: any node answers, but ask the leader so the
# namespace step costs one hop, as a client that follows the leader would.
http=127.0.0.1:$((base+101))
user=$(id -un)

t0=$(now); "$bin" dfs -put "$dir/src" /native; t1=$(now)
"$bin" dfs -get /native "$dir/native.out"; t2=$(now)
[ "$(sha256sum < "$dir/native.out" | cut -d' ' -f1)" = "$want" ] || { echo "native copy differs"; exit 1; }
rm -f "$dir/native.out"

t3=$(now)
curl -sS -f -L -X PUT -T "$dir/src" -H 'Transfer-Encoding: chunked' \
  "http://$http/webhdfs/v1/web?op=CREATE&user.name=$user&overwrite=true" -o /dev/null
t4=$(now)
curl -sS -f -L "http://$http/webhdfs/v1/web?op=OPEN&user.name=$user" -o "$dir/web.out"
t5=$(now)
[ "$(sha256sum < "$dir/web.out" | cut -d' ' -f1)" = "$want" ] || { echo "WebHDFS copy differs"; exit 1; }
python3 - <<PY
import json
print(json.dumps({"bytes": $bytes,
  "native_put_mb_s": $(mbs $t0 $t1), "native_get_mb_s": $(mbs $t1 $t2),
  "webhdfs_create_mb_s": $(mbs $t3 $t4), "webhdfs_open_mb_s": $(mbs $t4 $t5)}))
PY
