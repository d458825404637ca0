// swift-tools-version:6.1
import Foundation
import PackageDescription

// The Ferry package is the parent folder. A path dependency's identity is the lower-cased name of
// its folder, which depends on where the repository was cloned, so it is read off the path.
let ferryPackage = URL(fileURLWithPath: Context.packageDirectory)
    .deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "FerryBenchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ferry-bench", targets: ["FerryBench"])
    ],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // The gateway's HTTP baseline: a plain Hummingbird 2 route. Without its default traits,
        // as the parent package declares it.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        // `ferry-bench --observe`: a recording tracer and the Prometheus registry metrics go to.
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // The shared workload: the generated `BenchmarkMessage`, its gRPC service and the filled-in
        // 581-byte message.
        .target(
            name: "BenchmarkProto",
            dependencies: [
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ],
            // Generated message code: its storage classes' fields are checked for exclusive
            // access at run time on every read and write (about 15 % of a server's CPU on this
            // workload). Generated code does not need the checks; every Swift system here shares
            // this module. BENCHMARKS.md gives the figures with and without.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .executableTarget(
            name: "FerryBench",
            dependencies: [
                "BenchmarkProto",
                .product(name: "Ferry", package: ferryPackage),
                .product(name: "FerryMicro", package: ferryPackage),
                .product(name: "FerryGateway", package: ferryPackage),
                .product(name: "FerryPrometheus", package: ferryPackage),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]
        ),
        // package-benchmark's micro-benchmarks. The target is not called FerryMicro, like its
        // folder, because the library has a FerryMicro module (the micro-service layer).
        .executableTarget(
            name: "FerryMicroBenchmarks",
            dependencies: [
                "BenchmarkProto",
                .product(name: "Ferry", package: ferryPackage),
                .product(name: "FerryCore", package: ferryPackage),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/FerryMicro",
            packageAccess: false,
            // The in-memory round trip goes through `FerryRouter.reply(to:context:exposeErrorDetails:)`,
            // which Ferry shares between its own modules with `package` access. Compiling this
            // target as part of Ferry's package (SwiftPM's package name: the identity with `-` as
            // `_`; `packageAccess: false` keeps SwiftPM from naming this package instead) lets it
            // call that entry point instead of copying it.
            swiftSettings: [.unsafeFlags(["-package-name", ferryPackage.replacingOccurrences(of: "-", with: "_")])],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
