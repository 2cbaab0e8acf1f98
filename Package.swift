// swift-tools-version:6.0
import PackageDescription

// Layering (see docs/DESIGN.md):
//   alti (thin) -> AltiCLI -> AltiCore (pure engine) + AltiAPI + AltiStorage
//   exactly one Swift module in front of each C library:
//     AltiCrypto -> CLibCrypto, AltiNet -> CCurl, AltiArchive -> CLibArchive
//   alti-emulator (thin) -> AltiEmulator (Hummingbird, GraphQL): never linked into `alti`.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "alti",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "alti", targets: ["alti"]),
        .executable(name: "alti-emulator", targets: ["alti-emulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/GraphQLSwift/GraphQL", from: "4.3.0"),
        // Hummingbird brings these in; the emulator imports them directly, so it declares them.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
    ],
    targets: [
        // MARK: C libraries from Debian, one system module each
        .systemLibrary(
            name: "CLibCrypto", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(
            name: "CLibArchive", pkgConfig: "libarchive",
            providers: [.apt(["libarchive-dev"])]),

        // MARK: The only Swift modules that import the C modules
        .target(name: "AltiCrypto", dependencies: ["CLibCrypto"], swiftSettings: swiftSettings),
        .target(name: "AltiNet", dependencies: ["CCurl"], swiftSettings: swiftSettings),
        .target(name: "AltiArchive", dependencies: ["CLibArchive"], swiftSettings: swiftSettings),

        // MARK: Pure libraries
        // Request signing and verification for S3 SigV4 query auth and OSS V1/V4 (shared by the
        // client and the emulator; pinned by the published vectors).
        .target(name: "AltiSigning", dependencies: ["AltiCrypto"], swiftSettings: swiftSettings),
        // The engine: scan, hash, manifest, journal, diff, plan, execute. No HTTP, no C imports.
        .target(
            name: "AltiCore",
            dependencies: ["AltiCrypto", "AltiArchive"],
            swiftSettings: swiftSettings),
        // GraphQL client: operations as types over an HTTP transport protocol.
        .target(name: "AltiAPI", dependencies: ["AltiNet", "AltiCore"], swiftSettings: swiftSettings),
        // Byte uploads: S3 pre-signed PUT, OSS signed PUT.
        .target(
            name: "AltiStorage", dependencies: ["AltiNet", "AltiSigning", "AltiCrypto", "AltiCore", "AltiAPI"],
            swiftSettings: swiftSettings),

        // MARK: The CLI
        // The git commit for `alti --version`, written before every build by the StampCommit plugin.
        .target(name: "AltiBuildInfo", swiftSettings: swiftSettings, plugins: ["StampCommit"]),
        .plugin(name: "StampCommit", capability: .buildTool()),
        .target(
            name: "AltiCLI",
            dependencies: [
                "AltiCore", "AltiAPI", "AltiStorage", "AltiNet", "AltiBuildInfo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        .executableTarget(name: "alti", dependencies: ["AltiCLI"], swiftSettings: swiftSettings),

        // MARK: The emulator (Hummingbird + GraphQL live here and in tests only)
        .target(
            name: "AltiEmulator",
            dependencies: [
                "AltiSigning", "AltiCrypto",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GraphQL", package: "GraphQL"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources/altizure.graphql")],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "alti-emulator",
            dependencies: [
                "AltiEmulator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),

        // MARK: Tests
        .target(
            name: "AltiTestSupport",
            dependencies: ["AltiEmulator", "AltiCore"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "AltiCoreTests", dependencies: ["AltiCore", "AltiArchive", "AltiCrypto", "AltiTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "AltiSigningTests", dependencies: ["AltiSigning", "AltiCrypto"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "AltiNetTests",
            dependencies: ["AltiNet", "AltiAPI", "AltiStorage", "AltiTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "AltiEmulatorTests",
            dependencies: ["AltiEmulator", "AltiSigning", "AltiTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "AltiCLITests",
            // AltiEmulator is imported directly (stats, faults): declared, so a change of its types
            // rebuilds these tests instead of linking stale copies of them.
            dependencies: ["AltiCLI", "AltiCore", "AltiArchive", "AltiEmulator", "AltiTestSupport"],
            // Golden files are read from the source tree by path (#filePath), not bundled.
            exclude: ["Golden"],
            swiftSettings: swiftSettings),
    ]
)
