// swift-tools-version:5.7
// The utp Swift package: a thin, memory-safe layer over the C ABI in
// crates/utp-ffi/include/utp.h. Build the Rust library first:
//   cargo build --release -p utp-ffi
//   swift build -Xlinker -L../../target/release
import PackageDescription

let package = Package(
    name: "Utp",
    products: [
        .library(name: "Utp", targets: ["Utp"]),
    ],
    targets: [
        .systemLibrary(name: "CUtp", path: "Sources/CUtp"),
        .target(name: "Utp", dependencies: ["CUtp"], path: "Sources/Utp"),
        .testTarget(name: "UtpTests", dependencies: ["Utp"], path: "Tests/UtpTests"),
    ]
)
