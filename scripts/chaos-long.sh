#!/usr/bin/env bash
# The chaos suite's long profile: many seeds, each a fresh cluster of
# 3 `tdfs meta` + 5 `tdfs datanode` processes in network namespaces under
# a concurrent workload and a random schedule of faults, checked at the end
# (see docs/chaos.md). Needs root (network namespaces, tmpfs mounts).
#
#   scripts/chaos-long.sh [SEEDS] [FAULTS_PER_SEED]
#
# Environment: TDFS_CHAOS_SEED fixes the first seed (the others follow it),
# TDFS_CHAOS_RESULTS names the file that collects one table row per seed
# (default: target/chaos-results.md). Exits non-zero if any seed found a
# violation; each failing seed is printed with the command that replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seeds="${1:-${TDFS_CHAOS_SEEDS:-10}}"
faults="${2:-${TDFS_CHAOS_FAULTS:-30}}"
results="${TDFS_CHAOS_RESULTS:-$PWD/target/chaos-results.md}"
mkdir -p "$(dirname "$results")"

if [ "$(id -u)" != 0 ]; then
    echo "chaos-long: must run as root (network namespaces, tmpfs)" >&2
    exit 2
fi

echo "chaos-long: $seeds seeds x $faults faults; rows appended to $results"
set +e
TDFS_CHAOS_PROFILE=long \
TDFS_CHAOS_SEEDS="$seeds" \
TDFS_CHAOS_FAULTS="$faults" \
TDFS_CHAOS_RESULTS="$results" \
    cargo test --test t60_chaos -- --nocapture 2>&1 | tee target/chaos-long.log |
    grep --line-buffered -E '^chaos: (seed|result|fault)|VIOLATION|panicked'
status="${PIPESTATUS[0]}"
set -e
echo "chaos-long: results in $results, full log in target/chaos-long.log"
exit "$status"
