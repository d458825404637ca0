import ArgumentParser
import FerryEtcd
import Logging

@main
struct FerryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Ferry: symmetric RPC and push between peers.",
        subcommands: [DemoCommand.self, ServeCommand.self, CallCommand.self, ListCommand.self]
    )
}

/// Options every subcommand shares.
struct LoggingOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical. At debug every message is logged.")
    var logLevel: Logger.Level = .warning

    func bootstrap() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// The etcd endpoints option shared by the commands that use discovery.
struct EtcdOptions: ParsableArguments {
    @Option(name: .customLong("etcd"), help: "etcd endpoint, e.g. http://127.0.0.1:2379; repeat for more.")
    var endpoints: [String] = []

    /// A registry on the given endpoints, or nil when none was given.
    func registry(logger: Logger) -> FerryEtcdRegistry? {
        guard !endpoints.isEmpty else { return nil }
        let all = endpoints.flatMap { $0.split(separator: ",").map(String.init) }
        return FerryEtcdRegistry(client: FerryEtcdClient(endpoints: all), logger: logger)
    }
}
