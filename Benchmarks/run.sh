#!/usr/bin/env bash
# Builds everything in release mode and measures Ferry against its baselines on the shared
# workload (shared/bench/BENCH.md), then writes the results into ../BENCHMARKS.md and
# benchmarks-chart.svg.
#
#   Benchmarks/run.sh                      # everything: end-to-end matrix, micro-benchmarks, idle connections
#   Benchmarks/run.sh --skip-micro --skip-idle     # or --skip-e2e: each part rewrites only its own sections
#   DURATION=4 WARMUP=2 REPEAT=3 Benchmarks/run.sh   # the defaults: seconds per point, warm-up, rounds
#
# End to end: every system (raw NIO echo = the ceiling, Ferry, Go net/rpc, grpc-swift-2) at
# concurrency 1, 100, 500 and 1000 over 4 connections, and at 100 with one connection per
# caller; plus Ferry with the body passed through raw, and the raw NIO ceiling doing the
# workload's protobuf work, at 100/4; REPEAT rounds, the median
# reported. Server and client are separate processes on 127.0.0.1 with 2 event-loop threads each
# (GOMAXPROCS=2 for Go); the Swift clients' callers run on their connections' event loops
# (grpc-swift-2's on the cooperative pool). About 12 minutes on 2 cores with the defaults.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-3}
THREADS=2
run_e2e=1
run_micro=1
run_idle=1
for argument in "$@"; do
    case "$argument" in
    --skip-e2e) run_e2e=0 ;;
    --skip-micro) run_micro=0 ;;
    --skip-idle) run_idle=0 ;;
    *) echo "usage: $0 [--skip-e2e] [--skip-micro] [--skip-idle]" >&2; exit 2 ;;
    esac
done

results="$here/results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
echo "results in $results"

# --- build -----------------------------------------------------------------------------------
echo "== building (release)"
(cd "$here" && swift build -c release --product ferry-bench)
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"
(cd "$here/go-netrpc" && go build -o go-netrpc .)
gobin="$here/go-netrpc/go-netrpc"

python3 - "$results/meta.json" "$DURATION" "$WARMUP" "$REPEAT" "$*" <<'PY'
import json, os, sys, datetime
path, duration, warmup, repeat, args = sys.argv[1:]
json.dump({
    "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    "machine": f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}",
    "command": ("Benchmarks/run.sh " + args).strip(),
    "duration": float(duration),
    "warmup": float(warmup),
    "repeat": int(repeat),
    "load_before": round(os.getloadavg()[0], 1),
}, open(path, "w"))
PY

server_pid=""
stop_server() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap stop_server EXIT

# start_server NAME PORT COMMAND...: starts a server and waits for its "listening" line.
start_server() {
    local name=$1 port=$2
    shift 2
    local log="$results/server-$name.log"
    GOMAXPROCS=$THREADS "$@" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 300); do
        if grep -q '^listening' "$log"; then return 0; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$log" >&2
    exit 1
}

# --- end to end ------------------------------------------------------------------------------
# All four servers run at once, each on its own port, and the systems take turns at every point
# (REPEAT rounds over the whole matrix): load from elsewhere on the machine then falls on every
# system alike instead of on whichever ran at that moment. The report takes the median round.
if [ "$run_e2e" = 1 ]; then
points=("1 4" "100 4" "500 4" "1000 4" "100 0")
systems=(nio nio-protobuf ferry ferry-raw netrpc grpc)
e2e="$results/e2e.jsonl"
: >"$e2e"

declare -A server_pids=() ports=()
stop_servers() {
    stop_server
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${server_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    server_pids=()
}
trap stop_servers EXIT
port=9201
for system in nio nio-protobuf ferry netrpc grpc; do
    ports[$system]=$port
    if [ "$system" = netrpc ]; then
        start_server "$system" "$port" "$gobin" server --port "$port" --threads "$THREADS"
    else
        start_server "$system" "$port" "$bin" server --system "$system" --port "$port" --threads "$THREADS"
    fi
    server_pids[$system]=$server_pid
    server_pid=""
    port=$((port + 1))
done
ports[ferry-raw]=${ports[ferry]}

echo "== end to end: $REPEAT rounds, ${DURATION}s per point after ${WARMUP}s of warm-up"
for ((round = 1; round <= REPEAT; round++)); do
    for point in "${points[@]}"; do
        set -- $point
        concurrency=$1 connections=$2
        for system in "${systems[@]}"; do
            codec=protobuf
            client=("$bin" client --system "$system")
            case $system in
            netrpc) client=("$gobin" client) ;;
            ferry-raw)
                # Ferry without SwiftProtobuf, at the headline point only.
                [ "$point" = "100 4" ] || continue
                client=("$bin" client --system ferry)
                codec=raw
                ;;
            nio-protobuf)
                # The ceiling plus the workload's protobuf work (the like-for-like ceiling), at
                # the headline point only.
                [ "$point" = "100 4" ] || continue
                ;;
            esac
            echo "-- round $round: $system, concurrency $concurrency, connections $([ "$connections" = 0 ] && echo 'one per caller' || echo "$connections")"
            GOMAXPROCS=$THREADS "${client[@]}" --port "${ports[$system]}" --threads "$THREADS" --codec "$codec" \
                --concurrency "$concurrency" --connections "$connections" --duration "$DURATION" --warmup "$WARMUP" --json \
                | tee -a "$e2e"
            sleep 1
        done
    done
done
stop_servers
fi

# --- micro-benchmarks ------------------------------------------------------------------------
if [ "$run_micro" = 1 ]; then
    echo "== micro-benchmarks"
    (cd "$here" && swift package benchmark --target FerryMicroBenchmarks --no-progress --format markdown) \
        | tee "$results/micro-full.md"
    python3 "$here/scripts/micro_summary.py" "$results/micro-full.md" >"$results/micro.md"
    echo "== micro-benchmark thresholds (Benchmarks/Thresholds)"
    set +e
    (cd "$here" && swift package benchmark thresholds check --target FerryMicroBenchmarks --no-progress) \
        >"$results/thresholds.txt" 2>&1
    status=$?
    set -e
    cat "$results/thresholds.txt"
    # The plugin exits 1 for regressions and for failures alike, so read its verdict line.
    if grep -a -q 'is WORSE than the defined thresholds' "$results/thresholds.txt"; then
        verdict="**regressions** against the committed thresholds (see below)"
    elif grep -a -q 'is BETTER than the defined thresholds' "$results/thresholds.txt"; then
        verdict="improvements only against the committed thresholds"
    elif [ "$status" = 0 ]; then
        verdict="within the committed thresholds"
    else
        verdict="the check failed to run (exit $status)"
    fi
    {
        printf '\n`swift package benchmark thresholds check --target FerryMicroBenchmarks`: %s.\n' "$verdict"
        # The deviation tables, without the build chatter and the terminal colours.
        if grep -a -q 'Deviations' "$results/thresholds.txt"; then
            printf '\n```\n'
            sed -e 's/\x1b\[[0-9;]*m//g' "$results/thresholds.txt" | grep -a -E '^(Deviations|│ (p90|Time|Malloc|Throughput))' || true
            printf '```\n'
        fi
    } >>"$results/micro.md"
fi

# --- idle connections ------------------------------------------------------------------------
if [ "$run_idle" = 1 ]; then
    echo "== idle connections"
    RESULTS="$results" "$here/idle.sh"
fi

# --- report ----------------------------------------------------------------------------------
python3 - "$results/meta.json" <<'PY'
import json, os, sys
meta = json.load(open(sys.argv[1]))
meta["load_after"] = round(os.getloadavg()[0], 1)
json.dump(meta, open(sys.argv[1], "w"))
PY
python3 "$here/scripts/report.py" --results "$results" --markdown "$root/BENCHMARKS.md" \
    --chart "$here/benchmarks-chart.svg"
echo "done: $root/BENCHMARKS.md"
