import Foundation

/// Runs `command` (an executable path, then its arguments) in `directory` until it exits, and
/// returns its exit status and what it wrote to standard output and standard error together.
/// It blocks: from async code, call it through ``onOwnThread(_:)``.
public func runToEnd(_ command: [String], in directory: URL) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: command[0])
    process.arguments = Array(command.dropFirst())
    process.currentDirectoryURL = directory
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}
