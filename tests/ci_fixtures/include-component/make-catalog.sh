#!/bin/sh
# Builds ../catalog/my-org/ci-components: a component project whose releases are git tags
# (1.0.0, 1.1.0) with an unreleased commit after them.
set -eu
repo=../catalog/my-org/ci-components
mkdir -p "$repo/templates/smoke"
git -C "$repo" init -q -b main
cp components/build-1.0.0.yml "$repo/templates/build.yml"
git -C "$repo" add -A && git -C "$repo" commit -q -m 1.0.0 && git -C "$repo" tag 1.0.0
cp components/build-1.1.0.yml "$repo/templates/build.yml"
cp components/smoke.yml "$repo/templates/smoke/template.yml"
git -C "$repo" add -A && git -C "$repo" commit -q -m 1.1.0 && git -C "$repo" tag 1.1.0
cp components/build-next.yml "$repo/templates/build.yml"
git -C "$repo" add -A && git -C "$repo" commit -q -m "not released"
