#!/usr/bin/env bash
# Fuzzes the frame and message decoders with libFuzzer for a bounded time.
#   scripts/fuzz.sh [SECONDS]   (default 60)
# The seed corpus is built from the wire test vectors; findings (crash-* files) land in
# Fuzz/findings/.
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
SECONDS_TO_RUN=${1:-60}

swift build -c release --product FerryFrameFuzzer \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library 2>&1 | grep -E "error|Compiling|Build" || true
FUZZER="$(swift build -c release --show-bin-path)/FerryFrameFuzzer"

mkdir -p corpus-work findings
cp -n corpus/* corpus-work/ 2>/dev/null || true
"$FUZZER" corpus-work -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -rss_limit_mb=2048 \
    -artifact_prefix=findings/ -print_final_stats=1
