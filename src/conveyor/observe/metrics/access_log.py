"""HAProxy's per-request log, read for latency: HAProxy 2.6's Prometheus exporter gives response
time averages only, so each HTTP frontend also logs every request (render.haproxy:
`log-format "%ft %b %s %ST %Ta"`, raw, one datagram each, to `log.sock` in the router's run
directory) and the process that watches the project (the agent, the server) turns the lines
into a latency histogram per service and entry (`conveyor_http_request_duration_seconds`,
docs/metrics.md).

HAProxy sends without waiting: when nobody reads, or the reader falls behind and the socket's
buffer is full, lines are dropped (HAProxy counts them in `haproxy_process_dropped_logs_total`)
and traffic is never slowed.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_DATAGRAM = 4096


@dataclass(frozen=True)
class AccessRecord:
    frontend: str
    backend: str
    server: str  # `<NOSRV>` when no server took the request (HAProxy's own 503, a deny)
    status: int
    seconds: float  # %Ta: from the request's first byte to the response's last


def parse(line: str) -> AccessRecord | None:
    """One log line; None for what is not one (or a request aborted before it was timed)."""
    parts = line.split()
    if len(parts) != 5:
        return None
    frontend, backend, server, status, active = parts
    try:
        code, ms = int(status), int(active)
    except ValueError:
        return None
    if ms < 0:  # -1: the client went away before the response
        return None
    return AccessRecord(frontend, backend, server, code, ms / 1000.0)


class AccessLogReceiver:
    """Binds the unix datagram socket HAProxy logs to and hands each record to `on_record`
    (on its own thread)."""

    def __init__(self, path: Path, on_record: Callable[[AccessRecord], None]) -> None:
        self.path = path
        self.on_record = on_record
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a reader that died: nobody reads from it any more
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.settimeout(0.5)  # to notice `close`
        self._sock = sock
        self._thread = threading.Thread(
            target=self._run, name=f"access-log {self.path}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data = sock.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            for line in data.decode(errors="replace").splitlines():
                record = parse(line)
                if record is not None:
                    self.on_record(record)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(frozen=True)
class EntryLabels:
    """What a frontend's requests are counted as."""

    project: str
    environment: str
    service: str
    edge: str


Observe = Callable[[EntryLabels, float], None]


class LatencyFeed:
    """One receiver per router run directory watched, each line counted under the labels of
    its frontend (`watch` keeps the frontends current as services come and go)."""

    def __init__(self, observe: Observe) -> None:
        self.observe = observe
        self._receivers: dict[Path, AccessLogReceiver] = {}
        self._entries: dict[Path, dict[str, EntryLabels]] = {}
        self._lock = threading.Lock()

    def watch(self, socket_path: Path, frontends: dict[str, EntryLabels]) -> None:
        """Read `socket_path` (bound now if not yet), counting the `frontends` named."""
        with self._lock:
            self._entries[socket_path] = dict(frontends)
            if socket_path in self._receivers:
                return

        def on_record(record: AccessRecord) -> None:
            entry = self._entries.get(socket_path, {}).get(record.frontend)
            if entry is not None:
                self.observe(entry, record.seconds)

        receiver = AccessLogReceiver(socket_path, on_record)
        receiver.start()
        with self._lock:
            self._receivers[socket_path] = receiver

    def forget(self, keep: set[Path]) -> None:
        """Stop reading the sockets not in `keep` (environments gone)."""
        with self._lock:
            gone = [p for p in self._receivers if p not in keep]
            receivers = [self._receivers.pop(p) for p in gone]
            for p in gone:
                self._entries.pop(p, None)
        for r in receivers:
            r.close()

    def close(self) -> None:
        self.forget(set())
