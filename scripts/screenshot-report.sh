#!/usr/bin/env bash
# Renders the demo's passing and failing HTML reports in headless Chromium to PNG, so that the
# pages can be looked at as a person sees them. Needs Debian's `chromium` package (not needed
# by CI: the tests check the document's structure). Everything stays on this machine: the demo
# staging listens on loopback and the pages are opened from files.
#
#   scripts/screenshot-report.sh [OUT_DIR]      # default: docs/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs}"
chromium="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$chromium" ]; then
    echo "error: chromium is not installed (Debian: apt-get install chromium)" >&2
    exit 2
fi
cargo build --quiet --release
bin=target/release/preflight
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The last good run is the baseline of the failing one, so the page shows the comparison too.
"$bin" demo --quiet --json "$work/pass.json" --html "$work/passing.html" || true
"$bin" demo --quiet --fault broken-payments --fault slow-recommendations \
    --baseline "$work/pass.json" --html "$work/failing.html" || true

shot() {
    "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/profile" --hide-scrollbars \
        --window-size=1280,"$3" --screenshot="$2" "file://$1" >/dev/null 2>&1
    echo "wrote $2"
}
shot "$work/passing.html" "$out/report-passing.png" 1100
shot "$work/failing.html" "$out/report-failing.png" 2000
