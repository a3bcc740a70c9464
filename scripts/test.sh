#!/usr/bin/env bash
# Everything the tests need on a fresh Debian 12, then lint, types, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-host.sh
bash scripts/venv.sh
# the CI parity peer (npm), pinned; the parity tests use it from .cache/gitlab-ci-local
GITLAB_CI_LOCAL=$(bash scripts/gitlab-ci-local.sh) && export GITLAB_CI_LOCAL || echo "gitlab-ci-local not installed: its parity tests will be skipped"
RUN=$(mktemp -d /tmp/conveyor-test.XXXXXX)
# The registry bootstrap pushes the browser-test image to: kept in .cache between runs (a later
# push finds every layer there), on a free port, stopped by its PID file when the tests end.
export CONVEYOR_REGISTRY_DIR="$PWD/.cache/registry"
CONVEYOR_REGISTRY_PORT=$(.venv/bin/python -c 'from conveyor.testing.net import free_port; print(free_port())')
export CONVEYOR_REGISTRY_PORT
stop_registry() { [ -f "$CONVEYOR_REGISTRY_DIR/registry.pid" ] && kill "$(cat "$CONVEYOR_REGISTRY_DIR/registry.pid")" 2>/dev/null || true; }
trap 'stop_registry; bash scripts/dockerd.sh stop "$RUN/dockerd.pid"' EXIT
bash scripts/dockerd.sh start "$RUN/dockerd.pid"
# the base image (built locally when no registry answers) and the browser-test image the CI
# fixtures and the example pipeline use (built once; again only when its recipe changes)
.venv/bin/conveyor bootstrap
# The fleet tests' host image (conveyor.testing.fleet_hosts; Debian packages baked in, ~2 min on
# a new machine) builds while the linters run; a test that needs it first waits on its lock.
.venv/bin/python -c 'from conveyor.testing.fleet_hosts import ensure_host_image as e; e()' \
  >"$RUN/fleet-host-image.log" 2>&1 &
echo "== ruff";   .venv/bin/ruff check src tests bench examples
echo "== mypy";   .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
# Two workers by default (most test time waits on dockerd, HAProxy and the other servers, not
# the CPU); each test file runs whole on one worker, in order, with its module fixtures.
# CONVEYOR_TEST_WORKERS=1 runs the suite in one process.
WORKERS=${CONVEYOR_TEST_WORKERS:-2}
XDIST=(); [ "$WORKERS" -gt 1 ] && XDIST=(-n "$WORKERS" --dist loadfile)
echo "== pytest"; .venv/bin/pytest "${XDIST[@]}" "$@"
