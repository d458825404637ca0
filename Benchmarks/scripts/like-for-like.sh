#!/usr/bin/env bash
# BENCHMARKS.md's "A like-for-like ceiling": the Ferry server, the raw NIO server doing the
# workload's protobuf work (nio-protobuf) and the raw NIO echo (nio) side by side; their clients
# take turns, REPEAT rounds of DURATION seconds at c=100 over 4 connections. Prints QPS, p99 and
# the server's CPU per call (utime + stime from /proc/PID/stat over each client's run, warm-up
# included, divided by the calls of that run).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-6}
WARMUP=${WARMUP:-1}
REPEAT=${REPEAT:-3}
(cd "$here" && swift build -c release --product ferry-bench >/dev/null)
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"
tick=$(getconf CLK_TCK)
systems=(ferry nio-protobuf nio)
declare -A pid port
next=9710
for system in "${systems[@]}"; do
    "$bin" server --system "$system" --port "$next" >/dev/null 2>&1 &
    pid[$system]=$!
    port[$system]=$next
    next=$((next + 1))
done
trap 'kill "${pid[@]}" 2>/dev/null || true' EXIT
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "| round | system | QPS | p99 (µs) | server CPU µs per call |"
echo "|---:|---|---:|---:|---:|"
for round in $(seq 1 "$REPEAT"); do
    for system in "${systems[@]}"; do
        before=$(cpu "${pid[$system]}")
        report=$("$bin" client --system "$system" --port "${port[$system]}" --concurrency 100 --connections 4 \
            --duration "$DURATION" --warmup "$WARMUP" --json)
        after=$(cpu "${pid[$system]}")
        python3 - "$report" "$before" "$after" "$tick" "$DURATION" "$WARMUP" "$round" "$system" <<'PY'
import json, sys
report = json.loads(sys.argv[1])
before, after, tick, duration, warmup = map(float, sys.argv[2:7])
calls = report["qps"] * (duration + warmup)
print(f"| {sys.argv[7]} | {sys.argv[8]} | {report['qps']:,.0f} | {report['latency_us']['p99']:,.0f} | "
      f"{(after - before) / tick / calls * 1e6:.1f} |")
PY
    done
done
