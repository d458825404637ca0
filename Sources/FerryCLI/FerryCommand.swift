import ArgumentParser

@main
struct FerryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry",
        abstract: "Ferry: symmetric RPC and push between peers.",
        version: FerryVersion.current,
        subcommands: [
            DemoCommand.self, ServeCommand.self, CallCommand.self, ListCommand.self, GatewayCommand.self, PushCommand.self,
            ListenCommand.self, RoomsCommand.self, TopCommand.self,
        ]
    )
}

/// The version of this release, printed by `ferry --version`.
enum FerryVersion {
    static let current = "0.1.0"
}
