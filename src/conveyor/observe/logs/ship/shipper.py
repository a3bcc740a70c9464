"""One destination's shipper: a LogSink whose `write` appends to the destination's on-disk
buffer, and a sender thread that drains the buffer in order.

The sender reads a batch, sends it, and sends again (after a back-off) only the records the
answer did not settle; it acknowledges the batch in the buffer once every record is delivered
or refused for good. It never skips a record it could not send: a destination that is down
fills its buffer up to the cap, and only the cap drops records (the oldest, counted and
reported). Reports are events on the project's timeline (`logs.ship_*`), and counters in
`stats()`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from conveyor.errors import ShipError
from conveyor.model.events import EventKind, Level, Reporter
from conveyor.model.logs import LogRecord
from conveyor.observe.logs.ship.backoff import Backoff
from conveyor.observe.logs.ship.buffer import Batch, DiskBuffer, Dropped
from conveyor.observe.logs.ship.transport import Transport, Unreachable
from conveyor.observe.logs.ship.verdict import Answer, Rejection, Request, Verdict


class Format(Protocol):
    """A destination's wire format (observe.logs.ship.elasticsearch / .loki)."""

    name: str
    kind: str

    def request(self, records: Sequence[LogRecord]) -> Request: ...

    def verdict(self, records: Sequence[LogRecord], answer: Answer) -> Verdict: ...


@dataclass(frozen=True)
class ShipperOptions:
    batch_records: int = 5_000  # records per request at most
    # Payload bytes per request at most, as buffered; the wire form is about twice as large
    # for Elasticsearch (action lines), well under its 100 MB default request limit.
    batch_bytes: int = 4 * 1024 * 1024
    backoff: Backoff = field(default_factory=Backoff)
    idle_wait: float = 5.0  # seconds between looks at an empty buffer when no write wakes it


@dataclass(frozen=True)
class ShipperStats:
    destination: str
    kind: str
    accepted: int = 0  # records written into the buffer
    delivered: int = 0  # records the destination took (duplicates included)
    duplicates: int = 0  # of those, records it already had (a resend after a restart)
    rejected: int = 0  # records it refused for good
    dropped: int = 0  # records the buffer's cap dropped
    lost: int = 0  # records found unreadable in the buffer
    requests: int = 0
    retries: int = 0  # requests that left records to send again
    pending: int = 0  # records in the buffer, not yet acknowledged
    pending_bytes: int = 0
    failing: bool = False
    last_error: str | None = None


class Shipper:
    def __init__(
        self,
        fmt: Format,
        buffer: DiskBuffer,
        transport: Transport,
        reporter: Reporter | None = None,
        options: ShipperOptions | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[threading.Event, float], None] | None = None,
    ) -> None:
        self.format = fmt
        self.buffer = buffer
        self._transport = transport
        self._reporter = reporter
        self._options = options or ShipperOptions()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._sleep = sleep or _wait
        self._stats = ShipperStats(fmt.name, fmt.kind)
        self._stats_lock = threading.Lock()
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        if buffer.recovered.bytes:
            self._lost([buffer.recovered])

    # --- LogSink ---------------------------------------------------------------------------

    def write(self, records: Sequence[LogRecord]) -> None:
        """Take a batch: when this returns it is on disk (fsync'd) and will be sent, unless
        the cap drops it later. Raises ShipError when the buffer cannot take it."""
        if not records:
            return
        try:
            dropped = self.buffer.append(records)
        except OSError as exc:
            raise ShipError(
                f"log shipping to {self.format.name}: cannot write its buffer "
                f"{self.buffer.directory}: {exc}"
            ) from exc
        self._count(accepted=len(records))
        if dropped:
            self._dropped(dropped)
        with self._wake:
            self._wake.notify_all()  # the sender, among flush() waiters

    # --- life ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"ship-{self.format.name}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop sending (what is not acknowledged stays in the buffer) and close it."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._transport.close()
        self.buffer.close()

    def flush(self, timeout: float) -> bool:
        """Wait until the buffer holds nothing unacknowledged; False when `timeout` passed."""
        deadline = time.monotonic() + timeout
        while self.buffer.pending()[0] > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._wake:
                self._wake.wait(min(remaining, 0.05))
        return True

    def stats(self) -> ShipperStats:
        records, size = self.buffer.pending()
        with self._stats_lock:
            return replace(self._stats, pending=records, pending_bytes=size)

    # --- the sender ------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._step()
                failures = 0
            except ShipError:
                if self._stopping.is_set():
                    return  # stop() closed the buffer under a slow request
                raise
            except Exception as exc:  # a bug must not end shipping for good
                self._failing(f"{type(exc).__name__}: {exc}", self.buffer.pending()[0])
                self._sleep(self._stopping, self._options.backoff.delay(failures, self._rng))
                failures += 1

    def _step(self) -> None:
        options = self._options
        batch, lost = self.buffer.read(options.batch_records, options.batch_bytes)
        if lost:
            self._lost(lost)
        if batch is None:
            with self._wake:
                if self.buffer.pending()[0] == 0 and not self._stopping.is_set():
                    self._wake.notify_all()  # flush() waiters: nothing left
                    self._wake.wait(options.idle_wait)
            return
        if self._deliver(batch):
            self.buffer.ack(batch.end)
            with self._wake:
                self._wake.notify_all()

    def _deliver(self, batch: Batch) -> bool:
        """Send until every record of `batch` is settled; False when stopping first (the
        batch stays unacknowledged) or when the cap dropped it meanwhile."""
        todo = list(range(len(batch.records)))
        attempt = 0
        while todo:
            if self._stopping.is_set() or self.buffer.overtaken(batch.start):
                return False
            records = [batch.records[i] for i in todo]
            verdict = self._send(records)
            delivered = len(records) - len(verdict.retry) - len(verdict.rejected)
            self._count(delivered=delivered, duplicates=verdict.duplicates, requests=1)
            if verdict.rejected:
                self._rejected(verdict.rejected)
            todo = [todo[i] for i in verdict.retry]
            if not todo:
                self._healthy()
                return True
            self._count(retries=1)
            self._failing(verdict.problem or "records to send again", len(todo))
            wait = self._options.backoff.delay(attempt, self._rng, verdict.retry_after)
            attempt += 1
            self._sleep(self._stopping, wait)
        return True

    def _send(self, records: Sequence[LogRecord]) -> Verdict:
        request = self.format.request(records)
        try:
            answer = self._transport.post(request)
        except Unreachable as exc:
            return Verdict(retry=tuple(range(len(records))), problem=f"no answer: {exc}")
        verdict = self.format.verdict(records, answer)
        if not verdict.split:
            return verdict
        half = len(records) // 2
        left, right = self._send(records[:half]), self._send(records[half:])
        return Verdict(
            retry=left.retry + tuple(half + i for i in right.retry),
            rejected=left.rejected
            + tuple(Rejection(half + r.position, r.status, r.reason) for r in right.rejected),
            problem=left.problem or right.problem,
            retry_after=max(left.retry_after or 0, right.retry_after or 0) or None,
            status=right.status,
            duplicates=left.duplicates + right.duplicates,
        )

    # --- reporting -------------------------------------------------------------------------

    def _count(self, **add: int) -> None:
        with self._stats_lock:
            values = {k: getattr(self._stats, k) + v for k, v in add.items()}
            self._stats = replace(self._stats, **values)

    def _failing(self, problem: str, pending: int) -> None:
        with self._stats_lock:
            was = self._stats.failing
            self._stats = replace(self._stats, failing=True, last_error=problem)
        if not was:
            self._emit(
                "logs.ship_failing",
                f"log shipping to {self.format.name} fails ({problem}); records wait in its "
                "buffer and are sent again",
                "warning",
                {"problem": problem, "records": pending},
            )

    def _healthy(self) -> None:
        with self._stats_lock:
            was = self._stats.failing
            self._stats = replace(self._stats, failing=False)
        if was:
            self._emit(
                "logs.ship_recovered",
                f"log shipping to {self.format.name} works again",
                "info",
                {},
            )

    def _rejected(self, rejected: Sequence[Rejection]) -> None:
        self._count(rejected=len(rejected))
        first = rejected[0]
        total = self.stats().rejected
        self._emit(
            "logs.ship_rejected",
            f"{self.format.name} refused {len(rejected)} log record(s) for good, dropped "
            f"({first.reason}); {total} refused since start",
            "error",
            {
                "records": len(rejected),
                "status": first.status,
                "reason": first.reason,
                "total": total,
            },
        )

    def _dropped(self, dropped: Sequence[Dropped]) -> None:
        records = sum(d.records for d in dropped)
        size = sum(d.bytes for d in dropped)
        self._count(dropped=records)
        total = self.stats().dropped
        self._emit(
            "logs.ship_dropped",
            f"log shipping to {self.format.name}: {dropped[0].why}; dropped the {records} "
            f"oldest record(s) not yet sent ({total} dropped since start)",
            "error",
            {"records": records, "bytes": size, "total": total},
        )

    def _lost(self, lost: Sequence[Dropped]) -> None:
        records = sum(d.records for d in lost)
        self._count(lost=records)
        self._emit(
            "logs.ship_dropped",
            f"log shipping to {self.format.name}: unreadable data in its buffer skipped "
            f"({lost[0].why})",
            "error",
            {"records": records, "bytes": sum(d.bytes for d in lost), "corrupt": True},
        )

    def _emit(self, kind: EventKind, message: str, level: Level, data: dict[str, Any]) -> None:
        if self._reporter is None:
            return
        data = {"destination": self.format.name, "kind": self.format.kind, **data}
        try:
            self._reporter.emit(kind, message, level, data)
        except Exception:  # reporting must not stop shipping
            return


def _wait(stop: threading.Event, seconds: float) -> None:
    stop.wait(seconds)
