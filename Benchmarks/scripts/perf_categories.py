#!/usr/bin/env python3
"""Shares of a Ferry server's CPU samples by part of the per-call path.

Reads `perf script` output (demangled: pipe it through `swift demangle --simplified`) on
standard input. Each sample goes to the first category whose pattern matches any frame of its
stack, so a sample of SwiftProtobuf inside a handler counts as SwiftProtobuf, not as the handler.
Prints markdown table rows: share, part.
"""
import collections
import re
import sys

CATEGORIES = [
    ("SwiftProtobuf decoding the request (`FerryProtobufCodec.message`)", r"FerryProtobufCodec\.(decode|message)"),
    ("SwiftProtobuf encoding the reply (`FerryProtobufCodec.body`)", r"FerryProtobufCodec\.(encode|body)"),
    ("the REPLY frame: `FerryRawProto.encodeMessage` into the tick's batch", r"FerryProto\.encodeMessage|FerryRawProto\.encodeFrame"),
    ("the CALL frame: `FerryRawProto.decodeMessage` (header, status, meta)", r"FerryProto\.decodeMessage|FerryRawProto\.decodeMessage"),
    ("the rest of the call's handling: admission, context, route lookup, deadline, the typed route, "
     "the workload's handler, freeing the messages, queueing the reply", r"FerrySession\.handleCall|FerrySession\.receive"),
    ("the flush at the end of the tick: `write(2)` of the batch", r"MessageEncoderHandler\.flush|flushNow"),
    ("reading the socket: `read(2)` and the frame decoder's buffer", r"readFromSocket|ByteToMessageHandler|readable"),
]
OTHER = "the rest: the event loop, timers, waking up, the kernel's scheduler"


def stacks(lines):
    stack = []
    for line in lines:
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line.startswith((" ", "\t")):
            stack.append(line.strip())
    if stack:
        yield stack


def main():
    counts = collections.Counter()
    total = 0
    for stack in stacks(sys.stdin):
        total += 1
        frames = "\n".join(stack)
        for name, pattern in CATEGORIES:
            if re.search(pattern, frames):
                counts[name] += 1
                break
        else:
            counts[OTHER] += 1
    for name in [name for name, _ in CATEGORIES] + [OTHER]:
        print(f"| {100 * counts[name] / max(total, 1):.0f} % | {name} |")


if __name__ == "__main__":
    main()
