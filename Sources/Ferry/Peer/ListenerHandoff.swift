import Logging
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Listening sockets passed from a process to the copy of itself that replaces it.
///
/// The parent starts the child with the listening sockets as fds 3, 4, … (and no other
/// descriptor beyond stdio), announced as `FERRY_INHERITED_LISTENERS=<fd>@<address>;…`, plus a
/// pipe announced as `FERRY_RESTART_READY_FD=<fd>`, and waits until the child writes one byte to
/// that pipe: the child does so once it listens on every inherited socket. Then the parent stops accepting and drains.
/// Both processes accept from the same kernel socket meanwhile, so no connection is refused.
/// The child holds the only write end of the pipe, so the parent reads end of file as soon as the
/// child exits without being ready.
enum ListenerHandoff {
    static let listenersVariable = "FERRY_INHERITED_LISTENERS"
    static let readyVariable = "FERRY_RESTART_READY_FD"

    /// What this process inherited, parsed once from the environment.
    private static let inherited = Mutex<Inheritance>(Inheritance.fromEnvironment())

    private struct Inheritance {
        var descriptors: [String: CInt] = [:]
        var readyDescriptor: CInt?

        static func fromEnvironment() -> Inheritance {
            var result = Inheritance()
            if let text = getenv(listenersVariable).map({ String(cString: $0) }) {
                for entry in text.split(separator: ";") {
                    let parts = entry.split(separator: "@", maxSplits: 1)
                    if parts.count == 2, let fd = CInt(parts[0]) { result.descriptors[String(parts[1])] = fd }
                }
            }
            result.readyDescriptor = getenv(readyVariable).flatMap { CInt(String(cString: $0)) }
            // Children of this process must not see stale descriptors.
            unsetenv(listenersVariable)
            unsetenv(readyVariable)
            for fd in Array(result.descriptors.values) + [result.readyDescriptor].compactMap({ $0 }) {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
            return result
        }
    }

    /// Takes the inherited socket for `address`, if there is one; tells the parent once every
    /// inherited socket is taken.
    static func adopt(_ address: FerryAddress) -> CInt? {
        let (fd, readyFD): (CInt?, CInt?) = inherited.withLock { state in
            guard let fd = state.descriptors.removeValue(forKey: address.description) else { return (nil, nil) }
            guard state.descriptors.isEmpty, let ready = state.readyDescriptor else { return (fd, nil) }
            state.readyDescriptor = nil
            return (fd, ready)
        }
        if let readyFD {
            var byte: UInt8 = 1
            _ = write(readyFD, &byte, 1)
            close(readyFD)
        }
        return fd
    }

    // MARK: Opening a listening socket

    /// Opens a listening socket for `address` (close-on-exec, so only deliberate duplicates are
    /// inherited). A Unix socket path is taken over only from a listener that is gone: a path a
    /// live listener holds, or a file that is not a socket, is refused.
    static func openListeningSocket(_ address: FerryAddress, backlog: CInt) throws(FerryLifecycleError) -> CInt {
        do {
            return try openSocket(address, backlog: backlog)
        } catch let error as FerryLifecycleError {
            throw error
        } catch {
            throw .listenFailed("\(address): \(error)")
        }
    }

    private static func openSocket(_ address: FerryAddress, backlog: CInt) throws -> CInt {
        let socketAddress: SocketAddress
        switch address {
        case .tcp(let host, let port), .webSocket(let host, let port, _):
            socketAddress = try SocketAddress.makeAddressResolvingHost(host, port: port)
        case .unix(let path):
            socketAddress = try SocketAddress(unixDomainSocketPath: path)
            try removeStaleSocket(at: path, socketAddress, for: address)
        }
        let fd = try makeSocket(socketAddress)
        do {
            if !address.isUnixDomainSocket {
                var one: CInt = 1
                guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size)) == 0 else {
                    throw POSIXFailure(call: "setsockopt", errno: errno)
                }
            }
            let bound = socketAddress.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
            guard bound == 0 else { throw POSIXFailure(call: "bind", errno: errno) }
            guard listen(fd, backlog) == 0 else { throw POSIXFailure(call: "listen", errno: errno) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// A close-on-exec stream socket of `address`'s family.
    private static func makeSocket(_ address: SocketAddress) throws -> CInt {
        #if canImport(Darwin)
        let type = SOCK_STREAM
        #else
        let type = CInt(SOCK_STREAM.rawValue) | CInt(SOCK_CLOEXEC.rawValue)
        #endif
        let fd = socket(CInt(address.protocol.rawValue), type, 0)
        guard fd >= 0 else { throw POSIXFailure(call: "socket", errno: errno) }
        return fd
    }

    /// Makes way for a Unix socket at `path`: removes a socket file no listener answers on (its
    /// process is gone), and refuses a path a live listener holds or that is not a socket.
    private static func removeStaleSocket(at path: String, _ socketAddress: SocketAddress, for address: FerryAddress) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw POSIXFailure(call: "stat", errno: errno)
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw FerryLifecycleError.listenFailed("\(address): the path exists and is not a socket; it is left as it is")
        }
        guard try !answersConnections(socketAddress) else {
            throw FerryLifecycleError.listenFailed("\(address) is in use: a listener answers on it")
        }
        guard unlink(path) == 0 || errno == ENOENT else { throw POSIXFailure(call: "unlink", errno: errno) }
    }

    /// Whether a listener accepts connections at `address`, asked without blocking: a refused
    /// connection means the socket file outlived its listener.
    private static func answersConnections(_ address: SocketAddress) throws -> Bool {
        let fd = try makeSocket(address)
        defer { close(fd) }
        guard fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0 else { throw POSIXFailure(call: "fcntl", errno: errno) }
        let connected = address.withSockAddr { pointer, length in connect(fd, pointer, socklen_t(length)) }
        if connected == 0 { return true }
        switch errno {
        case EAGAIN, EINPROGRESS: return true  // a listener with a full accept queue
        case ECONNREFUSED, ENOENT: return false
        default: throw POSIXFailure(call: "connect", errno: errno)
        }
    }

    // MARK: Starting a successor

    /// What a successor runs: this program again, with this process's arguments, by default.
    struct SuccessorCommand: Sendable {
        var executable: String
        var arguments: [String]

        static var thisProgram: SuccessorCommand { SuccessorCommand(executable: "/proc/self/exe", arguments: CommandLine.arguments) }
    }

    /// Starts a copy of this process that inherits `listeners` (requested address → socket),
    /// and waits until it listens on all of them.
    ///
    /// A successor that exits first fails this at once, with its exit status; one that is not
    /// ready within `readyTimeout`, or closes its pipe without being ready, or whose start is
    /// cancelled, is killed. Every successor that ends here is reaped; a ready one lives on.
    static func startSuccessor(
        listeners: [(address: FerryAddress, fd: CInt)], readyTimeout: Duration, logger: Logger,
        command: SuccessorCommand = .thisProgram
    ) async throws {
        try Task.checkCancellation()
        var pipeEnds: [CInt] = [0, 0]
        guard pipe(&pipeEnds) == 0 else {
            throw FerryLifecycleError.restartFailed("\(POSIXFailure(call: "pipe", errno: errno))")
        }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        // The successor receives exactly stdin, stdout, stderr and these, as fds 3, 4, …: the
        // listening sockets, then the ready pipe.
        let handedOver = listeners.map(\.fd) + [writeEnd]
        var entries: [String] = []
        for (index, listener) in listeners.enumerated() { entries.append("\(3 + index)@\(listener.address)") }
        var environment = ProcessEnvironment.current.filter { !$0.hasPrefix("\(listenersVariable)=") && !$0.hasPrefix("\(readyVariable)=") }
        environment.append("\(listenersVariable)=\(entries.joined(separator: ";"))")
        environment.append("\(readyVariable)=\(3 + listeners.count)")
        let pid: pid_t
        do {
            pid = try spawn(command, environment: environment, handingOver: handedOver)
        } catch {
            close(readEnd)
            close(writeEnd)
            throw (error as? FerryLifecycleError) ?? .restartFailed("\(error)")
        }
        // From here the successor holds the only write end.
        close(writeEnd)
        logger.info("started a successor process", metadata: ["pid": "\(pid)", "listeners": "\(listeners.map { "\($0.address)" }.joined(separator: ";"))"])

        let readiness: Readiness
        do {
            readiness = try await waitForReadiness(readEnd, timeout: readyTimeout)
        } catch {
            let ending = await stop(pid)
            throw FerryLifecycleError.restartFailed("cannot read the readiness pipe of the successor (pid \(pid)): \(error); it \(ending)")
        }
        switch readiness {
        case .ready:
            return
        case .closed:
            let ending = await stop(pid)
            let reason = ending.wasStopped ? "closed its readiness pipe without being ready, and was stopped" : "\(ending) before it was ready"
            throw FerryLifecycleError.restartFailed("the successor (pid \(pid)) \(reason)")
        case .timedOut:
            let ending = await stop(pid)
            throw FerryLifecycleError.restartFailed("the successor (pid \(pid)) was not ready within \(readyTimeout) and \(ending)")
        case .cancelled:
            _ = await stop(pid)
            throw CancellationError()
        }
    }

    /// How the wait for a successor's ready byte ended.
    fileprivate enum Readiness: Sendable {
        case ready
        /// End of file: every write end is closed, and no byte came.
        case closed
        case timedOut
        case cancelled
    }

    /// Waits on an event loop for a byte or the end of file on `readEnd` (which it takes over
    /// and closes), for at most `timeout`, or until the task is cancelled.
    private static func waitForReadiness(_ readEnd: CInt, timeout: Duration) async throws -> Readiness {
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        let outcome = eventLoop.makePromise(of: Readiness.self)
        let channel: any Channel
        do {
            channel = try await NIOPipeBootstrap(group: eventLoop)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ReadinessHandler(outcome: outcome))
                    }
                }
                .takingOwnershipOfDescriptor(input: readEnd)
                .get()
        } catch {
            outcome.fail(error)
            throw error
        }
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { outcome.succeed(.timedOut) }
        let readiness = try await withTaskCancellationHandler {
            try await outcome.futureResult.get()
        } onCancel: {
            outcome.succeed(.cancelled)
        }
        timer.cancel()
        channel.close(promise: nil)
        return readiness
    }

    /// Reads the readiness pipe: one byte means ready, end of file means no successor will write.
    fileprivate final class ReadinessHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        private let outcome: EventLoopPromise<Readiness>

        init(outcome: EventLoopPromise<Readiness>) { self.outcome = outcome }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if Self.unwrapInboundIn(data).readableBytes > 0 { outcome.succeed(.ready) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            outcome.succeed(.closed)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            outcome.fail(error)
            context.close(promise: nil)
        }
    }

    /// How a successor that was not ready ended.
    private struct Ending: CustomStringConvertible {
        /// Whether it still ran when it was asked to stop (or was still on its way out).
        var wasRunning: Bool
        /// Its wait status, or nil when it could not be collected.
        var status: CInt?

        /// Whether the kill sent to stop it is what ended it.
        var wasStopped: Bool { wasRunning && status.map { $0 & 0x7f == SIGKILL } == true }

        var description: String {
            guard let status else { return "ended (its exit status is unknown)" }
            if wasStopped { return "was stopped" }
            let signal = status & 0x7f
            return signal == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
        }
    }

    /// Kills `pid` if it still runs, waits for it to end, and says how it ended. The wait blocks
    /// a thread of NIO's pool, not of the cooperative pool; it is short, as the process has
    /// exited or been killed (a kill does not change the status of one already on its way out).
    private static func stop(_ pid: pid_t) async -> Ending {
        var status: CInt = 0
        if waitpid(pid, &status, WNOHANG) == pid { return Ending(wasRunning: false, status: status) }
        kill(pid, SIGKILL)
        let eventLoop = MultiThreadedEventLoopGroup.singleton.next()
        // Not the async `runIfActive`: the caller may be cancelled, and the wait must run anyway.
        let waited = try? await NIOThreadPool.singleton.runIfActive(eventLoop: eventLoop) { () -> CInt? in
            var status: CInt = 0
            var result: pid_t
            repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
            return result == pid ? status : nil
        }.get()
        return Ending(wasRunning: true, status: waited ?? nil)
    }

    /// Spawns `command`; the child gets `descriptors` as fds 3, 4, … and no other descriptor
    /// beyond stdin, stdout and stderr.
    private static func spawn(_ command: SuccessorCommand, environment: [String], handingOver descriptors: [CInt]) throws -> pid_t {
        // Copies above any target number first, so moving them to 3, 4, … cannot clobber a
        // source that is still needed; the copies are closed with everything else above.
        let firstFree = CInt(3 + descriptors.count)
        var copies: [CInt] = []
        defer { for fd in copies { close(fd) } }
        for fd in descriptors {
            let copy = fcntl(fd, F_DUPFD_CLOEXEC, max(firstFree, 64))
            guard copy >= 0 else { throw POSIXFailure(call: "fcntl(F_DUPFD)", errno: errno) }
            copies.append(copy)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (index, copy) in copies.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, copy, CInt(3 + index))
        }
        try closeFrom(firstFree, in: &actions)

        let arguments = command.arguments
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        let result = posix_spawn(&pid, command.executable, &actions, nil, argv, envp)
        guard result == 0 else { throw POSIXFailure(call: "posix_spawn", errno: result) }
        return pid
    }

    /// Adds "close every fd from `lowest` up" to `actions` (glibc's
    /// `posix_spawn_file_actions_addclosefrom_np`, which the C module does not export).
    private static func closeFrom(_ lowest: CInt, in actions: inout posix_spawn_file_actions_t) throws {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            throw FerryLifecycleError.restartFailed("this C library cannot close inherited descriptors (needs glibc 2.34)")
        }
        let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
        let result = addCloseFrom(&actions, lowest)
        guard result == 0 else { throw POSIXFailure(call: "posix_spawn_file_actions_addclosefrom_np", errno: result) }
    }
}

@available(*, unavailable)
extension ListenerHandoff.ReadinessHandler: Sendable {}

/// The environment of this process as `NAME=value` strings.
private enum ProcessEnvironment {
    static var current: [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }
}

/// A failed system call.
struct POSIXFailure: Error, CustomStringConvertible {
    var call: String
    var errno: CInt

    var description: String { "\(call) failed: \(String(cString: strerror(errno)))" }
}
