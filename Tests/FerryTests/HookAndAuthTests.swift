import Ferry
import NIOCore
import Testing

@Suite("Hooks and auth")
struct HookAndAuthTests {
    struct Refused: Error {}

    @Test("an accept hook that throws closes the connection before anything is handled")
    func acceptHookRejects() async throws {
        let handled = Recorder<Int>()
        var configuration = FerryPeer.Configuration()
        configuration.hooks.onAccept = { _ in throw Refused() }
        let (server, listener) = try await makeServer(configuration) { router in
            router.call("/count") { (_: Void, _: FerryContext) in handled.append(1) }
        }

        let client = FerryPeer()
        let status = await statusThrown {
            let session = try await client.dial(listener.address)
            try await session.call("/count", (), as: Void.self, options: .timeout(.seconds(5)))
        }
        // Depending on timing the dial itself may see the close (105), or the call (102; a write
        // that races the reset is 104).
        let code = try #require(status?.code)
        #expect([.connectionClosed, .dialFailed, .writeFailed].contains(code), "got \(String(describing: status))")
        #expect(handled.count == 0)
        #expect(server.hub.count == 0)
        await client.close()
        await server.close()
    }

    @Test("a dial hook that throws makes dial throw and the session is never used")
    func dialHookRejects() async throws {
        let (server, listener) = try await makeServer()
        var configuration = FerryPeer.Configuration()
        configuration.hooks.onDial = { _ in throw Refused() }
        let client = FerryPeer(configuration: configuration)
        let status = await statusThrown { try await client.dial(listener.address) }
        #expect(status?.code == .dialFailed)
        #expect(client.hub.count == 0)

        var statusConfiguration = FerryPeer.Configuration()
        statusConfiguration.hooks.onDial = { _ in throw FerryStatus(code: 1403, message: "not today") }
        let statusClient = FerryPeer(configuration: statusConfiguration)
        let own = await statusThrown { try await statusClient.dial(listener.address) }
        #expect(own?.code == FerryStatus.Code(1403), "a status thrown by the hook is the dial error")
        #expect(statusClient.hub.count == 0)

        #expect(await eventually { server.hub.count == 0 }, "the server drops the refused connections")
        await client.close()
        await statusClient.close()
        await server.close()
    }

    @Test("a header-read hook that throws a status answers the CALL with it and the handler never runs")
    func headerReadHookRefuses() async throws {
        let handled = Recorder<String>()
        var configuration = FerryPeer.Configuration()
        configuration.hooks.onHeaderRead = { message, _ in
            if message.serviceMethod == "/guarded" { throw FerryStatus(code: 1403, message: "Forbidden", cause: "guarded") }
        }
        let pair = try await makePair(server: configuration) { router in
            router.call("/guarded") { (_: Void, ctx: FerryContext) in handled.append(ctx.serviceMethod) }
        }

        let reply = try await pair.session.callForReply("/guarded", (), options: .timeout(.seconds(5)))
        #expect(reply.status.code == FerryStatus.Code(1403))
        #expect(reply.status.message == "Forbidden")
        #expect(reply.status.cause == "guarded")
        #expect(reply.body.readableBytes == 0)
        #expect(handled.count == 0, "the handler must not run for a refused message")

        // Other routes and the session are unaffected.
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        await pair.close()
    }

    @Test("a before-write hook can add meta that the server sees")
    func beforeWriteAddsMeta() async throws {
        var clientConfiguration = FerryPeer.Configuration()
        clientConfiguration.hooks.beforeWrite = { message, _ in
            if message.type == .call { message.meta.set("X-Trace", "trace-\(message.seq)") }
        }
        let pair = try await makePair(client: clientConfiguration) { router in
            router.call("/trace") { (_: Void, ctx: FerryContext) in ctx.meta["X-Trace"] ?? "" }
        }
        #expect(try await pair.session.call("/trace", (), as: String.self) == "trace-1")
        #expect(try await pair.session.call("/trace", (), as: String.self) == "trace-2")
        await pair.close()
    }

    @Test("a before-write hook that throws fails that call locally and the session keeps working")
    func beforeWriteRefuses() async throws {
        let handled = Recorder<String>()
        var clientConfiguration = FerryPeer.Configuration()
        clientConfiguration.hooks.beforeWrite = { message, _ in
            if message.serviceMethod == "/blocked" { throw Refused() }
        }
        let pair = try await makePair(client: clientConfiguration) { router in
            router.call("/blocked") { (_: Void, ctx: FerryContext) in handled.append(ctx.serviceMethod) }
        }
        let status = await statusThrown { try await pair.session.call("/blocked", (), as: Void.self, options: .timeout(.seconds(5))) }
        #expect(status?.code == .writeFailed)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(handled.count == 0, "a refused call is never sent")
        await pair.close()
    }

    @Test("the disconnect hook runs exactly once per session, on both sides")
    func disconnectHookRunsOnce() async throws {
        let serverDisconnects = Recorder<String>()
        let clientDisconnects = Recorder<String>()
        var serverConfiguration = FerryPeer.Configuration()
        serverConfiguration.hooks.onDisconnect = { serverDisconnects.append($0.remoteAddress) }
        var clientConfiguration = FerryPeer.Configuration()
        clientConfiguration.hooks.onDisconnect = { clientDisconnects.append($0.remoteAddress) }
        let pair = try await makePair(server: serverConfiguration, client: clientConfiguration)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(serverDisconnects.count == 0)
        #expect(clientDisconnects.count == 0)

        await pair.session.close()
        #expect(await eventually { serverDisconnects.count >= 1 && clientDisconnects.count >= 1 })
        // Closing again, and closing both peers, must not run it a second time.
        await pair.session.close()
        await pair.close()
        #expect(serverDisconnects.count == 1)
        #expect(clientDisconnects.all == [pair.session.remoteAddress])
    }

    // MARK: Auth

    static func authServer() -> FerryPeer.Configuration {
        var configuration = FerryPeer.Configuration()
        configuration.auth = FerryAuth(verify: { token, _ in
            guard token == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized", cause: "bad token") }
            return "welcome"
        })
        return configuration
    }

    static func authClient(_ credential: String) -> FerryPeer.Configuration {
        var configuration = FerryPeer.Configuration()
        configuration.auth = FerryAuth(credential: { credential })
        return configuration
    }

    @Test("auth with the right credential lets the client call")
    func authSucceeds() async throws {
        let pair = try await makePair(server: Self.authServer(), client: Self.authClient("secret"))
        #expect(try await pair.session.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self) == 4)
        #expect(await eventually { pair.server.hub.count == 1 })
        await pair.close()
    }

    @Test("auth with a wrong credential: dial throws 401 and the server hub never holds the session")
    func authRefused() async throws {
        let hubCountDuringVerify = Recorder<Int>()
        let logs = LogStore()
        let handled = Recorder<Int>()
        let serverBox = Box<FerryPeer>()
        var configuration = FerryPeer.Configuration()
        configuration.auth = FerryAuth(verify: { token, _ in
            hubCountDuringVerify.append(serverBox.value?.hub.count ?? -1)
            guard token == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized", cause: "bad token") }
            return "welcome"
        })
        let (server, listener) = try await makeServer(configuration, logger: logs.logger(label: "server")) { router in
            router.call("/count") { (_: Void, _: FerryContext) in handled.append(1) }
        }
        serverBox.value = server

        let client = FerryPeer(configuration: Self.authClient("wrong"))
        let status = await statusThrown { try await client.dial(listener.address) }
        #expect(status?.code == .unauthorized)
        #expect(client.hub.count == 0)

        #expect(await closeReasonLogged(logs, containing: "auth refused") != nil, "the server closes the refused session")
        #expect(hubCountDuringVerify.all == [0], "the session is not in the hub while it is verified")
        #expect(server.hub.count == 0)
        #expect(handled.count == 0)
        await client.close()
        await server.close()
    }

    @Test("a raw client that sends a CALL before AUTH_CALL gets 401 and is disconnected")
    func callBeforeAuth() async throws {
        let handled = Recorder<Int>()
        let (server, listener) = try await makeServer(Self.authServer()) { router in
            router.call("/count") { (_: Void, _: FerryContext) in handled.append(1) }
        }
        let raw = try await RawConnection.connect(to: listener.address)
        try await raw.send(FerryMessage(type: .call, seq: 1, serviceMethod: "/count"))

        let reply = try #require(try await raw.nextMessage())
        #expect(reply.type == .reply)
        #expect(reply.seq == 1)
        #expect(reply.status.code == .unauthorized)
        #expect(await raw.waitUntilClosed(), "the server disconnects the client")
        #expect(handled.count == 0)
        #expect(server.hub.count == 0)
        await raw.close()
        await server.close()
    }

    @Test("a client that sends credentials to a server without auth is let in")
    func credentialWithoutServerAuth() async throws {
        let pair = try await makePair(client: Self.authClient("anything"))
        #expect(try await pair.session.call("/math/add", AddArgs(a: 2, b: 5), as: Int.self) == 7)
        await pair.close()
    }

    @Test("a connection that never authenticates is closed after the auth timeout")
    func authDeadline() async throws {
        var configuration = Self.authServer()
        configuration.auth?.timeout = .milliseconds(200)
        let logs = LogStore()
        let (server, listener) = try await makeServer(configuration, logger: logs.logger(label: "server"))
        let raw = try await RawConnection.connect(to: listener.address)
        #expect(await raw.waitUntilClosed(timeout: .seconds(5)), "the server drops a silent, unauthenticated connection")
        #expect(await closeReasonLogged(logs, containing: "no auth within") != nil, "server log: \(logs.all.map { "\($0.message) \($0.metadata)" })")
        #expect(server.hub.count == 0)
        await raw.close()
        await server.close()
    }

    @Test("closing the server peer also closes connections that have not authenticated yet")
    func closeClosesUnauthenticated() async throws {
        // The default auth timeout (10 s) is far beyond the bound below.
        let logs = LogStore()
        let (server, listener) = try await makeServer(Self.authServer(), logger: logs.logger(label: "server"))
        let raw = try await RawConnection.connect(to: listener.address)
        #expect(await logs.waitFor { $0.message == "session accepted" } != nil)

        await server.close()
        #expect(await raw.waitUntilClosed(timeout: .seconds(3)), "peer.close() must close every session, authenticated or not")
        await raw.close()
    }
}
