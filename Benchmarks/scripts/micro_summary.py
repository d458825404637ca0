#!/usr/bin/env python3
"""Condenses package-benchmark's markdown output (`--format markdown`) into one table: wall time
and mallocs per message for each micro-benchmark.

    micro_summary.py micro-full.md > micro.md
"""

import re
import sys


def main():
    text = open(sys.argv[1]).read()
    host = re.search(r"Host '.*?' with .*", text)
    rows = []
    for section in re.split(r"^### ", text, flags=re.M)[1:]:
        name = section.splitlines()[0].strip()
        metrics = {}
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 9 and not cells[0].startswith(":") and cells[0] != "Metric":
                metrics[cells[0]] = cells[1:]
        wall = next((v for k, v in metrics.items() if k.startswith("Time (wall clock)")), None)
        mallocs = next((v for k, v in metrics.items() if k.startswith("Malloc (total)")), None)
        if wall and mallocs:
            # columns: p0 p25 p50 p75 p90 p99 p100 samples
            rows.append((name, wall[2], wall[4], wall[5], mallocs[2], wall[7]))
    print("Wall time (ns) and mallocs per message, one message per iteration"
          + (f" ({host.group(0).removesuffix(', running:')})" if host else "") + ":")
    print()
    print("| benchmark | wall p50 (ns) | wall p90 (ns) | wall p99 (ns) | mallocs per message | samples |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| {} | {} | {} | {} | {} | {} |".format(*row))


if __name__ == "__main__":
    main()
