#!/usr/bin/env bash
# The figures of BENCHMARKS.md's Profile section, at c=100 over 4 connections:
#   1. CPU per call of every system's server and client (cpu_per_call.py);
#   2. system calls per call of the raw NIO and Ferry servers and clients (perf stat on the
#      syscalls tracepoints);
#   3. where Ferry's server and client spend their time (perf record -g, cpu-clock sampling:
#      this VM has no hardware counters), as perf report text, and the server's samples by part
#      of the per-call path (perf_categories.py).
# Needs Debian's linux-perf. Output in Benchmarks/results/profile-<date>/.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/results/profile-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out"
(cd "$here" && swift build -c release --product ferry-bench >/dev/null)
(cd "$here/go-netrpc" && go build -o go-netrpc .)
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"

echo "== CPU per call"
python3 "$here/scripts/cpu_per_call.py" --duration 6 | tee "$out/cpu-per-call.md"

events='syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_read,syscalls:sys_enter_futex'
port=9501
for system in nio ferry; do
    echo "== system calls per call: $system"
    "$bin" server --system "$system" --port "$port" >"$out/server-$system.log" 2>&1 &
    server=$!
    sleep 1
    "$bin" client --system "$system" --port "$port" --concurrency 100 --connections 4 --duration 9 --warmup 1 --json \
        >"$out/client-$system.json" &
    client=$!
    sleep 3
    perf stat -e "$events" -p "$server" -o "$out/syscalls-$system-server.txt" -- sleep 4 &
    watcher=$!
    perf stat -e "$events" -p "$client" -o "$out/syscalls-$system-client.txt" -- sleep 4
    wait "$watcher" || true
    if [ "$system" = ferry ]; then
        # A second load for the sampling profile, so that perf stat does not overlap it.
        wait "$client"
        "$bin" client --system ferry --port "$port" --concurrency 100 --connections 4 --duration 12 --warmup 1 --json \
            >"$out/client-ferry-profiled.json" &
        client=$!
        sleep 3
        perf record -g -e cpu-clock -F 999 -p "$server" -o "$out/perf-server.data" -- sleep 8 >/dev/null 2>&1 &
        watcher=$!
        perf record -g -e cpu-clock -F 999 -p "$client" -o "$out/perf-client.data" -- sleep 8 >/dev/null 2>&1
        wait "$watcher" || true
    fi
    wait "$client"
    kill "$server"
    wait "$server" 2>/dev/null || true
    python3 - "$out" "$system" <<'PY'
import json, re, sys
out, system = sys.argv[1:]
report = json.load(open(f"{out}/client-{system}.json"))
calls = report["qps"] * 4  # perf stat watched 4 s of the measured phase
for side in ("server", "client"):
    counts = {}
    for line in open(f"{out}/syscalls-{system}-{side}.txt"):
        match = re.match(r"\s*([\d,]+)\s+syscalls:sys_enter_(\w+)", line)
        if match:
            counts[match.group(2)] = int(match.group(1).replace(",", ""))
    writes = counts.get("write", 0) + counts.get("writev", 0)
    print(f"| {system} {side} | {writes / calls:.2f} | {counts.get('read', 0) / calls:.2f} | {counts.get('futex', 0) / calls:.2f} |")
PY
    port=$((port + 1))
done | tee "$out/syscalls-per-call.md"
echo "(rows: process | write + writev | read | futex, per call)"

perf script -i "$out/perf-server.data" 2>/dev/null | swift demangle --simplified \
    | python3 "$here/scripts/perf_categories.py" | tee "$out/perf-server-parts.md"
echo "(rows: share of the Ferry server's samples | part of the per-call path)"

for side in server client; do
    perf report -i "$out/perf-$side.data" --children --sort symbol --stdio -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -150 >"$out/perf-$side-inclusive.txt" || true
    perf report -i "$out/perf-$side.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
        | grep -v '^#' | grep -v '^$' | head -60 >"$out/perf-$side-self.txt" || true
done
echo "profile in $out"
