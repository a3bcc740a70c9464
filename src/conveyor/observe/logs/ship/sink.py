"""The seam between the log collector and whatever takes a copy of its records: a batch of
LogRecords in, acknowledged when durably handed over; the collector given a sink stops it.
Nothing else is imported here, so the collector depends on this Protocol alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from conveyor.model.logs import LogRecord


class LogSink(Protocol):
    def write(self, records: Sequence[LogRecord]) -> None:
        """Take a batch of records the collector stored. When this returns, the batch is
        durably handed over (the shippers: fsync'd in each destination's buffer); raises
        ShipError when it could not be."""
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """No more batches: hand over what is buffered if it can within `timeout`."""
        ...
