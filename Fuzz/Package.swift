// swift-tools-version:6.0
import Foundation
import PackageDescription

/// The root package's identity is its folder name, lower-cased, whatever the checkout is called.
let rootPackage = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

// The fuzz targets live in their own package: they are built only with `-sanitize=fuzzer`
// (libFuzzer provides `main`), which the library's normal build must never see.
let package = Package(
    name: "FerryFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "..")],
    targets: [
        .executableTarget(
            name: "FerryFrameFuzzer",
            dependencies: [.product(name: "FerryCore", package: rootPackage)],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    ],
    swiftLanguageModes: [.v6]
)
