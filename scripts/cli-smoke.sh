#!/usr/bin/env bash
# Runs the ferry command line as a user would: the demo, then a server and calls against it.
set -euo pipefail
cd "$(dirname "$0")/.."

swift build --product ferry >/dev/null
FERRY="$(swift build --show-bin-path)/ferry"

echo "== ferry demo"
"$FERRY" demo

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
echo "== cli smoke passed"
