#!/bin/sh
# Builds ../catalog/my-org/ci-components: a component project with one release, tag 1.0.0.
set -eu
repo=../catalog/my-org/ci-components
mkdir -p "$repo/templates"
git -C "$repo" init -q -b main
cp components/lint.yml "$repo/templates/lint.yml"
git -C "$repo" add -A && git -C "$repo" commit -q -m 1.0.0 && git -C "$repo" tag 1.0.0
