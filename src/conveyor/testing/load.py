"""A bounded HTTP load generator for loopback targets.

Used by the integration tests (zero failed requests during rollouts) and the benchmarks
(throughput and latency). Every run is bounded in count and in time, and refuses any host
other than 127.0.0.1, so a mistake can never send traffic off the machine.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"


@dataclass
class LoadResult:
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    errors: Counter[str] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)  # distinct response bodies (trimmed)
    failed_at: list[float] = field(default_factory=list)  # time.time() of each failure
    elapsed: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        if len(self.latencies) == 1:
            return self.latencies[0]
        qs = statistics.quantiles(self.latencies, n=1000, method="inclusive")
        return qs[min(len(qs) - 1, max(0, int(p * 10) - 1))]

    def summary(self) -> str:
        return (
            f"{self.requests} requests, {self.failures} failed, {self.rate:.0f} req/s, "
            f"p50 {self.percentile(50) * 1000:.2f} ms, p99 {self.percentile(99) * 1000:.2f} ms"
        )


class LoadGenerator:
    """`workers` threads, each a keep-alive client, GET `path` until stopped or bounded."""

    def __init__(
        self,
        port: int,
        path: str = "/",
        workers: int = 4,
        max_requests: int = 200_000,
        max_seconds: float = 300.0,
        rate: float | None = None,  # requests/s over all workers; None = as fast as possible
        keep_bodies: bool = False,
        timeout: float = 5.0,
    ) -> None:
        self.port = port
        self.path = path
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.rate = rate
        self.keep_bodies = keep_bodies
        self.timeout = timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._t0 = time.monotonic()
        for _ in range(self.workers):
            t = threading.Thread(target=self._work, daemon=True)
            t.start()
            self._threads.append(t)

    def run_to_bound(self) -> LoadResult:
        """Start, then wait until max_requests or max_seconds ends the run."""
        self.start()
        for t in self._threads:
            t.join()
        return self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        self.result.elapsed = time.monotonic() - self._t0
        return self.result

    def _budget_left(self) -> bool:
        with self._lock:
            if self.result.requests >= self.max_requests:
                return False
            self.result.requests += 1
        return time.monotonic() - self._t0 < self.max_seconds

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        interval = self.workers / self.rate if self.rate else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set() and self._budget_left():
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            if conn is None:
                conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=self.timeout)
            t0 = time.perf_counter()
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                ok = 200 <= resp.status < 400
                err = None if ok else f"HTTP {resp.status}"
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                ok, body, err = False, b"", type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            dt = time.perf_counter() - t0
            with self._lock:
                if ok:
                    self.result.latencies.append(dt)
                    if self.keep_bodies:
                        self.result.bodies[body[:200].decode(errors="replace")] += 1
                else:
                    self.result.failures += 1
                    self.result.errors[err or "?"] += 1
                    self.result.failed_at.append(time.time())
        if conn is not None:
            conn.close()
