#!/usr/bin/env python3
"""CPU time per call of each system's server and client at one load point: the server's
utime + stime from /proc/PID/stat across the client's run, and the client's from its rusage.
On a 2-core machine shared by both ends, this is what bounds QPS.

    cpu_per_call.py [--concurrency 100] [--connections 4] [--duration 8] [--systems nio,ferry,netrpc,grpc]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--systems", default="nio,ferry,netrpc,grpc")
    args = parser.parse_args()
    bin_path = subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], cwd=HERE, text=True).strip()
    bench = os.path.join(bin_path, "ferry-bench")
    gobin = os.path.join(HERE, "go-netrpc", "go-netrpc")
    env = dict(os.environ, GOMAXPROCS="2")
    print("| system | QPS | server CPU µs per call | client CPU µs per call | both |")
    print("|---|---:|---:|---:|---:|")
    port = 9401
    for system in args.systems.split(","):
        if system == "netrpc":
            server_cmd = [gobin, "server", "--port", str(port)]
            client_cmd = [gobin, "client"]
        else:
            server_cmd = [bench, "server", "--system", system, "--port", str(port)]
            client_cmd = [bench, "client", "--system", system]
        server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True, env=env)
        server.stdout.readline()  # "listening ..."
        client_cmd += ["--port", str(port), "--concurrency", str(args.concurrency), "--connections",
                       str(args.connections), "--duration", str(args.duration), "--warmup", str(args.warmup), "--json"]
        before_server = cpu_seconds(server.pid)
        before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = subprocess.check_output(client_cmd, text=True, env=env)
        after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        after_server = cpu_seconds(server.pid)
        server.terminate()
        server.wait()
        report = json.loads(output.strip().splitlines()[-1])
        # Warm-up calls are not counted in the report but cost CPU: scale by the whole run.
        calls = report["qps"] * (args.duration + args.warmup)
        client_cpu = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime + before_children.ru_stime)
        server_us = (after_server - before_server) / calls * 1e6
        client_us = client_cpu / calls * 1e6
        print(f"| {system} | {report['qps']:,.0f} | {server_us:.1f} | {client_us:.1f} | {server_us + client_us:.1f} |")
        sys.stdout.flush()
        port += 1
        time.sleep(1)


if __name__ == "__main__":
    main()
