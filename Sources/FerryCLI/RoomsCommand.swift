import ArgumentParser
import Ferry
import FerryGateway
import Foundation
import Logging

struct RoomsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rooms",
        abstract: "List a gateway's rooms and their members, through its inner listener.",
        discussion: """
            Examples, with ferry gateway --inner 127.0.0.1:5030 --rooms:
              ferry rooms 127.0.0.1:5030           # every room with members, and how many
              ferry rooms 127.0.0.1:5030 lobby     # the users in lobby
            Exits 1 when the gateway refuses (404: it has no rooms; start it with --rooms), 2 when \
            it cannot be reached.
            """
    )

    @Argument(help: "The gateway's inner listener (its --inner address): HOST:PORT or unix:PATH.")
    var address: String

    @Argument(help: "A room: list its members.")
    var room: String?

    func validate() throws {
        guard FerryAddress(address) != nil else { throw ValidationError("not an address: \(address) (HOST:PORT or unix:PATH)") }
    }

    func run() async throws {
        let peer = FerryPeer(configuration: .init(dialTimeout: .seconds(5)), logger: Logger(label: "ferry.rooms"))
        let outcome: Result<Void, any Error>
        do {
            try await list(through: peer)
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        await peer.close()
        try outcome.get()
    }

    private func list(through peer: FerryPeer) async throws {
        let session: FerrySession
        do {
            session = try await peer.dial(FerryAddress(address)!)
        } catch {
            FileHandle.standardError.write(Data("Error: dial failed: \((error as? FerryStatus).map { "\($0.explained)" } ?? "\(error)")\n".utf8))
            throw ExitCode(2)
        }
        do {
            if let room {
                let members: [String] = try await session.call(FerryGateway.InnerRoomRoute.members, room)
                print(members.isEmpty ? "no members in \(room)" : members.joined(separator: "\n"))
            } else {
                let rooms: [String: Int] = try await session.call(FerryGateway.InnerRoomRoute.list, ())
                if rooms.isEmpty { print("no rooms with members") }
                for (name, count) in rooms.sorted(by: { $0.key < $1.key }) {
                    print("\(name)  (\(count) member\(count == 1 ? "" : "s"))")
                }
            }
        } catch let status as FerryStatus {
            var message = "Error: \(status.explained)"
            if status.code == .notFound { message += "\nThe gateway has no rooms: start it with --rooms." }
            FileHandle.standardError.write(Data((message + "\n").utf8))
            throw ExitCode.failure
        }
    }
}
