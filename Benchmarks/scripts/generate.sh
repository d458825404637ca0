#!/usr/bin/env bash
# Regenerates the committed Swift code of the workload from Protos/ (run only when the protos
# change; the output is committed so builds need neither protoc nor the plugins).
#
#   protoc       Debian's protobuf-compiler
#   SWIFT_PLUGIN protoc-gen-swift, built from swift-protobuf 1.39.0:
#                git clone <swift-protobuf> /tmp/swift-protobuf && git -C /tmp/swift-protobuf checkout 1.39.0
#                (cd /tmp/swift-protobuf && swift build -c release --product protoc-gen-swift)
#   protoc-gen-grpc-swift-2 is built from this package's grpc-swift-protobuf dependency.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
SWIFT_PLUGIN=${SWIFT_PLUGIN:-/tmp/swift-protobuf/.build/release/protoc-gen-swift}
swift build -c release --product protoc-gen-grpc-swift-2
GRPC_PLUGIN="$(swift build -c release --show-bin-path)/protoc-gen-grpc-swift-2"
protoc --plugin=protoc-gen-swift="$SWIFT_PLUGIN" --swift_opt=Visibility=Public \
    --swift_out=Sources/BenchmarkProto -I Protos Protos/benchmark.proto
protoc --plugin=protoc-gen-grpc-swift-2="$GRPC_PLUGIN" --grpc-swift-2_opt=Visibility=Public,Server=true,Client=true \
    --grpc-swift-2_out=Sources/BenchmarkProto -I Protos Protos/benchmark_service.proto
echo "generated Sources/BenchmarkProto/benchmark.pb.swift and benchmark_service.grpc.swift"
