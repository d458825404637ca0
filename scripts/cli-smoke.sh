#!/usr/bin/env bash
# Runs the ferry command line as a user would: the demo, then a server and calls against it.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --product ferry >/dev/null
FERRY="$(swift build --show-bin-path)/ferry"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
WORK=$(mktemp -d)
cleanup() { for pid in ${PIDS:-}; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

run_expect() { # run_expect NAME EXPECTED-EXIT PATTERN -- COMMAND...
    local name=$1 want_exit=$2 pattern=$3; shift 4
    local out code=0
    out=$("$@" 2>&1) || code=$?
    if [[ $code -ne $want_exit ]] || ! grep -q -- "$pattern" <<<"$out"; then
        echo "FAIL $name (exit $code, wanted $want_exit and \"$pattern\"):"; echo "$out"; exit 1
    fi
    echo "ok   $name"
}

echo "== ferry --version, completions, usage errors"
run_expect "version"                 0 '^[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*$' -- "$FERRY" --version
"$FERRY" --generate-completion-script bash >"$WORK/ferry.bash"
run_expect "bash completion loads"   0 "complete .*-F _ferry ferry" -- bash -c 'source "$1" && complete -p ferry' _ "$WORK/ferry.bash"
run_expect "bad address: call usage" 64 "Usage: ferry call"    -- "$FERRY" call not-an-address /echo
run_expect "timeout -1s refused"     64 "timeout must be positive" -- "$FERRY" call 127.0.0.1:1 /echo --timeout -1s
run_expect "timeout=-1s refused"     64 "timeout must be positive" -- "$FERRY" call 127.0.0.1:1 /echo --timeout=-1s
run_expect "timeout 0s refused"      64 "timeout must be positive" -- "$FERRY" call 127.0.0.1:1 /echo --timeout 0s
run_expect "body twice refused"      64 "not both"              -- "$FERRY" call 127.0.0.1:1 /echo x -d y
run_expect "missing body file"       64 "no readable file"      -- "$FERRY" call 127.0.0.1:1 /echo -d @"$WORK/none.json"
run_expect "--etcd needs --service"  64 "etcd needs --service"  -- "$FERRY" serve --etcd http://127.0.0.1:1
run_expect "serve usage on errors"   64 "Usage: ferry serve"    -- "$FERRY" serve --listen nowhere
run_expect "TLS serve needs a cert"  64 "needs --tls-cert"      -- "$FERRY" serve --tls
run_expect "--ws needs HOST:PORT"    64 "ws must be HOST:PORT"  -- "$FERRY" serve --ws nowhere
run_expect "--ws-path needs a /"     64 "ws-path must be a path" -- "$FERRY" serve --ws 127.0.0.1:0 --ws-path ws
run_expect "--ws-proto json or pb"   64 "ws-proto"              -- "$FERRY" serve --ws 127.0.0.1:0 --ws-proto xml
run_expect "--ws-proto needs ws://"  64 "ws-proto applies to ws:// and wss://" -- "$FERRY" call 127.0.0.1:1 /echo --ws-proto pb
run_expect "gateway needs a listener" 64 "at least one listener" -- "$FERRY" gateway --backend 127.0.0.1:1
run_expect "gateway needs backends"  64 "name the services behind the gateway" -- "$FERRY" gateway --http 127.0.0.1:0
run_expect "long connections need a verifier" 64 "long connections need a token verifier" \
    -- "$FERRY" gateway --socket 127.0.0.1:0 --backend 127.0.0.1:1
run_expect "ws needs a verifier too" 64 "Usage: ferry gateway" -- "$FERRY" gateway --ws 127.0.0.1:0 --backend 127.0.0.1:1
run_expect "gateway --timeout 0s"    64 "timeout must be positive" -- "$FERRY" gateway --http 127.0.0.1:0 --backend 127.0.0.1:1 --timeout 0s
run_expect "--room-rate needs --rooms" 64 "room-rate needs --rooms" -- "$FERRY" gateway --http 127.0.0.1:0 --backend 127.0.0.1:1 --room-rate 5
run_expect "gateway --devices 0"     64 "devices must be 1 or more" -- "$FERRY" gateway --http 127.0.0.1:0 --backend 127.0.0.1:1 --devices 0
run_expect "gateway --data needs --inner" 64 "add --inner ADDRESS" \
    -- "$FERRY" gateway --socket 127.0.0.1:0 --backend 127.0.0.1:1 --dev-auth --data "$WORK/unused"
run_expect "--mailbox-ttl needs a mailbox" 64 "need a mailbox: --data DIR or --memory-mailbox" \
    -- "$FERRY" gateway --socket 127.0.0.1:0 --backend 127.0.0.1:1 --dev-auth --mailbox-ttl 1d
run_expect "--mailbox-ttl 7x refused" 64 "mailbox-ttl must look like 7d" \
    -- "$FERRY" gateway --socket 127.0.0.1:0 --inner 127.0.0.1:0 --backend 127.0.0.1:1 --dev-auth --memory-mailbox --mailbox-ttl 7x
mkdir -p "$WORK/bad-data" && printf 'not a database' >"$WORK/bad-data/mailbox.sqlite"
run_expect "gateway refuses a bad mailbox" 1 "cannot open the mailbox $WORK/bad-data/mailbox.sqlite: unreadable file" \
    -- "$FERRY" gateway --socket 127.0.0.1:0 --inner 127.0.0.1:0 --backend 127.0.0.1:1 --dev-auth --data "$WORK/bad-data"
run_expect "push needs a user"       64 "name at least one user" -- "$FERRY" push 127.0.0.1:1 '"hi"'
run_expect "push checks its JSON"    2 "the message is not JSON" -- "$FERRY" push 127.0.0.1:1 hi --user alice
run_expect "listen --from EPOCH:OFFSET" 64 "from must be EPOCH:OFFSET" -- "$FERRY" listen 127.0.0.1:1 --user alice --from 12
run_expect "--metrics needs HOST:PORT" 64 "metrics must be HOST:PORT" -- "$FERRY" serve --metrics nowhere
run_expect "gateway --metrics HOST:PORT" 64 "metrics must be HOST:PORT" -- "$FERRY" gateway --http 127.0.0.1:0 --backend 127.0.0.1:1 --metrics unix:/x
run_expect "top: bad address"        64 "Usage: ferry top"       -- "$FERRY" top not-an-address
run_expect "top --interval 5 refused" 64 "interval must look like 2s" -- "$FERRY" top 127.0.0.1:1 --interval 5
run_expect "top --interval 0s refused" 64 "interval must be positive" -- "$FERRY" top 127.0.0.1:1 --interval 0s
run_expect "top --count 0 refused"   64 "count must be 1 or more" -- "$FERRY" top 127.0.0.1:1 --count 0
run_expect "top: dial failure"       2 "dial failed"            -- "$FERRY" top "127.0.0.1:$(free_port)" --count 1

echo "== ferry demo"
"$FERRY" demo
echo "== ferry demo --cluster"
"$FERRY" demo --cluster

PORT=$(free_port)
"$FERRY" serve --listen "127.0.0.1:$PORT" >"$WORK/serve.log" 2>&1 &
SERVER=$!
PIDS="$SERVER"
for _ in $(seq 1 50); do
    if "$FERRY" call "127.0.0.1:$PORT" /echo '' --timeout 200ms >/dev/null 2>&1; then break; fi
    sleep 0.1
done

expect() { # expect NAME EXPECTED-EXIT PATTERN -- ARGS...
    local name=$1 want_exit=$2 pattern=$3; shift 4
    local out code=0
    out=$("$FERRY" call "127.0.0.1:$PORT" "$@" 2>&1) || code=$?
    if [[ $code -ne $want_exit ]] || ! grep -q -- "$pattern" <<<"$out"; then
        echo "FAIL $name (exit $code):"; echo "$out"; exit 1
    fi
    echo "ok   $name"
}

echo "== ferry serve + ferry call on 127.0.0.1:$PORT"
expect "math/add"        0 "body: 3"                -- /math/add '{"a":1,"b":2}' --timeout 2s
expect "echo keeps meta" 0 "meta: k=v&x=a b"        -- /echo 'hi' --codec plain --meta k=v --meta 'x=a b'
expect "gzip and md5"    0 "body: hi"               -- /echo 'hi' --codec plain --filter g --filter m
expect "error status"    1 "1234"                   -- /fail
expect "unknown route"   1 "404"                    -- /no/such/route
expect "timeout"         1 "408"                    -- /slow 3000 --timeout 200ms
expect "push"            0 "pushed /chat/say"       -- /chat/say '"hello"' --push

# A 200 KB body, from a file and from standard input: too long for an argument list.
python3 -c 'import json; print(json.dumps("x" * 200_000))' >"$WORK/big.json"
"$FERRY" call "127.0.0.1:$PORT" /echo -d @"$WORK/big.json" --output json >"$WORK/big-reply.json"
python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert o["status"]["code"] == 0 and o["body"] == json.dumps("x" * 200_000) + "\n", o["status"]' "$WORK/big-reply.json" \
    || { echo "FAIL 200 KB body from a file"; exit 1; }
echo "ok   200 KB body from a file (-d @file)"
out=$("$FERRY" call "127.0.0.1:$PORT" /echo -d @- --codec plain <"$WORK/big.json")
[[ $(wc -c <<<"${out#*body: }") -gt 200000 ]] || { echo "FAIL body from standard input"; echo "${out:0:300}"; exit 1; }
echo "ok   200 KB body from standard input (-d @-)"

# --output json: status, meta, body (text, or base64 when not UTF-8) and the node that answered.
out=$(printf '\377\376' | "$FERRY" call "127.0.0.1:$PORT" /echo -d @- --codec plain --meta k=v --output json)
python3 - "$out" "127.0.0.1:$PORT" <<'PY' || { echo "FAIL --output json"; echo "$out"; exit 1; }
import json, sys
o = json.loads(sys.argv[1])
assert o["status"] == {"code": 0, "message": "", "cause": "", "origin": "remote"}, o["status"]
assert {"key": "k", "value": "v"} in o["meta"], o["meta"]
assert o["bodyEncoding"] == "base64" and o["body"] == "//4=", o["body"]
assert o["node"]["address"] == sys.argv[2], o["node"]
PY
echo "ok   --output json (binary body as base64)"
out=$("$FERRY" call "127.0.0.1:$PORT" /fail --output json) && { echo "FAIL /fail exits 0"; exit 1; }
python3 -c 'import json, sys; s = json.loads(sys.argv[1])["status"]; assert s["code"] == 1234 and s["cause"] == "demo", s' "$out" \
    || { echo "FAIL --output json error status"; echo "$out"; exit 1; }
echo "ok   --output json error status"
kill -INT $SERVER
wait $SERVER

# wait_until SECONDS COMMAND...: runs COMMAND every 0.1 s until it succeeds; fails after SECONDS.
# The bound is generous: it only matters when something is broken, and a busy machine is slow.
wait_until() {
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

echo "== ferry serve --metrics, ferry top"
if command -v curl >/dev/null 2>&1; then
    TOP_PORT=$(free_port); METRICS_PORT=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$TOP_PORT" --metrics "127.0.0.1:$METRICS_PORT" >"$WORK/metrics.log" 2>&1 &
    METRICS_SERVER=$!
    PIDS="$PIDS $METRICS_SERVER"
    wait_until 60 grep -qs "metrics at http://127.0.0.1:$METRICS_PORT/metrics" "$WORK/metrics.log" \
        || { echo "FAIL serve --metrics line"; cat "$WORK/metrics.log"; exit 1; }
    echo "ok   serve --metrics names its endpoint at once"
    wait_until 60 grep -qs "listening on 127.0.0.1:$TOP_PORT" "$WORK/metrics.log" \
        || { echo "FAIL serve --metrics listening line"; cat "$WORK/metrics.log"; exit 1; }
    for n in 1 2 3; do
        run_expect "metrics: call $n"    0 "body: 3" -- "$FERRY" call "127.0.0.1:$TOP_PORT" /math/add '{"a":1,"b":2}'
    done
    run_expect "metrics: an error"       1 "1234"    -- "$FERRY" call "127.0.0.1:$TOP_PORT" /fail
    scrape() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/metrics.txt"; }
    scraped_calls() { scrape && grep -q '^ferry_calls_total{.*route="/math/add".*} 3\(\.0\)\?$' "$WORK/metrics.txt"; }
    wait_until 60 scraped_calls || { echo "FAIL ferry_calls_total for /math/add"; cat "$WORK/metrics.txt"; exit 1; }
    echo "ok   /metrics counts the calls (ferry_calls_total, route=\"/math/add\")"
    grep -q '^# TYPE ferry_calls_total counter$' "$WORK/metrics.txt" || { echo "FAIL counter TYPE line"; cat "$WORK/metrics.txt"; exit 1; }
    grep -q '^ferry_call_duration_seconds_bucket{.*route="/math/add".*le="+Inf".*} 3' "$WORK/metrics.txt" \
        || { echo "FAIL ferry_call_duration_seconds_bucket for /math/add"; cat "$WORK/metrics.txt"; exit 1; }
    echo "ok   /metrics has the duration histogram (ferry_call_duration_seconds_bucket)"

    # To a pipe: each frame once, separated by a blank line, without escape codes.
    out=$("$FERRY" top "127.0.0.1:$TOP_PORT" --count 2 --interval 200ms) || { echo "FAIL top --count 2"; echo "$out"; exit 1; }
    [[ $(grep -c "^127.0.0.1:$TOP_PORT  up .* sessions [0-9]*  handlers [0-9]*/[0-9]*  not draining" <<<"$out") == 2 ]] \
        || { echo "FAIL top: two frames with a header"; echo "$out"; exit 1; }
    [[ $(grep -c "^KIND  DIR  ROUTE  *CALLS/S  ERR/S  *P50  *P99  TOTAL$" <<<"$out") == 2 ]] \
        || { echo "FAIL top: two tables"; echo "$out"; exit 1; }
    grep -Eq '^call  in   /math/add +[0-9]+\.[0-9] +0\.0 +[0-9.]+(us|ms|s) +[0-9.]+(us|ms|s) +3$' <<<"$out" \
        || { echo "FAIL top: the /math/add row"; echo "$out"; exit 1; }
    grep -Eq '^call  in   /fail +[0-9]+\.[0-9] +[0-9]+\.[0-9] .* 1$' <<<"$out" || { echo "FAIL top: the /fail row"; echo "$out"; exit 1; }
    grep -q "(rates over [0-9.]*s)" <<<"$out" || { echo "FAIL top: the second frame's rates"; echo "$out"; exit 1; }
    ! grep -q $'\e' <<<"$out" || { echo "FAIL top to a pipe writes escape codes"; echo "$out" | cat -v; exit 1; }
    echo "ok   top --count 2 --interval 200ms: two frames, /math/add with its total"
    run_expect "top --sessions"          0 "^  [^ ]*  127.0.0.1:[0-9]*  accepted$" \
        -- "$FERRY" top "127.0.0.1:$TOP_PORT" --count 1 --sessions
    if command -v script >/dev/null 2>&1; then
        # On a terminal the view is redrawn in place: clear the screen, then the frame.
        out=$(script -qec "$FERRY top 127.0.0.1:$TOP_PORT --count 1" /dev/null </dev/null)
        [[ $out == $'\e[H\e[2J127.0.0.1:'"$TOP_PORT"* ]] || { echo "FAIL top on a terminal"; echo "$out" | cat -v; exit 1; }
        echo "ok   top on a terminal clears and redraws"
    fi
    # Until Ctrl-C, which stops it cleanly.
    "$FERRY" top "127.0.0.1:$TOP_PORT" --interval 100ms >"$WORK/top.log" 2>&1 &
    TOP=$!
    PIDS="$PIDS $TOP"
    wait_until 60 grep -q "^KIND" "$WORK/top.log" || { echo "FAIL top shows no frame"; cat "$WORK/top.log"; exit 1; }
    kill -INT $TOP
    wait $TOP || { echo "FAIL top exit on Ctrl-C"; cat "$WORK/top.log"; exit 1; }
    echo "ok   top stops on Ctrl-C with exit 0"
    kill -INT $METRICS_SERVER
    wait $METRICS_SERVER

    NO_STATS_PORT=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$NO_STATS_PORT" --no-stats >"$WORK/no-stats.log" 2>&1 &
    NO_STATS=$!
    PIDS="$PIDS $NO_STATS"
    wait_until 60 grep -qs "listening on" "$WORK/no-stats.log" || { echo "FAIL serve --no-stats"; cat "$WORK/no-stats.log"; exit 1; }
    run_expect "top: statistics off"     1 "127.0.0.1:$NO_STATS_PORT does not serve /ferry/stats (statistics are off)" \
        -- "$FERRY" top "127.0.0.1:$NO_STATS_PORT" --count 1
    kill -INT $NO_STATS
    wait $NO_STATS
else
    echo "skip serve --metrics: curl not found"
fi

echo "== ferry serve --ws + ferry call ws://"
WS_TCP_PORT=$(free_port); WS_PORT=$(free_port)
"$FERRY" serve --listen "127.0.0.1:$WS_TCP_PORT" --ws "127.0.0.1:$WS_PORT" >"$WORK/ws.log" 2>&1 &
WS_SERVER=$!
PIDS="$PIDS $WS_SERVER"
for _ in $(seq 1 100); do grep -qs "listening on" "$WORK/ws.log" && break; sleep 0.1; done
grep -q "listening on 127.0.0.1:$WS_TCP_PORT and ws://127.0.0.1:$WS_PORT/ws (pid $WS_SERVER, WebSocket sub-protocol json)" "$WORK/ws.log" \
    || { echo "FAIL serve --ws line"; cat "$WORK/ws.log"; exit 1; }
echo "ok   serve --ws names the ws:// URL"
WS="ws://127.0.0.1:$WS_PORT/ws"
run_expect "ws math/add"             0 "body: 3"          -- "$FERRY" call "$WS" /math/add '{"a":1,"b":2}'
run_expect "ws echo keeps meta"      0 "meta: k=v&x=a b"  -- "$FERRY" call "$WS" /echo hi --codec plain --meta k=v --meta 'x=a b'
run_expect "ws error status"         1 "1234"             -- "$FERRY" call "$WS" /fail
run_expect "ws unknown route"        1 "404"              -- "$FERRY" call "$WS" /no/such/route
run_expect "ws timeout"              1 "408"              -- "$FERRY" call "$WS" /slow 3000 --timeout 200ms
run_expect "ws push"                 0 "pushed /chat/say" -- "$FERRY" call "$WS" /chat/say '"hello"' --push
run_expect "TCP beside WebSocket"    0 "body: 3"          -- "$FERRY" call "127.0.0.1:$WS_TCP_PORT" /math/add '{"a":1,"b":2}'
out=$("$FERRY" call "$WS" /echo -d '"hi"' --meta k=v --output json)
python3 - "$out" "$WS" <<'PY' || { echo "FAIL --output json over ws"; echo "$out"; exit 1; }
import json, sys
o = json.loads(sys.argv[1])
assert o["status"]["code"] == 0 and o["body"] == '"hi"', o
assert {"key": "k", "value": "v"} in o["meta"], o["meta"]
assert o["node"] == {"address": sys.argv[2]}, o["node"]
PY
echo "ok   --output json over ws names the ws:// node"
run_expect "ws wrong path"           2 "refused the WebSocket upgrade: HTTP 404 Not Found: no WebSocket endpoint at this path" \
    -- "$FERRY" call "ws://127.0.0.1:$WS_PORT/nope" /echo
out=$("$FERRY" call "ws://127.0.0.1:$WS_PORT/nope" /echo --output json) && { echo "FAIL wrong ws path exits 0"; exit 1; }
python3 -c 'import json, sys; s = json.loads(sys.argv[1])["status"]; assert s["code"] == 105 and "HTTP 404" in s["cause"], s' "$out" \
    || { echo "FAIL --output json wrong ws path"; echo "$out"; exit 1; }
echo "ok   --output json wrong ws path (105, HTTP 404)"
run_expect "ws:// to a raw port"     2 "call HOST:PORT without ws://" -- "$FERRY" call "ws://127.0.0.1:$WS_TCP_PORT/ws" /echo
run_expect "raw call to a ws port"   1 "call ws://HOST:PORT/PATH" -- "$FERRY" call "127.0.0.1:$WS_PORT" /echo
run_expect "sub-protocols differ"    1 "check that --ws-proto matches" -- "$FERRY" call "$WS" /echo hi --ws-proto pb
kill -INT $WS_SERVER
wait $WS_SERVER

# The protobuf sub-protocol on another path: binary bodies and transfer filters travel as they are.
PB_PORT=$(free_port)
"$FERRY" serve --listen "127.0.0.1:$(free_port)" --ws "127.0.0.1:$PB_PORT" --ws-path /rpc --ws-proto pb >"$WORK/ws-pb.log" 2>&1 &
PB_SERVER=$!
PIDS="$PIDS $PB_SERVER"
for _ in $(seq 1 100); do grep -qs "listening on" "$WORK/ws-pb.log" && break; sleep 0.1; done
grep -q "and ws://127.0.0.1:$PB_PORT/rpc (pid $PB_SERVER, WebSocket sub-protocol pb)" "$WORK/ws-pb.log" \
    || { echo "FAIL serve --ws-proto pb line"; cat "$WORK/ws-pb.log"; exit 1; }
PB="ws://127.0.0.1:$PB_PORT/rpc"
run_expect "ws pb math/add"          0 "body: 3"  -- "$FERRY" call "$PB" /math/add '{"a":1,"b":2}' --ws-proto pb
run_expect "ws pb gzip and md5"      0 "body: hi" -- "$FERRY" call "$PB" /echo hi --codec plain --filter g --filter m --ws-proto pb
out=$(printf '\377\376' | "$FERRY" call "$PB" /echo -d @- --codec plain --ws-proto pb --output json)
python3 -c 'import json, sys; o = json.loads(sys.argv[1]); assert o["status"]["code"] == 0 and o["body"] == "//4=", o' "$out" \
    || { echo "FAIL binary body over ws pb"; echo "$out"; exit 1; }
echo "ok   binary body over ws pb (--output json, base64)"
run_expect "json caller, pb server"  1 "check that --ws-proto matches" -- "$FERRY" call "$PB" /echo '"hi"'
kill -INT $PB_SERVER
wait $PB_SERVER

echo "== ferry gateway in front of ferry serve"
if command -v curl >/dev/null 2>&1; then
    BACKEND_PORT=$(free_port); GW_HTTP=$(free_port); GW_SOCKET=$(free_port); GW_WS=$(free_port); GW_INNER=$(free_port); GW_METRICS=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$BACKEND_PORT" >"$WORK/backend.log" 2>&1 &
    BACKEND=$!
    PIDS="$PIDS $BACKEND"
    "$FERRY" gateway --http "127.0.0.1:$GW_HTTP" --socket "127.0.0.1:$GW_SOCKET" --ws "127.0.0.1:$GW_WS" --inner "127.0.0.1:$GW_INNER" \
        --backend "127.0.0.1:$BACKEND_PORT" --dev-auth --max-body 1024 --timeout 1s --rooms --metrics "127.0.0.1:$GW_METRICS" \
        >"$WORK/gateway.log" 2>"$WORK/gateway.err" &
    GATEWAY=$!
    PIDS="$PIDS $GATEWAY"
    for _ in $(seq 1 100); do grep -qs "listening on" "$WORK/backend.log" && grep -qs "gateway listening" "$WORK/gateway.log" && break; sleep 0.1; done
    grep -q "gateway listening: http 127.0.0.1:$GW_HTTP, socket 127.0.0.1:$GW_SOCKET, ws ws://127.0.0.1:$GW_WS/ws, inner 127.0.0.1:$GW_INNER" \
        "$WORK/gateway.log" || { echo "FAIL gateway listening line"; cat "$WORK/gateway.log" "$WORK/gateway.err"; exit 1; }
    echo "ok   gateway names its listeners at once"
    grep -q "WARNING: ferry gateway --dev-auth is for DEVELOPMENT ONLY" "$WORK/gateway.err" \
        || { echo "FAIL --dev-auth warning on stderr"; cat "$WORK/gateway.err"; exit 1; }
    echo "ok   --dev-auth announced on stderr"
    GW="http://127.0.0.1:$GW_HTTP"
    http_expect() { # http_expect NAME STATUS BODY-PATTERN -- CURL-ARGS...
        local name=$1 want_status=$2 pattern=$3; shift 4
        local out
        out=$(curl -s -w '\n%{http_code}' "$@") || { echo "FAIL $name: curl failed"; exit 1; }
        if [[ ${out##*$'\n'} != "$want_status" ]] || ! grep -q -- "$pattern" <<<"${out%$'\n'*}"; then
            echo "FAIL $name (wanted HTTP $want_status and \"$pattern\"):"; echo "$out"; exit 1
        fi
        echo "ok   $name"
    }
    http_expect "HTTP POST /math/add"    200 '^3$'       -- -X POST "$GW/math/add" -H 'Content-Type: application/json' -d '{"a":1,"b":2}'
    http_expect "HTTP GET with a query"  200 '^3$'       -- "$GW/math/add?a=1&b=2"
    wait_until 60 grep -qs "metrics at http://127.0.0.1:$GW_METRICS/metrics" "$WORK/gateway.log" \
        || { echo "FAIL gateway --metrics line"; cat "$WORK/gateway.log" "$WORK/gateway.err"; exit 1; }
    gateway_calls() {
        curl -s "http://127.0.0.1:$GW_METRICS/metrics" >"$WORK/gateway-metrics.txt" \
            && grep -q '^ferry_calls_total{direction="out",route="/math/add",.*} 2\(\.0\)\?$' "$WORK/gateway-metrics.txt"
    }
    wait_until 60 gateway_calls || { echo "FAIL gateway --metrics counts its calls"; cat "$WORK/gateway-metrics.txt"; exit 1; }
    echo "ok   gateway --metrics counts the calls it passes on"
    http_expect "HTTP echo keeps text"   200 '^hi$'      -- "$GW/echo" -H 'Content-Type: text/plain' -d 'hi'
    http_expect "HTTP unknown route 404" 404 '"code":404' -- "$GW/no/such/route"
    http_expect "HTTP status >= 600"     299 '"code":1234' -- "$GW/fail"
    http_expect "HTTP body too large"    413 '"code":413' -- "$GW/echo" -H 'Content-Type: text/plain' -d "$(printf 'x%.0s' $(seq 1 2000))"
    http_expect "HTTP unknown type 415"  415 '"code":415' -- "$GW/echo" -H 'Content-Type: image/png' -d 'x'
    http_expect "HTTP gateway timeout"   504 '"code":'    -- "$GW/slow" -H 'Content-Type: application/json' -d '3000'
    GS="127.0.0.1:$GW_SOCKET"
    run_expect "socket call with a token"   0 "body: 3" -- "$FERRY" call "$GS" /math/add '{"a":1,"b":2}' --token alice
    run_expect "ws call with a token"       0 "body: 3" -- "$FERRY" call "ws://127.0.0.1:$GW_WS/ws" /math/add '{"a":1,"b":2}' --token bob
    run_expect "socket call without a token" 1 "401"    -- "$FERRY" call "$GS" /math/add '{"a":1,"b":2}'
    run_expect "socket bad dev token"       2 "401"     -- "$FERRY" call "$GS" /echo --token 'not a name'
    run_expect "socket unknown route"       1 "404"     -- "$FERRY" call "$GS" /no/such/route --token alice
    # A call in flight keeps alice connected while the inner API counts her, pushes to her and
    # kicks her out.
    "$FERRY" call "$GS" /slow 30000 --timeout 60s --token alice >"$WORK/alice.log" 2>&1 &
    ALICE=$!
    PIDS="$PIDS $ALICE"
    GI="127.0.0.1:$GW_INNER"
    for _ in $(seq 1 100); do "$FERRY" call "$GI" /gateway/count 2>/dev/null | grep -q '"users":1' && break; sleep 0.1; done
    run_expect "inner count"             0 '{"users":1,"sessions":1}\|{"sessions":1,"users":1}' -- "$FERRY" call "$GI" /gateway/count
    run_expect "inner online"            0 'body: \["alice"\]'        -- "$FERRY" call "$GI" /gateway/online '["alice","bob"]'
    run_expect "inner push to alice"     0 "body: 1" -- "$FERRY" call "$GI" /gateway/push '"hello"' --meta X-Ferry-User=alice --meta X-Ferry-Push-Route=/news
    run_expect "inner push needs a route" 1 "400"    -- "$FERRY" call "$GI" /gateway/push '"hello"' --meta X-Ferry-User=alice
    run_expect "rooms: none yet"         0 "no rooms with members" -- "$FERRY" rooms "$GI"
    run_expect "join a room at the gateway" 0 "status: OK" -- "$FERRY" call "$GS" /gateway/rooms/join '"lobby"' --token carol
    run_expect "rooms: carol left with her session" 0 "no members in lobby" -- "$FERRY" rooms "$GI" lobby
    run_expect "inner kick alice"        0 "body: 1" -- "$FERRY" call "$GI" /gateway/kick --meta X-Ferry-User=alice
    run_expect "push without a mailbox"  1 "start it with --data DIR" -- "$FERRY" push "$GI" '"hi"' --user alice
    wait $ALICE && { echo "FAIL alice's call survived the kick"; cat "$WORK/alice.log"; exit 1; }
    grep -q "route=/news" "$WORK/alice.log" || { echo "FAIL the push did not reach alice"; cat "$WORK/alice.log"; exit 1; }
    grep -q "status: 102" "$WORK/alice.log" || { echo "FAIL alice's call not ended by the kick"; cat "$WORK/alice.log"; exit 1; }
    echo "ok   the push reached alice's session, and the kick closed it"
    kill -INT $GATEWAY
    wait $GATEWAY || { echo "FAIL gateway exit on SIGINT"; cat "$WORK/gateway.log" "$WORK/gateway.err"; exit 1; }
    grep -q "gateway stopped" "$WORK/gateway.log" || { echo "FAIL gateway stopped line"; cat "$WORK/gateway.log"; exit 1; }
    echo "ok   gateway stops on SIGINT"

    # A gateway that verifies JSON Web Tokens (HS256), signed here with Python's standard library.
    printf 'a shared secret of at least thirty-two bytes\n' >"$WORK/jwt.secret"
    sign_jwt() { # sign_jwt SUBJECT SECRET
        python3 - "$1" "$2" <<'PY'
import base64, hashlib, hmac, json, sys, time
def b64(data): return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": sys.argv[1], "exp": int(time.time()) + 600, "aud": "chat"}).encode())
signature = hmac.new(sys.argv[2].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
PY
    }
    printf 'short' >"$WORK/short.secret"
    run_expect "gateway short JWT secret" 64 "HS256 needs at least 32" \
        -- "$FERRY" gateway --socket 127.0.0.1:0 --backend 127.0.0.1:1 --jwt-secret-file "$WORK/short.secret"
    GW_JWT=$(free_port)
    "$FERRY" gateway --socket "127.0.0.1:$GW_JWT" --backend "127.0.0.1:$BACKEND_PORT" \
        --jwt-secret-file "$WORK/jwt.secret" --jwt-audience chat >"$WORK/gateway-jwt.log" 2>&1 &
    GATEWAY_JWT=$!
    PIDS="$PIDS $GATEWAY_JWT"
    for _ in $(seq 1 100); do grep -qs "gateway listening" "$WORK/gateway-jwt.log" && break; sleep 0.1; done
    run_expect "JWT call as its subject"   0 '{"key":"X-Ferry-User","value":"nora"}' \
        -- "$FERRY" call "127.0.0.1:$GW_JWT" /echo -d '"hi"' --output json --token "$(sign_jwt nora 'a shared secret of at least thirty-two bytes')"
    run_expect "JWT with a wrong signature" 2 "401" \
        -- "$FERRY" call "127.0.0.1:$GW_JWT" /math/add '{"a":1,"b":2}' --token "$(sign_jwt nora 'another secret, not the gateway one')"
    kill -INT $GATEWAY_JWT
    wait $GATEWAY_JWT || { echo "FAIL JWT gateway exit on SIGINT"; cat "$WORK/gateway-jwt.log"; exit 1; }
    kill -INT $BACKEND
    wait $BACKEND
else
    echo "skip gateway over HTTP: curl not found"
fi

echo "== at-least-once pushes: ferry gateway --data, ferry push, ferry listen"
PUSH_BACKEND=$(free_port)
"$FERRY" serve --listen "127.0.0.1:$PUSH_BACKEND" >"$WORK/push-backend.log" 2>&1 &
PUSH_BACKEND_PID=$!
PIDS="$PIDS $PUSH_BACKEND_PID"
start_push_gateway() { # start_push_gateway LOG: a gateway on new ports, its mailbox in $WORK/data
    PUSH_SOCKET=$(free_port); PUSH_WS=$(free_port); PUSH_INNER=$(free_port)
    "$FERRY" gateway --socket "127.0.0.1:$PUSH_SOCKET" --ws "127.0.0.1:$PUSH_WS" --inner "127.0.0.1:$PUSH_INNER" \
        --backend "127.0.0.1:$PUSH_BACKEND" --dev-auth --data "$WORK/data" >"$1" 2>&1 &
    PUSH_GATEWAY=$!
    PIDS="$PIDS $PUSH_GATEWAY"
    for _ in $(seq 1 100); do grep -qs "Ctrl-C or SIGTERM" "$1" && break; sleep 0.1; done
}
start_push_gateway "$WORK/push-gateway.log"
grep -q "gateway mailbox: $WORK/data/mailbox.sqlite (at most 1000 messages per user, kept 7d, resent after 10s" "$WORK/push-gateway.log" \
    || { echo "FAIL gateway mailbox line"; cat "$WORK/push-gateway.log"; exit 1; }
echo "ok   gateway --data names its mailbox file"
# erin is offline: both messages wait in the mailbox.
out=$("$FERRY" push "127.0.0.1:$PUSH_INNER" '{"text":"first"}' --user erin)
[[ $out =~ ^stored\ for\ erin\ at\ ([0-9a-f-]+):1$ ]] || { echo "FAIL push to an offline user"; echo "$out"; exit 1; }
EPOCH=${BASH_REMATCH[1]}
echo "ok   stored for erin at $EPOCH:1"
run_expect "push a second message"   0 "^stored for erin at $EPOCH:2$" -- "$FERRY" push "127.0.0.1:$PUSH_INNER" '"second"' --user erin
out=$(timeout 30 "$FERRY" listen "127.0.0.1:$PUSH_SOCKET" --user erin --count 2 2>"$WORK/listen.err") \
    || { echo "FAIL listen --count 2"; echo "$out"; cat "$WORK/listen.err"; exit 1; }
[[ $out == $'1  /chat/msg  {"text":"first"}\n2  /chat/msg  "second"' ]] \
    || { echo "FAIL listen: both messages, in order"; echo "$out"; cat "$WORK/listen.err"; exit 1; }
grep -q "received 2 messages (resume with --from $EPOCH:2)" "$WORK/listen.err" \
    || { echo "FAIL listen: where to resume"; cat "$WORK/listen.err"; exit 1; }
echo "ok   listen --count 2 gets both, at offsets 1 and 2"
kill -INT $PUSH_GATEWAY
wait $PUSH_GATEWAY || { echo "FAIL gateway --data exit on SIGINT"; cat "$WORK/push-gateway.log"; exit 1; }
start_push_gateway "$WORK/push-gateway-2.log"
run_expect "epoch kept across a restart" 0 "^stored for erin at $EPOCH:3$" \
    -- "$FERRY" push "127.0.0.1:$PUSH_INNER" '"third"' --user erin
out=$(timeout 30 "$FERRY" listen "ws://127.0.0.1:$PUSH_WS/ws" --user erin --from "$EPOCH:2" --count 1 --output json 2>"$WORK/listen.err") \
    || { echo "FAIL listen --from"; echo "$out"; cat "$WORK/listen.err"; exit 1; }
python3 - "$out" "$EPOCH" <<'PY' || { echo "FAIL listen --from EPOCH:2 over ws"; echo "$out"; cat "$WORK/listen.err"; exit 1; }
import json, sys
lines = sys.argv[1].splitlines()
assert len(lines) == 1, lines
o = json.loads(lines[0])
assert o == {"epoch": sys.argv[2], "offset": 3, "route": "/chat/msg", "codec": "j", "body": '"third"', "bodyEncoding": "utf8", "lost": 0}, o
PY
echo "ok   after the restart, listen --from $EPOCH:2 gets only the third"
kill -INT $PUSH_GATEWAY
wait $PUSH_GATEWAY
kill -INT $PUSH_BACKEND_PID
wait $PUSH_BACKEND_PID

echo "== ferry call against what is not a Ferry peer"
HTTP_PORT_FILE="$WORK/http.port"
python3 -u -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1])
while True:
    c, _ = s.accept(); c.recv(65536)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c.close()
' >"$HTTP_PORT_FILE" &
PIDS="$PIDS $!"
for _ in $(seq 1 50); do [[ -s $HTTP_PORT_FILE ]] && break; sleep 0.1; done
run_expect "HTTP server named" 1 "looks like an HTTP server, not a Ferry peer" -- "$FERRY" call "127.0.0.1:$(cat "$HTTP_PORT_FILE")" /echo hi
run_expect "--metrics on a port in use" 1 "metrics 127.0.0.1:$(cat "$HTTP_PORT_FILE"): cannot serve: .*Address already in use" \
    -- "$FERRY" serve --listen "127.0.0.1:$(free_port)" --metrics "127.0.0.1:$(cat "$HTTP_PORT_FILE")"
out=$("$FERRY" call "127.0.0.1:$(free_port)" /echo 2>&1 || true)
python3 -c '
import sys
depth = []
for c in sys.argv[1]:
    if c in "([": depth.append(c)
    elif c in ")]":
        assert depth and depth.pop() == {")": "(", "]": "["}[c], sys.argv[1]
assert not depth, sys.argv[1]' "$out" || { echo "FAIL unbalanced brackets: $out"; exit 1; }
echo "ok   dial failure has balanced brackets"

echo "== ferry serve writes its lines at once, also to a file"
SERVE_PORT=$(free_port)
"$FERRY" serve --listen "127.0.0.1:$SERVE_PORT" >"$WORK/serve-file.log" 2>&1 &
SERVE=$!
PIDS="$PIDS $SERVE"
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/serve-file.log" && break; sleep 0.1; done
{ kill -KILL $SERVE; wait $SERVE; } 2>/dev/null || true
grep -q "listening on 127.0.0.1:$SERVE_PORT (pid $SERVE)" "$WORK/serve-file.log" \
    || { echo "FAIL serve line not in the file before SIGKILL"; cat "$WORK/serve-file.log"; exit 1; }
echo "ok   listening line written before SIGKILL"

echo "== TLS and the auth handshake"
if command -v openssl >/dev/null 2>&1; then
    (
        cd "$WORK"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj "/CN=Ferry smoke CA"
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
        printf "subjectAltName=IP:127.0.0.1\n" >san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 -extfile san.ext
        openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=ferry smoke client"
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1
    ) >/dev/null 2>&1
    TLS_PORT=$(free_port); WSS_PORT=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$TLS_PORT" --ws "127.0.0.1:$WSS_PORT" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key" --token sesame \
        >"$WORK/tls.log" 2>&1 &
    PIDS="$PIDS $!"
    TLS_SERVER=$!
    for _ in $(seq 1 100); do grep -q "listening on" "$WORK/tls.log" && break; sleep 0.1; done
    TLS="127.0.0.1:$TLS_PORT"
    run_expect "TLS call with the CA"      0 "body: 3"              -- "$FERRY" call "$TLS" /math/add '{"a":1,"b":2}' --tls-ca "$WORK/ca.pem" --token sesame
    run_expect "TLS with json output"      0 '"code":0'             -- "$FERRY" call "$TLS" /echo -d '"hi"' --tls-ca "$WORK/ca.pem" --token sesame --output json
    run_expect "untrusted certificate"     2 "dial failed"          -- "$FERRY" call "$TLS" /echo --tls --token sesame
    run_expect "wrong token refused"       2 "401"                  -- "$FERRY" call "$TLS" /echo --tls-ca "$WORK/ca.pem" --token wrong
    run_expect "no token refused"          1 "401"                  -- "$FERRY" call "$TLS" /echo --tls-ca "$WORK/ca.pem"
    run_expect "plain call to TLS named"   2 "looks like a TLS server" -- "$FERRY" call "$TLS" /echo --token sesame
    grep -q "listening on $TLS and wss://127.0.0.1:$WSS_PORT/ws" "$WORK/tls.log" || { echo "FAIL wss line"; cat "$WORK/tls.log"; exit 1; }
    echo "ok   serve --ws with TLS names the wss:// URL"
    WSS="wss://127.0.0.1:$WSS_PORT/ws"
    run_expect "wss call with the CA"      0 "body: 3"              -- "$FERRY" call "$WSS" /math/add '{"a":1,"b":2}' --tls-ca "$WORK/ca.pem" --token sesame
    run_expect "wss with json output"      0 "\"address\":\"$WSS\"" -- "$FERRY" call "$WSS" /echo -d '"hi"' --tls-ca "$WORK/ca.pem" --token sesame --output json
    run_expect "ws:// with --tls-ca"       0 "body: 3"              -- "$FERRY" call "ws://127.0.0.1:$WSS_PORT/ws" /math/add '{"a":1,"b":2}' --tls-ca "$WORK/ca.pem" --token sesame
    run_expect "wss untrusted certificate" 2 "dial failed"          -- "$FERRY" call "$WSS" /echo --token sesame
    run_expect "wss wrong token refused"   2 "401"                  -- "$FERRY" call "$WSS" /echo --tls-ca "$WORK/ca.pem" --token wrong
    kill -INT $TLS_SERVER
    wait $TLS_SERVER

    # Mutual TLS: with --tls-ca, serve accepts only clients with a certificate that CA signed.
    MTLS_PORT=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$MTLS_PORT" --tls-cert "$WORK/server.pem" --tls-key "$WORK/server.key" --tls-ca "$WORK/ca.pem" \
        >"$WORK/mtls.log" 2>&1 &
    MTLS_SERVER=$!
    PIDS="$PIDS $MTLS_SERVER"
    for _ in $(seq 1 100); do grep -q "listening on" "$WORK/mtls.log" && break; sleep 0.1; done
    run_expect "mutual TLS with a client certificate" 0 "body: 3" -- "$FERRY" call "127.0.0.1:$MTLS_PORT" /math/add '{"a":1,"b":2}' \
        --tls-ca "$WORK/ca.pem" --tls-cert "$WORK/client.pem" --tls-key "$WORK/client.key"
    run_expect "mutual TLS without one"  1 "CERTIFICATE_REQUIRED" -- "$FERRY" call "127.0.0.1:$MTLS_PORT" /echo --tls-ca "$WORK/ca.pem"
    kill -INT $MTLS_SERVER
    wait $MTLS_SERVER
else
    echo "skip TLS: openssl not found"
fi

echo "== etcd down"
run_expect "etcd unreachable named" 2 "etcd at http://127.0.0.1:[0-9]* is unreachable" -- \
    "$FERRY" call smoke /echo --etcd "http://127.0.0.1:$(free_port)" --timeout 2s

if command -v etcd >/dev/null 2>&1; then
    echo "== discovery through etcd"
    ETCD_PORT=$(free_port); PEER_PORT=$(free_port); NODE_PORT=$(free_port)
    ETCD_DIR="$WORK/etcd"
    etcd --data-dir "$ETCD_DIR/data" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-cluster "default=http://127.0.0.1:$PEER_PORT" \
        --log-level error >/dev/null 2>&1 &
    ETCD=$!
    PIDS="$PIDS $ETCD"
    ETCD_URL="http://127.0.0.1:$ETCD_PORT"
    "$FERRY" serve --listen "127.0.0.1:$NODE_PORT" --etcd "$ETCD_URL" --service smoke >"$WORK/node.log" 2>&1 &
    NODE=$!
    PIDS="$PIDS $NODE"
    for _ in $(seq 1 100); do grep -q "registered as smoke" "$WORK/node.log" && break; sleep 0.1; done
    grep -q "registered as smoke in etcd" "$WORK/node.log" || { echo "FAIL registered line"; cat "$WORK/node.log"; exit 1; }
    echo "ok   registered line written at once"
    for _ in $(seq 1 100); do
        if "$FERRY" ls --etcd "$ETCD_URL" 2>/dev/null | grep -q "127.0.0.1:$NODE_PORT"; then break; fi
        sleep 0.1
    done
    "$FERRY" ls --etcd "$ETCD_URL" | grep -q "smoke  (1 node)" || { echo "FAIL ferry ls"; "$FERRY" ls --etcd "$ETCD_URL"; exit 1; }
    echo "ok   ferry ls"
    out=$("$FERRY" call smoke /math/add '{"a":2,"b":5}' --etcd "$ETCD_URL")
    grep -q "body: 7" <<<"$out" || { echo "FAIL call by service"; echo "$out"; exit 1; }
    grep -q "node: 127.0.0.1:$NODE_PORT (service smoke)" <<<"$out" || { echo "FAIL answering node"; echo "$out"; exit 1; }
    echo "ok   ferry call by service name says which node answered"
    out=$("$FERRY" call smoke /math/add '{"a":2,"b":5}' --etcd "$ETCD_URL" --output json)
    python3 -c 'import json, sys; n = json.loads(sys.argv[1])["node"]; assert n == {"address": sys.argv[2], "service": "smoke"}, n' \
        "$out" "127.0.0.1:$NODE_PORT" || { echo "FAIL answering node in json"; echo "$out"; exit 1; }
    echo "ok   --output json names the node and service"
    GW_ETCD_PORT=$(free_port)
    "$FERRY" gateway --http "127.0.0.1:$GW_ETCD_PORT" --etcd "$ETCD_URL" >"$WORK/gateway-etcd.log" 2>&1 &
    GW_ETCD=$!
    PIDS="$PIDS $GW_ETCD"
    for _ in $(seq 1 100); do grep -qs "gateway listening" "$WORK/gateway-etcd.log" && break; sleep 0.1; done
    if command -v curl >/dev/null 2>&1; then
        out=$(curl -s -X POST "http://127.0.0.1:$GW_ETCD_PORT/math/add" -H 'Content-Type: application/json' -d '{"a":2,"b":5}')
        [[ $out == 7 ]] || { echo "FAIL gateway --etcd"; echo "$out"; cat "$WORK/gateway-etcd.log"; exit 1; }
        echo "ok   gateway --etcd finds the node by route"
    fi
    kill -INT $GW_ETCD
    wait $GW_ETCD
    kill -INT $NODE
    wait $NODE
    "$FERRY" ls --etcd "$ETCD_URL" | grep -q "no services registered" || { echo "FAIL deregistration on Ctrl-C"; exit 1; }
    echo "ok   deregistered on Ctrl-C"
    WS_NODE_PORT=$(free_port); WS_NODE_WS=$(free_port)
    "$FERRY" serve --listen "127.0.0.1:$WS_NODE_PORT" --ws "127.0.0.1:$WS_NODE_WS" --etcd "$ETCD_URL" --service smokews >"$WORK/ws-node.log" 2>&1 &
    WS_NODE=$!
    PIDS="$PIDS $WS_NODE"
    for _ in $(seq 1 100); do [[ $(grep -c "registered as smokews" "$WORK/ws-node.log" 2>/dev/null) == 2 ]] && break; sleep 0.1; done
    "$FERRY" ls --etcd "$ETCD_URL" | grep -q "ws://127.0.0.1:$WS_NODE_WS/ws" \
        || { echo "FAIL serve --ws --etcd registers the WebSocket listener"; "$FERRY" ls --etcd "$ETCD_URL"; cat "$WORK/ws-node.log"; exit 1; }
    echo "ok   serve --ws --etcd registers both listeners"
    kill -INT $WS_NODE
    wait $WS_NODE
    kill $ETCD
    wait $ETCD 2>/dev/null || true
fi
echo "== cli smoke passed"
