#!/usr/bin/env bash
# Bring up the example application (examples/shop) with Conveyor and print where to look.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-host.sh
bash scripts/venv.sh
.venv/bin/conveyor bootstrap            # starts dockerd if needed, makes the base image
.venv/bin/conveyor -f examples/shop/compose.yaml up
echo
echo "Try:  .venv/bin/conveyor -f examples/shop/compose.yaml status"
echo "      .venv/bin/conveyor -f examples/shop/compose.yaml timeline    # this commit: release, rollouts"
echo "      .venv/bin/conveyor -f examples/shop/compose.yaml logs gateway -f"
echo "      .venv/bin/conveyor -f examples/shop/compose.yaml down"
