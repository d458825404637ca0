#!/usr/bin/env bash
# Two builds of ferry-bench side by side, as run.sh measures a point: Ferry at c = 100 over 4
# connections with the workload's protobuf body, and the same with the body passed through raw.
# Each build's server runs for the whole measurement (2 event-loop threads), each build's client
# loads its own server, and the builds take turns: before, after, before, after, ... ROUNDS
# rounds of each point. Prints every round and the medians with the after/before ratios.
#
# The two sides may be one binary in two configurations: SERVER_ARGS_BEFORE, SERVER_ARGS_AFTER,
# CLIENT_ARGS_BEFORE and CLIENT_ARGS_AFTER are appended to that side's server and client
# commands (split on spaces; empty by default), and LABEL_BEFORE and LABEL_AFTER name the sides
# in the output (default: before, after). BAR_QPS and BAR_P99 are the verdict's bars: QPS at
# least BAR_QPS times before's, p99 at most BAR_P99 times before's (default 0.97 and 1.05).
#
#   Benchmarks/scripts/ab.sh BEFORE/ferry-bench AFTER/ferry-bench
#   DURATION=4 WARMUP=2 ROUNDS=5 Benchmarks/scripts/ab.sh ...   # the defaults (run.sh's DURATION and WARMUP)
#   SERVER_ARGS_BEFORE=--no-stats CLIENT_ARGS_BEFORE=--no-stats \
#   SERVER_ARGS_AFTER=--observe CLIENT_ARGS_AFTER=--observe BAR_QPS=0.95 \
#   LABEL_BEFORE=off LABEL_AFTER=observed Benchmarks/scripts/ab.sh BIN BIN
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 BEFORE-ferry-bench AFTER-ferry-bench" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
bins=("$1" "$2")
labels=(before after)
names=("${LABEL_BEFORE:-before}" "${LABEL_AFTER:-after}")
server_args=("${SERVER_ARGS_BEFORE:-}" "${SERVER_ARGS_AFTER:-}")
client_args=("${CLIENT_ARGS_BEFORE:-}" "${CLIENT_ARGS_AFTER:-}")
BAR_QPS=${BAR_QPS:-0.97}
BAR_P99=${BAR_P99:-1.05}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
THREADS=2
results="$here/results/ab-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
out="$results/ab.jsonl"
: >"$out"
echo "results in $results"
for i in 0 1; do
    echo "${labels[$i]} (${names[$i]}): ${bins[$i]} server [${server_args[$i]}] client [${client_args[$i]}]"
done

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
ports=(9731 9732)
for i in 0 1; do
    log="$results/server-${labels[$i]}.log"
    read -r -a extra <<<"${server_args[$i]}"
    "${bins[$i]}" server --system ferry --port "${ports[$i]}" --threads "$THREADS" ${extra[@]+"${extra[@]}"} >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do
        if grep -q '^listening' "$log"; then break; fi
        kill -0 "${pids[$i]}" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    grep -q '^listening' "$log" || { echo "server ${labels[$i]} did not start" >&2; exit 1; }
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((round = 1; round <= ROUNDS; round++)); do
    for codec in protobuf raw; do
        for i in 0 1; do
            read -r -a extra <<<"${client_args[$i]}"
            report=$("${bins[$i]}" client --system ferry --port "${ports[$i]}" --threads "$THREADS" \
                --codec "$codec" --concurrency 100 --connections 4 \
                --duration "$DURATION" --warmup "$WARMUP" --json ${extra[@]+"${extra[@]}"} \
                2>>"$results/client-${labels[$i]}.log")
            python3 -c 'import json, sys
r = json.loads(sys.argv[1]); r["build"] = sys.argv[2]; r["round"] = int(sys.argv[3])
print(json.dumps(r))' "$report" "${labels[$i]}" "$round" | tee -a "$out"
            sleep 1
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" "${names[0]}" "${names[1]}" "$BAR_QPS" "$BAR_P99" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
nb, na = sys.argv[2], sys.argv[3]
bar_qps, bar_p99 = float(sys.argv[4]), float(sys.argv[5])
points = (("protobuf", "Ferry"), ("raw", "Ferry, raw body"))
def pick(codec, build):
    return [r for r in rows if r["codec"] == codec and r["build"] == build]
def figures(r):
    return r["qps"], r["latency_us"]["p50"], r["latency_us"]["p99"]
print(f"\nbefore: {nb}; after: {na}")
print(f"\n| point | round | QPS {nb} | QPS {na} | × QPS | p50 µs {nb} | p50 µs {na} | p99 µs {nb} | p99 µs {na} |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for codec, name in points:
    for b, a in zip(pick(codec, "before"), pick(codec, "after")):
        (bq, b50, b99), (aq, a50, a99) = figures(b), figures(a)
        print(f"| {name} | {b['round']} | {bq:,.0f} | {aq:,.0f} | {aq / bq:.3f}× | {b50:,.0f} | {a50:,.0f} | {b99:,.0f} | {a99:,.0f} |")
print(f"\nMedians of the rounds, {na}/{nb} (bars: QPS at least {bar_qps}x, p99 at most {bar_p99}x):\n")
print(f"| point | QPS {nb} | QPS {na} | × QPS | p50 µs {nb} / {na} | p99 µs {nb} | p99 µs {na} | × p99 | errors | bars |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for codec, name in points:
    before, after = pick(codec, "before"), pick(codec, "after")
    (bq, b50, b99), (aq, a50, a99) = (
        [statistics.median(f[k] for f in map(figures, runs)) for k in range(3)] for runs in (before, after))
    errors = sum(r["errors"] for r in before + after)
    verdict = "met" if aq / bq >= bar_qps and a99 / b99 <= bar_p99 else "missed"
    print(f"| {name} | {bq:,.0f} | {aq:,.0f} | {aq / bq:.3f}× | {b50:,.0f} / {a50:,.0f} | {b99:,.0f} | {a99:,.0f} | "
          f"{a99 / b99:.3f}× | {errors} | {verdict} |")
PY
