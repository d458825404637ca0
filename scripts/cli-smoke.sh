#!/usr/bin/env bash
# Runs the ferry command line as a user would: the demo, then a server and calls against it.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --product ferry >/dev/null
FERRY="$(swift build --show-bin-path)/ferry"

echo "== ferry demo"
"$FERRY" demo
echo "== ferry demo --cluster"
"$FERRY" demo --cluster

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$FERRY" serve --listen "127.0.0.1:$PORT" >/tmp/ferry-smoke-serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
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
kill -INT $SERVER
wait $SERVER
trap - EXIT

if command -v etcd >/dev/null 2>&1; then
    echo "== discovery through etcd"
    free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
    ETCD_PORT=$(free_port); PEER_PORT=$(free_port); NODE_PORT=$(free_port)
    ETCD_DIR=$(mktemp -d)
    etcd --data-dir "$ETCD_DIR/data" --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" --listen-peer-urls "http://127.0.0.1:$PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-cluster "default=http://127.0.0.1:$PEER_PORT" \
        --log-level error >/dev/null 2>&1 &
    ETCD=$!
    trap 'kill $ETCD $NODE 2>/dev/null || true; rm -rf "$ETCD_DIR"' EXIT
    ETCD_URL="http://127.0.0.1:$ETCD_PORT"
    "$FERRY" serve --listen "127.0.0.1:$NODE_PORT" --etcd "$ETCD_URL" --service smoke >/tmp/ferry-smoke-node.log 2>&1 &
    NODE=$!
    for _ in $(seq 1 100); do
        if "$FERRY" ls --etcd "$ETCD_URL" 2>/dev/null | grep -q "127.0.0.1:$NODE_PORT"; then break; fi
        sleep 0.1
    done
    "$FERRY" ls --etcd "$ETCD_URL" | grep -q "smoke  (1 node)" || { echo "FAIL ferry ls"; "$FERRY" ls --etcd "$ETCD_URL"; exit 1; }
    echo "ok   ferry ls"
    out=$("$FERRY" call smoke /math/add '{"a":2,"b":5}' --etcd "$ETCD_URL")
    grep -q "body: 7" <<<"$out" || { echo "FAIL call by service"; echo "$out"; exit 1; }
    echo "ok   ferry call by service name"
    kill -INT $NODE
    wait $NODE
    "$FERRY" ls --etcd "$ETCD_URL" | grep -q "no services registered" || { echo "FAIL deregistration on Ctrl-C"; exit 1; }
    echo "ok   deregistered on Ctrl-C"
    kill $ETCD
    wait $ETCD 2>/dev/null || true
fi
echo "== cli smoke passed"
