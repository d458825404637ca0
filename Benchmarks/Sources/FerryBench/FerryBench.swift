import ArgumentParser
import Foundation

/// `ferry-bench`: the end-to-end benchmark of Ferry and its baselines on the shared workload
/// (`shared/bench/BENCH.md`). A server and a client run as separate processes on loopback.
///
/// ```sh
/// ferry-bench server --system ferry --port 9100
/// ferry-bench client --system ferry --port 9100 --concurrency 100 --connections 4 --duration 10 --json
/// ```
@main
struct FerryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-bench",
        abstract: "Ferry against the raw-NIO ceiling and grpc-swift-2, on the 581-byte BenchmarkMessage.",
        subcommands: [ServerCommand.self, ClientCommand.self, IdleCommand.self, HTTPCommand.self]
    )
}

/// Writes one line to standard output at once, unbuffered: scripts wait for these lines.
func emitLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
