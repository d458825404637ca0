#!/usr/bin/env bash
# Idle connections: opens N connections (10k, 50k, 100k by default) to one Ferry server and to
# the raw NIO echo server, each making one call and then staying idle, and reports the server's
# RSS per connection (VmRSS from /proc/PID/status before the first connection and once all are
# open). Clients bind several 127.0.0.x source addresses so that ports do not run out.
#
#   Benchmarks/idle.sh                 # 10000 50000 100000
#   COUNTS="10000 20000" Benchmarks/idle.sh
#   SYSTEMS="gateway-ws ferry-ws" COUNTS="10000 19000" Benchmarks/idle.sh   # WebSocket sessions
#
# SYSTEMS (default "ferry nio"): ferry, nio, ferry-ws (Ferry's WebSocket listener, no auth) and
# gateway-ws (a FerryGateway's WebSocket listener: each connection upgrades, authenticates with a
# token of its own, then makes one call that the gateway proxies to a Ferry service in the same
# process).
#
# Heartbeats are on for Ferry: the server pings every session that has been silent for
# HEARTBEAT seconds (PUSH /heartbeat, erpc's heartbeat), and the RSS is read after SETTLE seconds,
# once every session has been pinged; the clients read and drop the pings. The raw NIO echo has
# no heartbeat. The file-descriptor limit is raised as far as this process may; a count that does not
# fit under it is reported as not reached, with the reason, and the largest count that fits is
# measured instead.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
COUNTS=${COUNTS:-"10000 50000 100000"}
SYSTEMS=${SYSTEMS:-"ferry nio"}
THREADS=2
PER_PROCESS=${PER_PROCESS:-9000}     # connections per client process
HEARTBEAT=${HEARTBEAT:-5}            # Ferry's ping interval, seconds
SETTLE=${SETTLE:-8}                  # seconds between the last connection and the RSS reading
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-180}
results=${RESULTS:-"$here/results/idle-$(date +%Y%m%d-%H%M%S)"}
mkdir -p "$results"
out="$results/idle.jsonl"
: >"$out"

bin="$(cd "$here" && swift build -c release --show-bin-path)/ferry-bench"
[ -x "$bin" ] || (cd "$here" && swift build -c release --product ferry-bench)

# Raise the descriptor limit as far as allowed: the hard limit, or more where the process may.
wanted=1100000
ulimit -n "$wanted" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
limit=$(ulimit -n)
echo "file descriptor limit: $limit (hard $(ulimit -Hn))"
# Headroom for the server's own descriptors (listening socket, epoll, event fds, stdio).
capacity=$((limit - 200))
reason="not reached: the server's file-descriptor limit is $limit (RLIMIT_NOFILE hard limit $(ulimit -Hn)); raising it needs CAP_SYS_RESOURCE, which this machine's root does not have"

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

server_pid=""
client_pids=()
cleanup() {
    for pid in "${client_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${client_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    client_pids=()
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
trap cleanup EXIT

# measure SYSTEM PORT COUNT NOTE
measure() {
    local system=$1 port=$2 count=$3 note=$4
    local log="$results/idle-server-$system-$count.log"
    local extra=()
    case $system in ferry | ferry-ws | gateway-ws) extra=(--heartbeat "$HEARTBEAT") ;; esac
    "$bin" server --system "$system" --port "$port" --threads "$THREADS" "${extra[@]}" >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do grep -q '^listening' "$log" && break; sleep 0.1; done
    sleep 1
    local before
    before=$(rss_kb "$server_pid")

    local processes=$(((count + PER_PROCESS - 1) / PER_PROCESS))
    local remaining=$count
    for ((index = 0; index < processes; index++)); do
        local n=$((remaining < PER_PROCESS ? remaining : PER_PROCESS))
        remaining=$((remaining - n))
        # 8 source addresses per client process: 127.0.0.2-9, 127.0.0.10-17, ...
        "$bin" idle --system "$system" --port "$port" --threads "$THREADS" --connections "$n" \
            --sources 8 --first-source $((2 + 8 * index)) --hold 3600 \
            >"$results/idle-client-$system-$count-$index.log" 2>&1 &
        client_pids+=($!)
    done

    local deadline=$((SECONDS + CONNECT_TIMEOUT))
    while [ $SECONDS -lt $deadline ]; do
        local done_count
        done_count=$(cat "$results"/idle-client-"$system"-"$count"-*.log 2>/dev/null | grep -c '^connected' || true)
        [ "$done_count" -ge "$processes" ] && break
        sleep 1
    done
    sleep "$SETTLE"
    local after connected failed open_fds
    after=$(rss_kb "$server_pid")
    connected=$(cat "$results"/idle-client-"$system"-"$count"-*.log | awk '/^connected/ { s += $2 } END { print s + 0 }')
    failed=$(cat "$results"/idle-client-"$system"-"$count"-*.log | awk '/^connected/ { s += $4 } END { print s + 0 }')
    open_fds=$(ls "/proc/$server_pid/fd" | wc -l)
    [ "$connected" -lt "$count" ] && note="${note:+$note; }$((count - connected)) not connected ($failed failed within ${CONNECT_TIMEOUT}s)"
    python3 - "$system" "$count" "$connected" "$before" "$after" "$open_fds" "$note" >>"$out" <<'PY'
import json, sys
system, requested, connected, before, after, fds, note = sys.argv[1:]
connected, before, after = int(connected), int(before), int(after)
row = {"system": system, "requested": int(requested), "connected": connected,
       "rss_before_kb": before, "rss_after_kb": after, "server_fds": int(fds), "note": note}
if connected:
    row["bytes_per_connection"] = (after - before) * 1024 / connected
print(json.dumps(row))
PY
    tail -1 "$out"
    cleanup
    sleep 2
}

port=9301
for system in $SYSTEMS; do
    case $system in
    nio) silent="raw echo: no heartbeat, silent connections" ;;
    gateway-ws) silent="authenticated WebSocket sessions through the gateway; heartbeats on: it pings each silent session every ${HEARTBEAT} s" ;;
    *) silent="heartbeats on: the server pings each silent session every ${HEARTBEAT} s" ;;
    esac
    largest_done=0
    for count in $COUNTS; do
        if [ "$count" -le "$capacity" ]; then
            measure "$system" "$port" "$count" "$silent"
            largest_done=$count
        else
            echo "{\"system\": \"$system\", \"requested\": $count, \"connected\": 0, \"note\": \"$reason\"}" >>"$out"
            tail -1 "$out"
            if [ "$largest_done" -lt "$capacity" ]; then
                measure "$system" "$port" "$capacity" "the largest count under the descriptor limit; $silent"
                largest_done=$capacity
            fi
        fi
        port=$((port + 1))
    done
done
echo "idle results: $out"
