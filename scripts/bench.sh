#!/usr/bin/env bash
# End-to-end performance benchmark of the real release binary (see docs/performance.md).
#
#   scripts/bench.sh                    # all scenarios, 3 runs each, Markdown table on stdout
#   scripts/bench.sh --runs 5 --only 1,2
#   scripts/bench.sh --timer tokio      # inject latency with tokio::time::sleep instead
#
# Builds `target/release/preflight` and the `bench` example, then runs the example, which
# starts its own loopback target, generates the suites in a temporary directory, runs the
# binary and prints one table row per scenario. Per-run details go to stderr.
# Only 127.0.0.1 is contacted. Takes about a minute on a quiet 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet --bin preflight
cargo run --release --quiet --example bench -- "$@"
