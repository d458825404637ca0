#!/usr/bin/env python3
"""The gateway benchmark's tables (scripts/gateway.sh).

    gateway_report.py --results DIR                          # markdown tables of a run
    gateway_report.py --wrk FILE --target NAME --round N     # one wrk output as a JSON line
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys


def wrk_row(path, target, round_):
    text = open(path).read()

    def duration_us(value, unit):
        return float(value) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]

    percentiles = {}
    for match in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M):
        percentiles[match.group(1)] = duration_us(match.group(2), match.group(3))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    requests = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "target": target,
        "round": round_,
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(requests.group(1)) if requests else 0,
        "p50_us": percentiles.get("50"),
        "p99_us": percentiles.get("99"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in socket.groups()) if socket else 0,
    }


def kilo(value):
    return f"{value / 1000:.1f}k"


def rows(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def ratio_cell(pairs, digits=2):
    """The median ratio, then each round's."""
    ratios = [a / b for a, b in pairs if b]
    if not ratios:
        return "–", None
    median = statistics.median(ratios)
    return f"{median:.{digits}f}× (rounds {' · '.join(f'{r:.2f}×' for r in ratios)})", median


def ws_table(results):
    data = rows(os.path.join(results, "ws.jsonl"))
    if not data:
        return
    print("### Ferry over WebSocket against TCP\n")
    print("| concurrency | connections | TCP QPS (median; rounds) | WebSocket QPS (median; rounds) | × QPS | TCP p99 µs | WebSocket p99 µs | × p99 | errors |")
    print("|---:|---:|---:|---:|---|---:|---:|---|---:|")
    points = sorted({(r["concurrency"], r["connections"], r["one_connection_per_caller"]) for r in data}, key=lambda p: p[2])
    for concurrency, connections, per_caller in points:
        by_round = {}
        for r in data:
            if (r["concurrency"], r["connections"], r["one_connection_per_caller"]) == (concurrency, connections, per_caller):
                by_round.setdefault(r["round"], {})[r["system"]] = r
        rounds = [v for _, v in sorted(by_round.items()) if "ferry" in v and "ferry-ws" in v]
        tcp = [v["ferry"] for v in rounds]
        ws = [v["ferry-ws"] for v in rounds]
        qps, _ = ratio_cell([(w["qps"], t["qps"]) for w, t in zip(ws, tcp)])
        p99, _ = ratio_cell([(w["latency_us"]["p99"], t["latency_us"]["p99"]) for w, t in zip(ws, tcp)])
        med = lambda xs: statistics.median(xs)
        fmt_rounds = lambda xs: " / ".join(f"{x / 1000:.1f}k" for x in xs)
        errors = sum(r["errors"] for r in tcp + ws)
        print(
            f"| {concurrency} | {connections}{' (1 per caller)' if per_caller else ''} "
            f"| {med([t['qps'] for t in tcp]):,.0f} ({fmt_rounds([t['qps'] for t in tcp])}) "
            f"| {med([w['qps'] for w in ws]):,.0f} ({fmt_rounds([w['qps'] for w in ws])}) | {qps} "
            f"| {med([t['latency_us']['p99'] for t in tcp]):,.0f} | {med([w['latency_us']['p99'] for w in ws]):,.0f} | {p99} | {errors} |"
        )
    print()


def http_table(results):
    data = rows(os.path.join(results, "http.jsonl"))
    if not data:
        return
    by_round = {}
    for r in data:
        by_round.setdefault(r["round"], {})[r["target"]] = r
    rounds = [v for _, v in sorted(by_round.items()) if "plain" in v and "gateway" in v]
    plain = [v["plain"] for v in rounds]
    gateway = [v["gateway"] for v in rounds]
    qps, _ = ratio_cell([(g["rps"], p["rps"]) for g, p in zip(gateway, plain)])
    p99, _ = ratio_cell([(g["p99_us"], p["p99_us"]) for g, p in zip(gateway, plain)])
    print("### HTTP through the gateway against a plain Hummingbird route\n")
    print("| server | requests/s (median) | each round | p50 µs | p99 µs | non-2xx | socket errors |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, series in (("plain Hummingbird 2", plain), ("FerryGateway → Ferry service", gateway)):
        print(
            f"| {name} | {statistics.median([s['rps'] for s in series]):,.0f} | {' / '.join(kilo(s['rps']) for s in series)} "
            f"| {statistics.median([s['p50_us'] for s in series]):,.0f} | {statistics.median([s['p99_us'] for s in series]):,.0f} "
            f"| {sum(s['non_2xx'] for s in series)} | {sum(s['socket_errors'] for s in series)} |"
        )
    print(f"\nGateway against plain: requests/s {qps}; p99 {p99}.\n")


def idle_table(results):
    data = []
    for path in sorted(glob.glob(os.path.join(results, "idle-*", "idle.jsonl"))):
        round_ = path.split(os.sep)[-2].split("-")[-1]
        for r in rows(path):
            r["round"] = round_
            data.append(r)
    if not data:
        return
    print("### Idle WebSocket sessions\n")
    print("| server | sessions asked | sessions open (each round) | RSS before → after (MiB, median round) | per session, KiB (median; rounds) | per session, KB | note |")
    print("|---|---:|---|---|---|---:|---|")
    keys = []
    for r in data:
        if (r["system"], r["requested"]) not in keys:
            keys.append((r["system"], r["requested"]))
    for system, requested in keys:
        series = [r for r in data if (r["system"], r["requested"]) == (system, requested) and "bytes_per_connection" in r]
        if not series:
            continue
        per = [r["bytes_per_connection"] for r in series]
        median = statistics.median(per)
        middle = min(series, key=lambda r: abs(r["bytes_per_connection"] - median))
        print(
            f"| {system} | {requested:,} | {' / '.join(format(r['connected'], ',') for r in series)} "
            f"| {middle['rss_before_kb'] / 1024:.1f} → {middle['rss_after_kb'] / 1024:.1f} "
            f"| {median / 1024:.2f} ({' · '.join(f'{p / 1024:.2f}' for p in per)}) | {median / 1000:.2f} | {middle['note']} |"
        )
    print()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--results")
    parser.add_argument("--wrk")
    parser.add_argument("--target")
    parser.add_argument("--round", type=int)
    args = parser.parse_args()
    if args.wrk:
        print(json.dumps(wrk_row(args.wrk, args.target, args.round)))
        return
    if not args.results:
        parser.error("--results or --wrk is needed")
    ws_table(args.results)
    http_table(args.results)
    idle_table(args.results)


if __name__ == "__main__":
    sys.exit(main())
