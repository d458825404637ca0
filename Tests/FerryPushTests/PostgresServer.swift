import FerryTestSupport
import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL server on a free loopback port, with its data in a temporary
/// directory: initdb, then postgres, both as the `postgres` system user when the tests run as
/// root (PostgreSQL refuses to run as root).
///
/// One server runs for a suite with the ``PostgresServerScope`` trait (`.postgresServer`), and
/// is stopped when the suite ends: a server left running would keep the test process from
/// exiting, since the test library waits for every child process. Each test makes its own
/// database on it (``makeDatabase()``).
///
/// The server is started by a small shell wrapper whose standard input is a pipe only this
/// process writes to: should this process crash, the pipe closes, the wrapper stops the server
/// and removes its directory, so no server outlives the tests.
final class PostgresServer: Sendable {
    /// The server of the running suite (``PostgresServerScope``).
    @TaskLocal static var scoped: PostgresServer?

    /// The server of the running suite; fails in a suite without the `.postgresServer` trait.
    static func current() throws -> PostgresServer {
        guard let scoped else { throw StartFailure(description: "the suite needs the .postgresServer trait") }
        return scoped
    }

    /// The superuser initdb creates; loopback connections need no password.
    static let username = "postgres"

    let port: Int
    let root: TemporaryDirectory
    /// The wrapper's process ID.
    private let wrapper: pid_t
    /// This process' end of the wrapper's standard input; closing it stops the server.
    private let stopFD: Int32
    /// The wrapper's exit, once reaped.
    private let exited = Mutex(false)

    private init(port: Int, root: TemporaryDirectory, wrapper: pid_t, stopFD: Int32) {
        self.port = port
        self.root = root
        self.wrapper = wrapper
        self.stopFD = stopFD
    }

    struct StartFailure: Error, CustomStringConvertible {
        var description: String
    }

    /// initdb, postgres and the user to run them as.
    private struct Installation {
        var bin: String
        /// Run as this user (uid, gid) when this process is root.
        var account: (uid: uid_t, gid: gid_t)?
    }

    /// Where PostgreSQL's server programs are: Debian puts them under
    /// /usr/lib/postgresql/VERSION/bin, not on the PATH; the newest version wins.
    static func binDirectory() -> String? {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        let debian = versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        return (debian + path + ["/opt/homebrew/bin", "/usr/local/bin"]).first { directory in
            ["initdb", "postgres"].allSatisfy { FileManager.default.isExecutableFile(atPath: "\(directory)/\($0)") }
        }
    }

    private static func installation() throws -> Installation {
        guard let bin = binDirectory() else {
            throw StartFailure(
                description: "PostgreSQL's server programs (initdb, postgres) are not installed: install the `postgresql` package "
                    + "(apt-get install postgresql) to run the PostgreSQL mailbox tests")
        }
        guard geteuid() == 0 else { return Installation(bin: bin, account: nil) }
        guard let entry = getpwnam("postgres") else {
            throw StartFailure(
                description: "the tests run as root, which PostgreSQL refuses, and there is no `postgres` user to run it as "
                    + "(the `postgresql` package creates it)")
        }
        return Installation(bin: bin, account: (entry.pointee.pw_uid, entry.pointee.pw_gid))
    }

    /// Makes a data directory and starts a server on it; a start that fails because another
    /// process took the port between its choice and postgres' bind tries again on a fresh one.
    static func start() async throws -> PostgresServer {
        let installation = try installation()
        let root = try TemporaryDirectory()
        do {
            let data = root.path("data")
            let sockets = root.path("sockets")
            for directory in [data, sockets] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                if let account = installation.account, chown(directory, account.uid, account.gid) != 0 {
                    throw StartFailure(description: "cannot give \(directory) to the postgres user: errno \(errno)")
                }
            }
            try await onOwnThread {
                try runToEnd(
                    installation, "initdb",
                    ["-D", data, "-U", username, "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"], in: root)
            }
            var lastLog = ""
            attempts: for _ in 0..<5 {
                let port = try freePort()
                switch try await launch(installation, root: root, port: port) {
                case .running(let server):
                    return server
                case .exited(let log):
                    lastLog = log
                    guard log.contains("could not bind") || log.contains("already in use") else { break attempts }
                }
            }
            throw StartFailure(description: "postgres did not start:\n\(lastLog)")
        } catch {
            root.remove()
            throw error
        }
    }

    private enum Launch {
        case running(PostgresServer)
        case exited(log: String)
    }

    /// The wrapper: starts the command given to it, stops it (SIGINT: fast shutdown) when its
    /// standard input reaches end of file, and removes the directory once the server stopped
    /// because it was asked to.
    private static let wrapperScript = """
        dir="$1"; shift
        cd "$dir" || exit 1
        exec 3<&0
        "$@" </dev/null &
        pg=$!
        (read _ <&3; : > "$dir/stopping"; kill -INT "$pg" 2>/dev/null) &
        watcher=$!
        wait "$pg"
        status=$?
        kill "$watcher" 2>/dev/null
        if [ -e "$dir/stopping" ]; then rm -rf "$dir"; fi
        exit $status
        """

    private static func launch(_ installation: Installation, root: TemporaryDirectory, port: Int) async throws -> Launch {
        let logPath = root.path("postgres-\(port).log")
        let command =
            asUser(installation, "\(installation.bin)/postgres") + [
                "-D", root.path("data"), "-p", "\(port)", "-k", root.path("sockets"),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=500", "-c", "shared_buffers=16MB",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ]
        let (wrapper, stopFD) = try spawn(["/bin/sh", "-c", wrapperScript, "postgres-wrapper", root.url.path] + command, log: logPath)
        let server = PostgresServer(port: port, root: root, wrapper: wrapper, stopFD: stopFD)
        let ready = await eventually(timeout: .seconds(90)) {
            if !server.isRunning { return true }
            return await server.acceptsConnections()
        }
        guard ready, server.isRunning else {
            if server.isRunning { server.stop() } else { close(stopFD) }
            let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            return ready ? .exited(log: text) : .exited(log: "no connection within 90 seconds\n" + text)
        }
        return .running(server)
    }

    /// Starts `arguments` with a pipe as standard input (returns this process' end) and `log` as
    /// its output. Through posix_spawn rather than Foundation's Process, to give the child an
    /// empty signal mask: a shell that inherits this process' blocked SIGCHLD never returns
    /// from `wait`.
    private static func spawn(_ arguments: [String], log: String) throws -> (pid: pid_t, stopFD: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw StartFailure(description: "pipe: errno \(errno)") }
        // No other child may inherit either end (the wrapper gets its copy of the read end as
        // standard input), or the wrapper would not see end of file when this process lets go.
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let logFD = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard logFD >= 0 else { throw StartFailure(description: "cannot create \(log): errno \(errno)") }
        defer {
            close(fds[0])
            close(logFD)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var catchable = sigset_t()
        sigfillset(&catchable)
        sigdelset(&catchable, SIGKILL)
        sigdelset(&catchable, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &catchable)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_adddup2(&actions, logFD, 1)
        posix_spawn_file_actions_adddup2(&actions, logFD, 2)
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ)
        guard result == 0 else {
            close(fds[1])
            throw StartFailure(description: "cannot start \(arguments[0]): errno \(result)")
        }
        return (pid, fds[1])
    }

    /// Whether the wrapper (and so postgres) still runs; reaps it once it has exited.
    var isRunning: Bool {
        exited.withLock { exited in
            guard !exited else { return false }
            var status: Int32 = 0
            exited = waitpid(wrapper, &status, WNOHANG) == wrapper
            return !exited
        }
    }

    /// The command line that runs `program` as the postgres user when this process is root.
    private static func asUser(_ installation: Installation, _ program: String) -> [String] {
        guard installation.account != nil else { return [program] }
        // setpriv execs the program (no process in between), so the wrapper's signal reaches postgres.
        return ["/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", program]
    }

    private static func runToEnd(_ installation: Installation, _ program: String, _ arguments: [String], in root: TemporaryDirectory) throws {
        let (status, output) = try FerryTestSupport.runToEnd(asUser(installation, "\(installation.bin)/\(program)") + arguments, in: root.url)
        guard status == 0 else {
            throw StartFailure(description: "\(program) failed with status \(status):\n\(output)")
        }
    }

    /// Whether the server takes a session (it listens before it has finished starting).
    func acceptsConnections() async -> Bool {
        do {
            let connection = try await connect(database: "postgres")
            try? await connection.close()
            return true
        } catch {
            return false
        }
    }

    func connect(database: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(
            configuration: PostgresConnection.Configuration(
                host: "127.0.0.1", port: port, username: Self.username, password: nil, database: database, tls: .disable),
            id: 0, logger: quietLogger())
    }

    /// The client configuration of `database` on this server.
    func clientConfiguration(database: String, maximumConnections: Int = 8) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: "127.0.0.1", port: port, username: Self.username, password: nil, database: database, tls: .disable)
        configuration.options.maximumConnections = maximumConnections
        return configuration
    }

    /// A new empty database with a unique name, so tests running at once do not see each other.
    func makeDatabase() async throws -> String {
        let name = "ferry_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(20)
        try await execute("CREATE DATABASE \(name)", in: "postgres")
        return name
    }

    /// Runs `sql` (written by the test, no values from elsewhere) in `database`.
    func execute(_ sql: String, in database: String) async throws {
        let connection = try await connect(database: database)
        do {
            try await connection.query(PostgresQuery(unsafeSQL: sql), logger: quietLogger())
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
    }

    /// The first column of the first row of `sql` in `database`, as an integer.
    func integer(_ sql: String, in database: String) async throws -> Int64 {
        let connection = try await connect(database: database)
        do {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: quietLogger()).collect()
            try await connection.close()
            return try #require(rows.first).decode(Int64.self)
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Stops the server (fast shutdown: sessions are ended) and waits for it and its wrapper to
    /// exit; the wrapper removes the directory.
    func stop() {
        FileManager.default.createFile(atPath: root.path("stopping"), contents: nil)
        close(stopFD)
        // Also signal postgres itself, in case a child started elsewhere inherited the pipe.
        if let pidText = try? String(contentsOfFile: root.path("data/postmaster.pid"), encoding: .utf8),
            let pid = pidText.split(separator: "\n").first.flatMap({ pid_t($0) })
        {
            kill(pid, SIGINT)
        }
        exited.withLock { exited in
            guard !exited else { return }
            var status: Int32 = 0
            while waitpid(wrapper, &status, 0) == -1 && errno == EINTR {}
            exited = true
        }
    }

    static func freePort() throws -> Int { try freeLoopbackPort() }
}

/// Starts a ``PostgresServer`` for a suite, and stops it when the suite is done.
struct PostgresServerScope: SuiteTrait, TestScoping {
    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let server = try await PostgresServer.start()
        do {
            try await PostgresServer.$scoped.withValue(server) { try await function() }
        } catch {
            try? await onOwnThread { server.stop() }
            throw error
        }
        try await onOwnThread { server.stop() }
    }
}

extension Trait where Self == PostgresServerScope {
    /// A PostgreSQL server for the suite's tests (``PostgresServer/current()``).
    static var postgresServer: Self { Self() }
}
