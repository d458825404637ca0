#!/usr/bin/env python3
"""Turns the JSON lines of a benchmark run into the markdown sections of BENCHMARKS.md and a
chart. Each section sits between marker comments, so a rerun replaces it and leaves the rest of
the file alone.

    report.py --results DIR --markdown ../BENCHMARKS.md --chart benchmarks-chart.svg
"""

import argparse
import json
import os
import re
import sys

SYSTEMS = ["nio", "ferry", "netrpc", "grpc"]
NAMES = {
    "nio": "raw NIO (ceiling)",
    "ferry": "Ferry",
    "netrpc": "Go net/rpc",
    "grpc": "grpc-swift-2",
    "ferry-raw": "Ferry, raw body",
    "nio-protobuf": "raw NIO + protobuf work",
}
POINTS = [(1, False), (100, False), (500, False), (1000, False), (100, True)]


def load_jsonl(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def key(row):
    system = row["system"]
    if system == "ferry" and row.get("codec") == "raw":
        system = "ferry-raw"
    return system, row["concurrency"], bool(row["one_connection_per_caller"])


def fmt(value, digits=0):
    return f"{value:,.{digits}f}"


def verdict_ratio(value, bar):
    """`value` with two decimals, or three where two would round it onto the bar it misses or
    meets (0.896 against 0.9 shows as 0.896×, not 0.90×)."""
    text = f"{value:.2f}"
    if float(text) == bar and value != bar:
        text = f"{value:.3f}"
    return text + "×"


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "–"


def rounds_of(rows):
    """Each point's rows in the order they were measured: index i is round i + 1."""
    groups = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def median_rows(rows):
    """One row per point: the round with the median QPS (the lower middle for an even count),
    with the QPS of every round attached as `qps_rounds`."""
    chosen = {}
    for k, group in rounds_of(rows).items():
        ordered = sorted(group, key=lambda r: r["qps"])
        row = dict(ordered[(len(ordered) - 1) // 2])
        row["qps_rounds"] = [r["qps"] for r in group]
        chosen[k] = row
    return chosen


def paired(rounds, a, b, value):
    """`value(a_row, b_row)` for each round both points were measured in, in round order. The
    systems take turns at each point within a round, so a round's ratio compares the two under
    the same conditions of the machine."""
    return [value(x, y) for x, y in zip(rounds.get(a, []), rounds.get(b, []))]


def per_round(values):
    """`; rounds a · b · c` for the measured column, or nothing with fewer than two rounds."""
    if len(values) < 2:
        return ""
    return "; rounds " + " · ".join(f"{v:.2f}×" for v in values)


def callers_sentence(rows):
    """Where the Swift clients' callers ran, from the rows' `callers` field."""
    on_loop = sorted({NAMES.get(key(r)[0], r["system"]) for r in rows if r.get("callers") == "loop"})
    on_pool = sorted({NAMES.get(key(r)[0], r["system"]) for r in rows if r.get("callers") == "pool"})
    parts = []
    if on_loop:
        parts.append("the callers of " + ", ".join(on_loop) + " run on their connections' event loops")
    if on_pool:
        parts.append("those of " + ", ".join(on_pool) + " on Swift's cooperative pool")
    return ("; ".join(parts) + "; ") if parts else ""


def e2e_section(rows, meta):
    by = median_rows(rows)
    rounds = max(len(r["qps_rounds"]) for r in by.values())
    out = []
    out.append(f"Run {meta.get('date', '?')} on {meta.get('machine', '?')}: `{meta.get('command', '?')}`. "
               f"{meta.get('duration', '?')} s measured per point after a {meta.get('warmup', '?')} s warm-up, "
               f"{rounds} round(s) over the whole matrix with the systems taking turns at each point, the median round shown; "
               "every process has 2 event-loop threads (GOMAXPROCS=2 for Go); "
               f"{callers_sentence(rows)}"
               "client and server are separate processes on 127.0.0.1 and share the machine's 2 cores. "
               f"Load average (1 min) before the run {meta.get('load_before', '?')}, after it {meta.get('load_after', '?')} "
               "(anything above about 2 is other work on the machine: the ratios within the run are what to read).")
    out.append("")
    out.append("QPS and latency (µs) per point; ratios are to the raw NIO ceiling at the same point.")
    out.append("")
    out.append("| concurrency | connections | system | QPS | QPS of each round | × ceiling QPS | mean | p50 | p99 | × ceiling p99 | p999 | max | errors |")
    out.append("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    systems = ["nio", "nio-protobuf", "ferry", "ferry-raw", "netrpc", "grpc"]
    for concurrency, per_caller in POINTS + [(c, p) for (s, c, p) in sorted(by) if (c, p) not in POINTS and False]:
        ceiling = by.get(("nio", concurrency, per_caller))
        for system in systems:
            r = by.get((system, concurrency, per_caller))
            if r is None:
                continue
            l = r["latency_us"]
            conns = f"{r['connections']} (1 per caller)" if per_caller else str(r["connections"])
            out.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                concurrency, conns, NAMES.get(system, system), fmt(r["qps"]),
                " / ".join(f"{q / 1000:.1f}k" for q in r["qps_rounds"]),
                ratio(r["qps"], ceiling["qps"]) if ceiling else "–",
                fmt(l["mean"], 0), fmt(l["p50"], 0), fmt(l["p99"], 0),
                ratio(l["p99"], ceiling["latency_us"]["p99"]) if ceiling else "–",
                fmt(l["p999"], 0), fmt(l["max"], 0), r["errors"]))
    out.append("")
    out.append("![QPS and p99 latency against concurrency](Benchmarks/benchmarks-chart.svg)")
    return "\n".join(out)


def micro_rows(path):
    """The rows of micro.md's table: name -> (wall p50 ns, mallocs per message)."""
    rows = {}
    if not os.path.exists(path):
        return rows
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].replace(".", "").isdigit():
            rows[cells[0]] = (float(cells[1]), float(cells[4]))
    return rows


def targets_section(e2e, micro, idle):
    by = median_rows(e2e)
    rounds = rounds_of(e2e)

    def get(system, c=100, per_caller=False):
        return by.get((system, c, per_caller))

    def qps_rounds(a, b):
        return per_round(paired(rounds, a, b, lambda x, y: x["qps"] / y["qps"]))

    def p99_rounds(a, b):
        return per_round(paired(rounds, a, b, lambda x, y: x["latency_us"]["p99"] / y["latency_us"]["p99"]))

    def headline(system):
        return system, 100, False

    lines = ["| target (issue 3) | measured in this run | met |", "|---|---|---|"]

    def row(name, measured, ok):
        lines.append(f"| {name} | {measured} | {'yes' if ok else '**no**'} |")

    f, n, g, go = get("ferry"), get("nio"), get("grpc"), get("netrpc")
    if f and n:
        v = f["qps"] / n["qps"]
        row("Ferry QPS ≥ 0.85 × raw NIO ceiling (c=100, 4 connections)",
            f"{verdict_ratio(v, 0.85)} ({fmt(f['qps'])} vs {fmt(n['qps'])}{qps_rounds(headline('ferry'), headline('nio'))})", v >= 0.85)
    if f and go:
        v = f["qps"] / go["qps"]
        row("Ferry QPS ≥ 1.0 × Go net/rpc (c=100, 4 connections)",
            f"{verdict_ratio(v, 1.0)} ({fmt(f['qps'])} vs {fmt(go['qps'])}{qps_rounds(headline('ferry'), headline('netrpc'))})", v >= 1.0)
    if f and g:
        v = f["qps"] / g["qps"]
        row("Ferry QPS ≥ 6 × grpc-swift-2 (c=100, 4 connections)",
            f"{verdict_ratio(v, 6.0)} ({fmt(f['qps'])} vs {fmt(g['qps'])}{qps_rounds(headline('ferry'), headline('grpc'))})", v >= 6.0)
    if f and n:
        v = f["latency_us"]["p99"] / n["latency_us"]["p99"]
        row("Ferry p99 ≤ 1.5 × ceiling p99 (c=100, 4 connections)",
            f"{verdict_ratio(v, 1.5)} ({fmt(f['latency_us']['p99'])} µs vs {fmt(n['latency_us']['p99'])} µs"
            f"{p99_rounds(headline('ferry'), headline('nio'))})", v <= 1.5)
    f1000 = get("ferry", 1000)
    if f and f1000:
        v = f1000["qps"] / f["qps"]
        row("Ferry QPS at c=1000 ≥ 0.9 × its c=100 QPS",
            f"{verdict_ratio(v, 0.9)} ({fmt(f1000['qps'])} vs {fmt(f['qps'])}{qps_rounds(('ferry', 1000, False), headline('ferry'))})", v >= 0.9)
    ferry_idle = [r for r in idle if r["system"] == "ferry"]
    if ferry_idle:
        at_100k = next((r for r in ferry_idle if r["requested"] == 100_000), None)
        measured = [r for r in ferry_idle if r.get("bytes_per_connection")]
        largest = max(measured, key=lambda r: r["connected"]) if measured else None
        if at_100k and at_100k.get("bytes_per_connection"):
            v = at_100k["bytes_per_connection"] / 1024
            row("≤ 8 KB server RSS per idle Ferry session at 100k sessions", f"{v:.1f} KiB", v <= 8)
        elif largest:
            v = largest["bytes_per_connection"] / 1024
            lines.append(f"| ≤ 8 KB server RSS per idle Ferry session at 100k sessions | 100k cannot be opened here "
                         f"(descriptor limit 20,000); {v:.1f} KiB at {fmt(largest['connected'])} sessions, heartbeats on | "
                         f"**not verified** at 100k; {'met' if v <= 8 else '**not met**'} at {fmt(largest['connected'])} |")
    like = get("nio-protobuf")
    if f and like:
        # Context for the first and fourth rows, not a target of the issue: the same ceiling
        # doing the workload's protobuf work, which every RPC system must do.
        v = f["qps"] / like["qps"]
        p = f["latency_us"]["p99"] / like["latency_us"]["p99"]
        lines.append(f"| (context) Ferry against raw NIO with the workload's protobuf work (c=100, 4 connections) | "
                     f"QPS {v:.2f}× ({fmt(f['qps'])} vs {fmt(like['qps'])}), p99 {p:.2f}×; that ceiling is "
                     f"{like['qps'] / n['qps']:.2f}× of the echo's QPS | – |")
    encode_decode = micro.get("FrameEncodeDecode")
    if encode_decode:
        v = encode_decode[1]
        row("≤ 4 allocations per encode + decode of a message with a 581-byte body",
            f"{v:.0f} (FrameEncodeDecode, mallocs per message)", v <= 4)
    return "\n".join(lines)


def chart(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The same figures give the same file: SVG ids from a fixed salt, not a random one.
    plt.rcParams["svg.hashsalt"] = "ferry-bench"

    by = median_rows(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"nio": "#444444", "ferry": "#d9480f", "netrpc": "#1c7ed6", "grpc": "#2b8a3e", "ferry-raw": "#f08c00"}
    for system in SYSTEMS + ["ferry-raw"]:
        xs = [c for (c, p) in POINTS if not p and (system, c, p) in by]
        if not xs:
            continue
        qps = [by[(system, c, False)]["qps"] for c in xs]
        p99 = [by[(system, c, False)]["latency_us"]["p99"] / 1000 for c in xs]
        style = "--" if system == "ferry-raw" else "-"
        left.plot(xs, qps, style, marker="o", color=colors[system], label=NAMES[system])
        right.plot(xs, p99, style, marker="o", color=colors[system], label=NAMES[system])
        per_caller = by.get((system, 100, True))
        if per_caller:
            left.plot([100], [per_caller["qps"]], marker="s", fillstyle="none", color=colors[system], linestyle="none")
            right.plot([100], [per_caller["latency_us"]["p99"] / 1000], marker="s", fillstyle="none",
                       color=colors[system], linestyle="none")
    for axis in (left, right):
        axis.set_xscale("log")
        axis.set_xlabel("concurrent callers (4 connections; hollow square: c=100, 1 connection per caller)")
        axis.grid(True, which="both", alpha=0.3)
        axis.xaxis.label.set_fontsize(8)
    left.set_ylabel("calls per second")
    left.set_title("QPS")
    right.set_ylabel("p99 latency (ms)")
    right.set_yscale("log")
    right.set_title("p99 latency")
    left.legend(fontsize=8)
    fig.suptitle("581-byte BenchmarkMessage, loopback, 2 cores, 2 event-loop threads per process", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, metadata={"Date": None, "Creator": None})


def micro_section(path, meta):
    if not os.path.exists(path):
        return None
    text = open(path).read().strip()
    head = f"Run {meta.get('date', '?')}: `swift package benchmark --target FerryMicroBenchmarks` inside `Benchmarks/`."
    return head + "\n\n" + text


def idle_section(rows, meta):
    if not rows:
        return None
    out = [f"Run {meta.get('date', '?')}: `Benchmarks/idle.sh`. Each connection makes one call, then stays idle; "
           "server RSS (VmRSS) is read before the first connection and once all are open.", "",
           "| server | connections asked | connections open | RSS before (MiB) | RSS after (MiB) | RSS per connection | note |",
           "|---|---:|---:|---:|---:|---:|---|"]
    order = {"ferry": 0, "nio": 1}
    for r in sorted(rows, key=lambda r: (order.get(r["system"], 2), r["requested"])):
        per = f"{r['bytes_per_connection'] / 1024:.1f} KiB" if r.get("bytes_per_connection") else "–"
        out.append("| {} | {} | {} | {} | {} | {} | {} |".format(
            NAMES.get(r["system"], r["system"]), fmt(r["requested"]), fmt(r.get("connected", 0)),
            f"{r['rss_before_kb'] / 1024:.1f}" if r.get("rss_before_kb") else "–",
            f"{r['rss_after_kb'] / 1024:.1f}" if r.get("rss_after_kb") else "–",
            per, r.get("note", "")))
    return "\n".join(out)


def replace_section(document, name, body):
    begin, end = f"<!-- ferry-bench:{name}:begin -->", f"<!-- ferry-bench:{name}:end -->"
    block = f"{begin}\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document)
    return document.rstrip() + "\n\n" + block + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", required=True, help="the run's results folder")
    parser.add_argument("--markdown", required=True, help="BENCHMARKS.md to update")
    parser.add_argument("--chart", required=True, help="the chart file to write (svg or png)")
    args = parser.parse_args()

    meta = {}
    meta_path = os.path.join(args.results, "meta.json")
    if os.path.exists(meta_path):
        meta = json.load(open(meta_path))
    document = open(args.markdown).read() if os.path.exists(args.markdown) else "# Benchmarks\n"

    e2e = load_jsonl(os.path.join(args.results, "e2e.jsonl"))
    if e2e:
        chart(e2e, args.chart)
        document = replace_section(document, "e2e", e2e_section(e2e, meta))
    micro = micro_section(os.path.join(args.results, "micro.md"), meta)
    if micro:
        document = replace_section(document, "micro", micro)
    idle_rows = load_jsonl(os.path.join(args.results, "idle.jsonl"))
    idle = idle_section(idle_rows, meta)
    if idle:
        document = replace_section(document, "idle", idle)
    if e2e or idle_rows:
        targets = targets_section(e2e, micro_rows(os.path.join(args.results, "micro.md")), idle_rows)
        document = replace_section(document, "targets", targets)
    with open(args.markdown, "w") as f:
        f.write(document)
    print(f"updated {args.markdown} and {args.chart}", file=sys.stderr)


if __name__ == "__main__":
    main()
