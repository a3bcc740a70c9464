#!/usr/bin/env bash
# gitlab-ci-local (the CI parity peer) pinned into .cache/gitlab-ci-local; prints its binary path.
#
#   GCL=$(bash scripts/gitlab-ci-local.sh)      # idempotent: installs once, then only prints
#
# 4.65.0 is the last release that runs on Node.js 20 (4.70+ need Node.js 22). It also needs
# rsync and git on PATH. Override the version with GITLAB_CI_LOCAL_VERSION (tests assume 4.65.0).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${GITLAB_CI_LOCAL_VERSION:-4.65.0}
PREFIX=.cache/gitlab-ci-local
BIN="$PWD/$PREFIX/node_modules/.bin/gitlab-ci-local"
PKG="$PREFIX/node_modules/gitlab-ci-local/package.json"

installed() {
  [ -x "$BIN" ] && [ -f "$PKG" ] &&
    [ "$(node -p "require('./$PKG').version" 2>/dev/null)" = "$VERSION" ]
}

if ! installed; then
  command -v npm >/dev/null || { echo "gitlab-ci-local.sh: npm not found (install Node.js 20)" >&2; exit 1; }
  command -v rsync >/dev/null || echo "gitlab-ci-local.sh: warning: rsync not found; gitlab-ci-local needs it" >&2
  mkdir -p "$PREFIX"
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
    "gitlab-ci-local@$VERSION" >&2
  installed || { echo "gitlab-ci-local.sh: install of $VERSION failed" >&2; exit 1; }
fi
echo "$BIN"
