import ArgumentParser
import FerryEtcd
import Logging

/// The etcd endpoints option shared by the commands that use discovery.
struct EtcdOptions: ParsableArguments {
    @Option(name: .customLong("etcd"), help: "etcd endpoint, e.g. http://127.0.0.1:2379; repeat for more.")
    var endpoints: [String] = []

    /// The endpoints, with comma-separated lists split.
    var urls: [String] { endpoints.flatMap { $0.split(separator: ",").map(String.init) } }

    /// A registry on the given endpoints whose requests give up on an endpoint after
    /// `requestTimeout`, or nil when none was given.
    func registry(logger: Logger, requestTimeout: Duration = .seconds(5)) -> FerryEtcdRegistry? {
        guard !urls.isEmpty else { return nil }
        return FerryEtcdRegistry(client: FerryEtcdClient(endpoints: urls, requestTimeout: requestTimeout), logger: logger)
    }
}
