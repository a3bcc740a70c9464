#!/usr/bin/env bash
# The project's virtualenv in .venv with Conveyor and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
[ -f /etc/ssl/certs/ca-certificates.crt ] && export PIP_CERT=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
.venv/bin/pip install -q -e '.[dev]'
