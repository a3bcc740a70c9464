#!/usr/bin/env bash
# Everything the tests need on a fresh Debian 12, then lint, types, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-host.sh
bash scripts/venv.sh
# the CI parity peer (npm), pinned; the parity tests use it from .cache/gitlab-ci-local
GITLAB_CI_LOCAL=$(bash scripts/gitlab-ci-local.sh) && export GITLAB_CI_LOCAL || echo "gitlab-ci-local not installed: its parity tests will be skipped"
RUN=$(mktemp -d /tmp/conveyor-test.XXXXXX)
trap 'bash scripts/dockerd.sh stop "$RUN/dockerd.pid"' EXIT
bash scripts/dockerd.sh start "$RUN/dockerd.pid"
.venv/bin/conveyor bootstrap            # base image (built locally when no registry answers)
echo "== ruff";   .venv/bin/ruff check src tests bench examples
echo "== mypy";   .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports
echo "== pytest"; .venv/bin/pytest "$@"
