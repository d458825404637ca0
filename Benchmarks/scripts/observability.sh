#!/usr/bin/env bash
# What observability costs, with ab.sh (Ferry at c = 100 over 4 connections, protobuf and raw
# body, the two sides taking turns round by round):
#
#   observe   one build, everything off (--no-stats) against metrics into a Prometheus registry,
#             every call traced by a recording tracer, and statistics (--observe); bar: QPS 0.95x
#   stats     one build, everything off against the defaults (statistics on); bar: QPS 0.98x
#   baseline  a build from before observability against this build with the defaults, then
#             against this build with everything off (only when BASELINE is given); bar: QPS 0.97x
#
#   Benchmarks/scripts/observability.sh [observe] [stats] [baseline]   # default: all of them
#   BIN=path/ferry-bench BASELINE=path/ferry-bench ROUNDS=7 Benchmarks/scripts/observability.sh
#
# BIN defaults to this package's release build; ROUNDS, DURATION and WARMUP go to ab.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$here/.build/release/ferry-bench}
export ROUNDS=${ROUNDS:-7}
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(observe stats baseline)

for part in "${parts[@]}"; do
    case "$part" in
    observe)
        echo "== everything off against metrics, tracing and statistics on"
        SERVER_ARGS_BEFORE=--no-stats CLIENT_ARGS_BEFORE=--no-stats \
            SERVER_ARGS_AFTER=--observe CLIENT_ARGS_AFTER=--observe \
            LABEL_BEFORE=off LABEL_AFTER=observed BAR_QPS=0.95 BAR_P99=1.10 \
            "$here/scripts/ab.sh" "$BIN" "$BIN"
        ;;
    stats)
        echo "== everything off against the defaults (statistics on)"
        SERVER_ARGS_BEFORE=--no-stats CLIENT_ARGS_BEFORE=--no-stats \
            LABEL_BEFORE=off LABEL_AFTER=defaults BAR_QPS=0.98 BAR_P99=1.05 \
            "$here/scripts/ab.sh" "$BIN" "$BIN"
        ;;
    baseline)
        if [ -z "${BASELINE:-}" ]; then
            echo "baseline: set BASELINE to a ferry-bench built before observability" >&2
            continue
        fi
        echo "== before observability against the defaults"
        LABEL_BEFORE=baseline LABEL_AFTER=defaults "$here/scripts/ab.sh" "$BASELINE" "$BIN"
        echo "== before observability against everything off"
        SERVER_ARGS_AFTER=--no-stats CLIENT_ARGS_AFTER=--no-stats \
            LABEL_BEFORE=baseline LABEL_AFTER=off "$here/scripts/ab.sh" "$BASELINE" "$BIN"
        ;;
    *)
        echo "unknown part $part (observe, stats, baseline)" >&2
        exit 2
        ;;
    esac
done
