#!/usr/bin/env bash
# End-to-end performance benchmark of the real release binary (see docs/performance.md).
#
#   scripts/bench.sh                    # all scenarios, 3 runs each, Markdown table on stdout
#   scripts/bench.sh --runs 5 --only 1,2
#   scripts/bench.sh --timer tokio      # inject latency with tokio::time::sleep instead
#   scripts/bench.sh --before-rev REV   # also measure the binary of commit REV, same run
#
# Builds `target/release/preflight` and the `bench` example, then runs the example, which
# starts its own loopback target, generates the suites in a temporary directory, runs the
# binary and prints one table row per scenario. Per-run details go to stderr.
# `--before-rev REV` builds REV's sources (git archive, into target/bench-before/, its own
# target directory) and passes that binary as `--before`: each scenario is measured with it
# first, and a before/after table ends the output.
# Only 127.0.0.1 is contacted. Takes about 4 minutes on a quiet 2-core machine (twice that
# with --before-rev).
set -euo pipefail
cd "$(dirname "$0")/.."

args=()
before_rev=""
while [ $# -gt 0 ]; do
  case "$1" in
    --before-rev)
      [ $# -ge 2 ] || { echo "error: --before-rev needs a commit" >&2; exit 2; }
      before_rev="$2"
      shift 2
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done

if [ -n "$before_rev" ]; then
  commit=$(git rev-parse --verify "$before_rev^{commit}")
  before="target/bench-before/$commit"
  if [ ! -x "$before/target/release/preflight" ]; then
    mkdir -p "$before/src"
    git archive "$commit" | tar -x -C "$before/src"
    (cd "$before/src" && CARGO_TARGET_DIR="../target" cargo build --release --quiet --locked --bin preflight)
  fi
  args+=(--before "$before/target/release/preflight")
fi

cargo build --release --quiet --bin preflight
cargo run --release --quiet --example bench -- "${args[@]}"
