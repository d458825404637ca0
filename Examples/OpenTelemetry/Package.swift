// swift-tools-version:6.2
import Foundation
import PackageDescription

// The Ferry package is two folders up; a path dependency's identity is its folder's name.
let ferryPackage = URL(fileURLWithPath: Context.packageDirectory)
    .deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

// Ferry with OpenTelemetry: metrics and traces exported over OTLP/HTTP by swift-otel. An example
// of its own, so that Ferry's modules never depend on swift-otel.
let package = Package(
    name: "FerryOpenTelemetryExample",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .executableTarget(
            name: "OTelExample",
            dependencies: [
                .product(name: "Ferry", package: ferryPackage),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        )
    ]
)
