#!/usr/bin/env bash
# FerryClient measurements (issue 5), written to results/ferry-client-<time>/:
#
# 1. Overhead: one `ferry` server; clients `ferry` (4 dialled sessions) and `ferry-client`
#    (FerryClient, static registry with that one node, poolSize 4, default balancer) alternate,
#    REPEAT rounds of DURATION s each after WARMUP s, concurrency 100.
# 2. Backup requests: two `ferry` servers, one delaying SLOW_FRACTION of its replies by
#    SLOW_DELAY_MS; a round-robin FerryClient over both at concurrency 10, without backup requests
#    and with --backup-delay-ms BACKUP_MS.
#
#   Benchmarks/scripts/ferry-client.sh       # DURATION=8 WARMUP=2 REPEAT=3 by default
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-3}
SLOW_FRACTION=${SLOW_FRACTION:-0.05}
SLOW_DELAY_MS=${SLOW_DELAY_MS:-50}
BACKUP_MS=${BACKUP_MS:-10}
results="$here/results/ferry-client-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"

(cd "$here" && swift build -c release --product ferry-bench)
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT
start_server() {  # port, extra flags…
    local port=$1; shift
    "$bin" server --system ferry --port "$port" "$@" >"$results/server-$port.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do grep -q listening "$results/server-$port.log" && return; sleep 0.1; done
    echo "server on $port did not start" >&2; exit 1
}

echo "== overhead (load: $(cut -d' ' -f1-3 /proc/loadavg))"
start_server 9301
# FerryClient's callers run on the cooperative pool (its calls go to whichever pooled session the
# balancer picks), so the dialled sessions' callers do too: the same placement on both sides.
for round in $(seq "$REPEAT"); do
    for system in ferry ferry-client; do
        "$bin" client --system "$system" --port 9301 --concurrency 100 --connections 4 --callers pool \
            --duration "$DURATION" --warmup "$WARMUP" --json | tee "$results/overhead-$system-$round.json"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$results/overhead-load.txt"
cleanup; pids=()

echo "== backup requests (load: $(cut -d' ' -f1-3 /proc/loadavg))"
start_server 9302
start_server 9303 --slow-fraction "$SLOW_FRACTION" --slow-delay-ms "$SLOW_DELAY_MS"
common=(--system ferry-client --ports 9302,9303 --balancer round-robin --concurrency 10 --connections 1
    --duration "$DURATION" --warmup "$WARMUP" --json)
"$bin" client "${common[@]}" | tee "$results/backup-off.json"
"$bin" client "${common[@]}" --backup-delay-ms "$BACKUP_MS" | tee "$results/backup-$BACKUP_MS.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$results/backup-load.txt"
echo "results in $results"
