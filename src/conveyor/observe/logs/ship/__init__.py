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

from conveyor.observe.logs.ship.shipping import Shipping, open_shipping
from conveyor.observe.logs.ship.sink import LogSink

__all__ = ["LogSink", "Shipping", "open_shipping"]
