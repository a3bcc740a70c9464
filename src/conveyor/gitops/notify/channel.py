"""A channel: one sender behind a bounded queue and its own worker thread.

Timeline subscribers run inside `Timeline.emit`, in the middle of a rollout: offering a
notification never blocks and never raises. A full queue drops the new notification (counted
and reported) rather than hold up a deploy. The worker tries each notification a bounded number
of times with exponential backoff, only when the sender says a retry may help; closing the
channel ends the backoff waits, gives what is still queued one attempt each, and stops.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.errors import NotifyError
from conveyor.gitops.notify.protocol import Notifier
from conveyor.model.notifications import Notification, Topic

CAPACITY = 100  # notifications waiting per channel
ATTEMPTS = 4  # per notification: the first try and three retries
BACKOFF = 1.0  # seconds before the first retry; doubled each time
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class Delivery:
    """What became of one notification on one channel."""

    channel: str
    notification: Notification
    ok: bool
    attempts: int
    error: str | None = None
    dropped: bool = False  # never tried: the queue was full or the channel closed


@dataclass(frozen=True)
class ChannelStatus:
    channel: str
    sent: int
    failed: int
    dropped: int
    queued: int
    last_error: str | None


def backoff_delays(attempts: int, first: float, cap: float) -> list[float]:
    """Seconds to wait before each retry: first, 2·first, 4·first … at most `cap` (pure)."""
    return [min(cap, first * 2**i) for i in range(max(0, attempts - 1))]


class Channel:
    def __init__(
        self,
        notifier: Notifier,
        topics: frozenset[Topic],
        *,
        capacity: int = CAPACITY,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        max_backoff: float = MAX_BACKOFF,
        on_delivery: Callable[[Delivery], None] | None = None,
    ) -> None:
        self.notifier = notifier
        self.topics = topics
        self._delays = backoff_delays(attempts, backoff, max_backoff)
        self._queue: queue.Queue[Notification | None] = queue.Queue(maxsize=capacity)
        self._on_delivery = on_delivery
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._sent = self._failed = self._dropped = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(
            target=self._work, name=f"notify {notifier.name}", daemon=True
        )
        self._thread.start()

    @property
    def name(self) -> str:
        return self.notifier.name

    def wants(self, n: Notification) -> bool:
        return n.topic in self.topics

    def offer(self, n: Notification) -> bool:
        """Queue `n` for sending; False (and a dropped Delivery) when the queue is full or
        the channel is closed. Never blocks."""
        if not self._closing.is_set():
            try:
                self._queue.put_nowait(n)
                return True
            except queue.Full:
                pass
        with self._lock:
            self._dropped += 1
        self._report(Delivery(self.name, n, ok=False, attempts=0, dropped=True))
        return False

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking notifications, send what is queued (one attempt each, no more
        waiting between retries) and stop the worker. True when it stopped within `timeout`."""
        self._closing.set()
        # The sentinel goes after what is queued; if the queue is full, the worker sees
        # `_closing` after the last item.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> ChannelStatus:
        with self._lock:
            return ChannelStatus(
                self.name,
                self._sent,
                self._failed,
                self._dropped,
                self._queue.qsize(),
                self._last_error,
            )

    def _work(self) -> None:
        while True:
            try:
                # Once closing, a drained queue means done (the sentinel may not have fit).
                n = self._queue.get_nowait() if self._closing.is_set() else self._queue.get()
            except queue.Empty:
                return
            if n is None:
                if self._queue.empty():
                    return
                continue
            self._report(self._deliver(n))

    def _deliver(self, n: Notification) -> Delivery:
        attempt = 0
        while True:
            attempt += 1
            try:
                self.notifier.send(n)
            except NotifyError as e:
                error = str(e)
                retry = e.retry and attempt <= len(self._delays)
                # Event.wait returns True once closing: no more waiting, no more retries.
                if retry and not self._closing.wait(self._delays[attempt - 1]):
                    continue
                with self._lock:
                    self._failed += 1
                    self._last_error = error
                return Delivery(self.name, n, ok=False, attempts=attempt, error=error)
            except Exception as e:  # a sender's bug must not kill the channel's thread
                error = f"{type(e).__name__}: {e}"
                with self._lock:
                    self._failed += 1
                    self._last_error = error
                return Delivery(self.name, n, ok=False, attempts=attempt, error=error)
            with self._lock:
                self._sent += 1
            return Delivery(self.name, n, ok=True, attempts=attempt)

    def _report(self, d: Delivery) -> None:
        if self._on_delivery is None:
            return
        # A reporting hook's failure must not stop delivery.
        with contextlib.suppress(Exception):
            self._on_delivery(d)
