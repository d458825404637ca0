#!/usr/bin/env bash
# BENCHMARKS.md's "Thread budget": the raw NIO ceiling with 1 and with 2 event-loop threads in
# each process (server and client alike), taking turns, REPEAT rounds of DURATION seconds at
# c=100 over 4 connections. The issue's budget is at most 2 per process, chosen so that the
# ceiling is as high as it can be on this machine; this shows which count that is.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
(cd "$here" && swift build -c release --product ferry-bench >/dev/null 2>&1)
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true' EXIT
echo "| round | threads per process | QPS | p99 (µs) |"
echo "|---:|---:|---:|---:|"
for round in $(seq 1 "$REPEAT"); do
    for threads in 1 2; do
        port=$((9720 + threads))
        log=$(mktemp)
        "$bin" server --system nio --port "$port" --threads "$threads" >"$log" 2>&1 &
        server=$!
        for _ in $(seq 1 100); do grep -q '^listening' "$log" && break; sleep 0.1; done
        report=$("$bin" client --system nio --port "$port" --threads "$threads" --concurrency 100 --connections 4 \
            --duration "$DURATION" --warmup "$WARMUP" --json)
        kill "$server"
        wait "$server" 2>/dev/null || true
        server=""
        rm -f "$log"
        python3 - "$report" "$round" "$threads" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
print(f"| {sys.argv[2]} | {sys.argv[3]} | {report['qps']:,.0f} | {report['latency_us']['p99']:,.0f} |")
PY
    done
done
