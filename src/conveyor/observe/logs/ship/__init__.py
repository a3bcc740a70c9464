"""Shipping log records to Elasticsearch/OpenSearch (`_bulk`) and Grafana Loki (push API),
losing nothing to an outage: docs/logs-shipping.md.

The seam with the collector is `LogSink`: a batch of records in, durably handed over when
`write` returns. `open_shipping` gives one LogSink for every destination of a project's
`logs:` section (a Shipping), each with its own on-disk buffer and sender thread:

    shipping = open_shipping(config.logs, state_dir, os.environ, reporter=timeline)
    shipping.start()
    collector = Collector(..., sink=shipping)      # calls shipping.write(records)
    ...
    shipping.stop()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship.shipping import Shipping, open_shipping


class LogSink(Protocol):
    def write(self, records: Sequence[LogRecord]) -> None:
        """Take a batch of records the collector stored. When this returns, the batch is
        durably handed over (the shippers: fsync'd in each destination's buffer); raises
        ShipError when it could not be."""
        ...


__all__ = ["LogSink", "Shipping", "open_shipping"]
