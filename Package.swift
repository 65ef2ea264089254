// swift-tools-version:5.9
import PackageDescription

// Herd: a distributed training orchestrator for Llama 2.
// Layout (see README): system libraries as C modules, one library `Herd`
// split into folders by concept, and the `herd` command line.
let package = Package(
    name: "Herd",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Herd", targets: ["Herd"]),
        .executable(name: "herd", targets: ["HerdCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // herd serve: the HTTP API, the dashboard and /metrics.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Already in the graph through Hummingbird; named here because HerdServe
        // imports them itself (its connection handlers, its TLS configuration).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // System libraries, found through pkg-config (Debian's -dev packages).
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        // zlib: gzip-compressed corpora (herd data prepare).
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        // glibc's posix_spawn extensions (new sessions, closing inherited descriptors).
        .systemLibrary(name: "CPosix"),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        // Generation's products and attention for AVX-512, chosen at run time
        // (Swift builds for the baseline x86-64; C can target one function).
        .target(name: "CKernels"),
        // Release builds keep Swift's bounds checks and preconditions (no
        // -Ounchecked): the tests run the code that ships, for about 2% of
        // training time (docs/benchmarks.md).
        .target(
            name: "Herd",
            // ArgumentParser: a pipeline's stages are typed herd commands (Pipeline/StageCommand.swift).
            dependencies: ["COpenBLAS", "CKernels", "CMPI", "CZstd", "CZlib", "CSQLite", "CPosix", "Yams",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The coordinator's HTTP server (herd serve), apart from the library
        // the workers run, so that training code never links a web server.
        .target(
            name: "HerdServe",
            dependencies: ["Herd", .product(name: "Hummingbird", package: "hummingbird"),
                           // herd serve --tls-cert/--tls-key: HTTPS through swift-nio-ssl
                           // (HerdServe only; the workers' library never links TLS).
                           .product(name: "HummingbirdTLS", package: "hummingbird"),
                           // Its connection handlers (Sources/HerdServe/ConnectionLimits.swift).
                           .product(name: "HummingbirdCore", package: "hummingbird"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        .executableTarget(
            name: "HerdCLI",
            dependencies: ["Herd", "HerdServe", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "HerdTests", dependencies: ["Herd", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    ]
)
