#!/usr/bin/env bash
# Re-fetch the dashboard's JavaScript from npm at exact versions and copy the built files (with
# their licences) into the package, where they are committed: a fresh clone serves the
# dashboard with no network and no npm. Run it only to change a version; commit what it writes.
# `npm pack` checks each tarball against the registry's integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."
VENDOR=src/conveyor/server/dashboard/static/vendor
TEST_ASSETS=tests/integration/dashboard/assets  # axe-core: the browser tests' checker only
HTMX=2.0.11 HTMX_SSE=2.2.4 UPLOT=1.6.32 AXE=4.14.1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() {  # fetch NAME VERSION -> unpacked in $work/NAME/package
  mkdir -p "$work/$1"
  (cd "$work/$1" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz)
}
fetch htmx.org "$HTMX"
fetch htmx-ext-sse "$HTMX_SSE"
fetch uplot "$UPLOT"
fetch axe-core "$AXE"
mkdir -p "$VENDOR" "$TEST_ASSETS"
install -m 0644 "$work/htmx.org/package/dist/htmx.min.js" "$VENDOR/htmx.min.js"
install -m 0644 "$work/htmx.org/package/LICENSE" "$VENDOR/htmx.LICENSE"
install -m 0644 "$work/htmx-ext-sse/package/dist/sse.min.js" "$VENDOR/htmx-ext-sse.min.js"
install -m 0644 "$work/htmx-ext-sse/package/LICENSE" "$VENDOR/htmx-ext-sse.LICENSE"
install -m 0644 "$work/uplot/package/dist/uPlot.iife.min.js" "$VENDOR/uPlot.iife.min.js"
install -m 0644 "$work/uplot/package/dist/uPlot.min.css" "$VENDOR/uPlot.min.css"
install -m 0644 "$work/uplot/package/LICENSE" "$VENDOR/uPlot.LICENSE"
install -m 0644 "$work/axe-core/package/axe.min.js" "$TEST_ASSETS/axe.min.js"
install -m 0644 "$work/axe-core/package/LICENSE" "$TEST_ASSETS/axe-core.LICENSE"
cat > "$VENDOR/VERSIONS" <<V
# npm packages the files here come from (scripts/dashboard-assets.sh fetches them)
htmx.org $HTMX (0BSD): htmx.min.js
htmx-ext-sse $HTMX_SSE (0BSD): htmx-ext-sse.min.js
uplot $UPLOT (MIT): uPlot.iife.min.js, uPlot.min.css
V
echo "axe-core $AXE (MPL-2.0): axe.min.js, from npm by scripts/dashboard-assets.sh" > "$TEST_ASSETS/VERSION"
(cd "$VENDOR" && sha256sum ./*.js ./*.css > SHA256SUMS)
echo "dashboard assets: htmx $HTMX, htmx-ext-sse $HTMX_SSE, uPlot $UPLOT, axe-core $AXE"
