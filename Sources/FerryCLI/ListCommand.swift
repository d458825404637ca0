import ArgumentParser
import FerryEtcd
import Logging

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List the services, nodes and routes registered in etcd."
    )

    @OptionGroup var etcd: EtcdOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if etcd.urls.isEmpty { throw ValidationError("give the etcd endpoint with --etcd URL") }
    }

    func run() async throws {
        logging.bootstrap()
        let registry = etcd.registry(logger: Logger(label: "ferry.ls"))!
        let nodes = try await registry.nodes(service: nil)
        if nodes.isEmpty {
            print("no services registered")
            return
        }
        for (service, members) in Dictionary(grouping: nodes, by: \.service).sorted(by: { $0.key < $1.key }) {
            print("\(service)  (\(members.count) node\(members.count == 1 ? "" : "s"))")
            for node in members.sorted(by: { $0.address.description < $1.address.description }) {
                var line = "  \(node.address)  weight \(node.weight)"
                if !node.version.isEmpty { line += "  version \(node.version)" }
                if !node.metadata.isEmpty { line += "  " + node.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
                print(line)
                if !node.routes.isEmpty { print("    routes: " + node.routes.joined(separator: ", ")) }
            }
        }
    }
}
