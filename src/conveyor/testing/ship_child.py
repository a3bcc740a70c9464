"""A log shipper in a process of its own, for tests that kill it (SIGKILL) in the middle of an
outage and start it again on the same buffers:

    python -m conveyor.testing.ship_child STATE_DIR LOGS_FILE [BACKOFF_CAP]

It loads LOGS_FILE (a `logs:` section, as CONVEYOR_LOGS_CONFIG names one), opens the shippers
under STATE_DIR and starts them. Each line on stdin is a JSON array of log records: it is
written to every destination and answered `ok <count>` once the write returned (the batch is on
disk). At the end of stdin it waits until every buffer is empty, prints one JSON line of
statistics per destination, stops and exits.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from pydantic import TypeAdapter

from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship import open_shipping
from conveyor.observe.logs.ship.backoff import Backoff
from conveyor.observe.logs.ship.shipper import ShipperOptions
from conveyor.spec.log_shipping import load_logs_file

_RECORDS = TypeAdapter(list[LogRecord])


def main(argv: list[str]) -> int:
    state_dir, logs_file = Path(argv[0]), Path(argv[1])
    cap = float(argv[2]) if len(argv) > 2 else 0.2
    spec = load_logs_file(logs_file)
    options = ShipperOptions(backoff=Backoff(base=min(0.01, cap), cap=cap))
    shipping = open_shipping(spec, state_dir, os.environ, options=options)
    shipping.start()
    for line in sys.stdin:
        records = _RECORDS.validate_json(line)
        shipping.write(records)
        print(f"ok {len(records)}", flush=True)
    drained = shipping.flush(timeout=120)
    for stats in shipping.stats():
        print(json.dumps({**dataclasses.asdict(stats), "drained": drained}), flush=True)
    shipping.stop()
    return 0 if drained else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
