import Logging

/// A logger that drops everything, for peers whose logs a test does not look at.
public func quietLogger() -> Logger {
    Logger(label: "ferry.test") { _ in SwiftLogNoOpLogHandler() }
}
