#!/usr/bin/env bash
# Two builds of ferry-bench side by side, as run.sh measures a point: Ferry at c = 100 over 4
# connections with the workload's protobuf body, and the same with the body passed through raw.
# Each build's server runs for the whole measurement (2 event-loop threads), each build's client
# loads its own server, and the builds take turns: before, after, before, after, ... ROUNDS
# rounds of each point. Prints every round and the medians with the after/before ratios.
#
#   Benchmarks/scripts/ab.sh BEFORE/ferry-bench AFTER/ferry-bench
#   DURATION=4 WARMUP=2 ROUNDS=5 Benchmarks/scripts/ab.sh ...   # the defaults (run.sh's DURATION and WARMUP)
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 BEFORE-ferry-bench AFTER-ferry-bench" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")/.." && pwd)
bins=("$1" "$2")
labels=(before after)
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
THREADS=2
results="$here/results/ab-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results"
out="$results/ab.jsonl"
: >"$out"
echo "results in $results"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
ports=(9731 9732)
for i in 0 1; do
    log="$results/server-${labels[$i]}.log"
    "${bins[$i]}" server --system ferry --port "${ports[$i]}" --threads "$THREADS" >"$log" 2>&1 &
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
            report=$("${bins[$i]}" client --system ferry --port "${ports[$i]}" --threads "$THREADS" \
                --codec "$codec" --concurrency 100 --connections 4 \
                --duration "$DURATION" --warmup "$WARMUP" --json)
            python3 -c 'import json, sys
r = json.loads(sys.argv[1]); r["build"] = sys.argv[2]; r["round"] = int(sys.argv[3])
print(json.dumps(r))' "$report" "${labels[$i]}" "$round" | tee -a "$out"
            sleep 1
        done
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
points = (("protobuf", "Ferry"), ("raw", "Ferry, raw body"))
def pick(codec, build):
    return [r for r in rows if r["codec"] == codec and r["build"] == build]
def figures(r):
    return r["qps"], r["latency_us"]["p50"], r["latency_us"]["p99"]
print("\n| point | round | QPS before | QPS after | p50 µs before | p50 µs after | p99 µs before | p99 µs after |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for codec, name in points:
    for b, a in zip(pick(codec, "before"), pick(codec, "after")):
        (bq, b50, b99), (aq, a50, a99) = figures(b), figures(a)
        print(f"| {name} | {b['round']} | {bq:,.0f} | {aq:,.0f} | {b50:,.0f} | {a50:,.0f} | {b99:,.0f} | {a99:,.0f} |")
print("\nMedians of the rounds, after/before (bars: QPS at least 0.97x, p99 at most 1.05x):\n")
print("| point | QPS before | QPS after | × QPS | p50 µs before / after | p99 µs before | p99 µs after | × p99 | errors | bars |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
for codec, name in points:
    before, after = pick(codec, "before"), pick(codec, "after")
    (bq, b50, b99), (aq, a50, a99) = (
        [statistics.median(f[k] for f in map(figures, runs)) for k in range(3)] for runs in (before, after))
    errors = sum(r["errors"] for r in before + after)
    verdict = "met" if aq / bq >= 0.97 and a99 / b99 <= 1.05 else "missed"
    print(f"| {name} | {bq:,.0f} | {aq:,.0f} | {aq / bq:.3f}× | {b50:,.0f} / {a50:,.0f} | {b99:,.0f} | {a99:,.0f} | "
          f"{a99 / b99:.3f}× | {errors} | {verdict} |")
PY
