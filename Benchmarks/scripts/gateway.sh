#!/usr/bin/env bash
# The gateway's three targets, each against a baseline measured in the same run:
#
#   ws    Ferry over WebSocket (`ferry-ws`) against Ferry over TCP (`ferry`): both servers up
#         throughout, the two clients taking turns at each point (c = 100 over 4 connections,
#         and c = 100 with one connection per caller), REPEAT rounds. Target: WebSocket QPS
#         >= 0.7x TCP's.
#   http  HTTP through a FerryGateway to a Ferry service against a plain Hummingbird 2 route
#         answering the same body (`ferry-bench http`), with wrk: the same 581-byte body
#         (POST, Content-Type application/x-protobuf, from a Lua script), connections, threads
#         and duration, the two taking turns, REPEAT rounds. Target: >= 0.5x.
#   idle  Server RSS per idle authenticated WebSocket session through the gateway
#         (`idle.sh` with SYSTEMS="gateway-ws ..."), at COUNTS sessions, IDLE_ROUNDS rounds.
#         Target: <= 10 KB per session.
#
#   Benchmarks/scripts/gateway.sh                 # all three parts
#   Benchmarks/scripts/gateway.sh ws http         # some of them
#   REPEAT=3 DURATION=4 WARMUP=2 WRK_CONNECTIONS=100 WRK_THREADS=2 \
#   COUNTS="10000 19000" IDLE_ROUNDS=3 IDLE_SYSTEMS="gateway-ws ferry-ws" Benchmarks/scripts/gateway.sh
#
# Everything listens on 127.0.0.1. Results go to Benchmarks/results/gateway-<date>-<time>/;
# scripts/gateway_report.py prints the tables.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-2}
REPEAT=${REPEAT:-3}
THREADS=2
WRK_CONNECTIONS=${WRK_CONNECTIONS:-100}
WRK_THREADS=${WRK_THREADS:-2}
COUNTS=${COUNTS:-"10000 19000"}
IDLE_ROUNDS=${IDLE_ROUNDS:-3}
IDLE_SYSTEMS=${IDLE_SYSTEMS:-"gateway-ws ferry-ws"}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(ws http idle)

results=${RESULTS:-"$here/results/gateway-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$results"
echo "results in $results"
bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"
[ -x "$bin" ] || (cd "$here" && swift build -c release --product ferry-bench)

pids=()
stop_all() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT

# start NAME COMMAND...: starts a server in the background and waits for its "listening" line.
start() {
    local name=$1
    shift
    local log="$results/server-$name.log"
    "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do
        if grep -q '^listening' "$log"; then return 0; fi
        sleep 0.1
    done
    echo "server $name did not start:" >&2
    cat "$log" >&2
    exit 1
}

for part in "${parts[@]}"; do
    case $part in
    ws)
        echo "== Ferry over WebSocket against TCP: $REPEAT rounds, ${DURATION}s per point after ${WARMUP}s of warm-up"
        out="$results/ws.jsonl"
        : >"$out"
        start ferry "$bin" server --system ferry --port 9211 --threads "$THREADS"
        start ferry-ws "$bin" server --system ferry-ws --port 9212 --threads "$THREADS"
        declare -A ports=([ferry]=9211 [ferry-ws]=9212)
        for ((round = 1; round <= REPEAT; round++)); do
            for point in "100 4" "100 0"; do
                set -- $point
                for system in ferry ferry-ws; do
                    echo "-- round $round: $system, concurrency $1, connections $2"
                    "$bin" client --system "$system" --port "${ports[$system]}" --threads "$THREADS" \
                        --concurrency "$1" --connections "$2" --duration "$DURATION" --warmup "$WARMUP" --json \
                        | python3 -c "import json, sys; row = json.loads(sys.stdin.read()); row['round'] = $round; print(json.dumps(row))" \
                        | tee -a "$out"
                    sleep 1
                done
            done
        done
        stop_all
        ;;
    http)
        echo "== HTTP through the gateway against a plain Hummingbird route: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS, ${DURATION}s, $REPEAT rounds"
        command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
        out="$results/http.jsonl"
        : >"$out"
        body="$results/body.bin"
        "$bin" http --write-body "$body"
        cat >"$results/post.lua" <<LUA
-- POSTs the workload's 581 encoded bytes.
local file = io.open("$body", "rb")
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/x-protobuf"
LUA
        start http "$bin" http --plain-port 9401 --gateway-port 9402
        declare -A urls=([plain]="http://127.0.0.1:9401/bench/echo" [gateway]="http://127.0.0.1:9402/bench/echo")
        for target in plain gateway; do
            # Both answer 200 with the body they were sent.
            answer=$(curl -s -o "$results/answer-$target.bin" -w '%{http_code}' --data-binary "@$body" \
                -H 'Content-Type: application/x-protobuf' "${urls[$target]}")
            cmp -s "$body" "$results/answer-$target.bin" && [ "$answer" = 200 ] \
                || { echo "$target answered HTTP $answer, not the body it was sent" >&2; exit 1; }
            wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${WARMUP}s" -s "$results/post.lua" "${urls[$target]}" >/dev/null
        done
        for ((round = 1; round <= REPEAT; round++)); do
            for target in plain gateway; do
                echo "-- round $round: $target"
                log="$results/wrk-$target-$round.txt"
                wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"${DURATION}s" --latency -s "$results/post.lua" "${urls[$target]}" | tee "$log"
                python3 "$here/scripts/gateway_report.py" --wrk "$log" --target "$target" --round "$round" >>"$out"
                sleep 1
            done
        done
        stop_all
        ;;
    idle)
        for ((round = 1; round <= IDLE_ROUNDS; round++)); do
            echo "== idle WebSocket sessions, round $round: $IDLE_SYSTEMS at $COUNTS"
            RESULTS="$results/idle-$round" SYSTEMS="$IDLE_SYSTEMS" COUNTS="$COUNTS" "$here/idle.sh"
        done
        ;;
    *) echo "usage: $0 [ws] [http] [idle]" >&2; exit 2 ;;
    esac
done
python3 "$here/scripts/gateway_report.py" --results "$results"
