"""Log shipping over real sockets, against HTTP servers that follow Elasticsearch's `_bulk` and
Loki's push API as documented (conveyor.testing.fake_elasticsearch / fake_loki): no real
Elasticsearch, OpenSearch or Loki can run here, so these are not tests against them.

A real container's output, collected from the Docker Engine and stored, reaches both once.

An outage (the server down, then 429s, then partial failures) loses nothing and duplicates
nothing; a shipper killed in the middle of an outage sends again, after its restart, what was
not acknowledged, and Elasticsearch still holds each record once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from pydantic import TypeAdapter

from conveyor.model.events import Event
from conveyor.model.log_shipping import ElasticsearchDestination, LogShipping, LokiDestination
from conveyor.model.logs import LogLabels, LogRecord
from conveyor.observe.logs.collect import Collector, CollectorOptions
from conveyor.observe.logs.ship import open_shipping
from conveyor.observe.logs.ship.backoff import Backoff
from conveyor.observe.logs.ship.shipper import ShipperOptions
from conveyor.runtime.docker_logs import DockerLogs
from conveyor.testing.fake_elasticsearch import FakeElasticsearch
from conveyor.testing.fake_loki import FakeLoki
from tests.unit.observe import ship_fakes

WAIT = 60.0  # the longest a wait-until waits before the test fails (never reached when green)
FAST = ShipperOptions(batch_records=50, backoff=Backoff(base=0.01, cap=0.2))
_RECORDS = TypeAdapter(list[LogRecord])


@pytest.fixture(scope="module")
def es() -> Iterator[FakeElasticsearch]:
    server = FakeElasticsearch()
    server.http.start()
    yield server
    server.http.stop()


@pytest.fixture(scope="module")
def loki() -> Iterator[FakeLoki]:
    server = FakeLoki()
    server.http.start()
    yield server
    server.http.stop()


@pytest.fixture
def servers(es: FakeElasticsearch, loki: FakeLoki) -> Iterator[tuple[FakeElasticsearch, FakeLoki]]:
    es.reset()
    loki.reset()
    yield es, loki
    es.http.start()  # a test that left one down hands the next one a running server
    loki.http.start()


class Events(ship_fakes.Events):
    """The unit tests' recorder, with the events of one destination picked out."""

    def of(self, kind: str, destination: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind and e.data["destination"] == destination]


def records(first: int, count: int, **fields: str) -> list[LogRecord]:
    return [
        LogRecord(
            ts=1_765_015_200.0 + n / 1000,
            labels=LogLabels(
                project="shop",
                environment="production",
                service="web",
                replica=f"web-{n % 3}",
                release=4,
                container=f"ctr{n % 3}",
                stream="stderr" if n % 5 == 0 else "stdout",
            ),
            message=f"request {n}",
            level="info",
            fields=dict(fields) or {"n": str(n)},
            id=n + 1,
        )
        for n in range(first, first + count)
    ]


def until(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {WAIT:g}s for {what}")
        time.sleep(0.02)


def es_messages(es: FakeElasticsearch) -> Counter[str]:
    return Counter(doc["message"] for doc in es.documents())


def loki_messages(loki: FakeLoki) -> Counter[str]:
    return Counter(json.loads(entry.line)["message"] for _, entry in loki.entries())


def test_an_outage_loses_nothing_and_duplicates_nothing(
    servers: tuple[FakeElasticsearch, FakeLoki], tmp_path: Path
) -> None:
    es, loki = servers
    spec = LogShipping(
        ship=(
            ElasticsearchDestination(name="elasticsearch", url=es.url),
            LokiDestination(name="loki", url=loki.url),
        )
    )
    events = Events()
    es.http.stop()
    loki.http.stop()
    shipping = open_shipping(spec, tmp_path, {}, events, FAST)
    shipping.start()
    try:
        # Down: every batch is taken (on disk) and waits.
        for first in range(0, 300, 30):
            shipping.write(records(first, 30))
        until(
            "both destinations to report the outage",
            lambda: all(s.failing for s in shipping.stats()),
        )
        assert [s.pending for s in shipping.stats()] == [300, 300]
        for name in ("elasticsearch", "loki"):
            (failing,) = events.of("logs.ship_failing", name)
            assert "no answer: ConnectError" in failing.data["problem"]

        # Back, but overloaded, then answering in part: some items 429, one refused for good
        # (a field that is an object where the index mapped a value), an answer lost.
        es.fail_next.extend([429, 429, 503])
        es.reject_items_next = 7
        es.lose_answers_next = 1
        loki.fail_next.extend([429, 500])
        loki.lose_answers_next = 1
        shipping.write(records(300, 1, **{"n.sub": "x"}))  # `n` is a value in the index: refused
        es.http.start()
        loki.http.start()
        shipping.write(records(301, 99))
        assert shipping.flush(WAIT)
    finally:
        shipping.stop()

    expected = Counter(f"request {n}" for n in range(400))
    assert es_messages(es) == expected - Counter(["request 300"])
    assert loki_messages(loki) == expected  # Loki has no mapping: the record goes in
    es_stats, loki_stats = shipping.stats()
    assert (es_stats.rejected, es_stats.dropped, es_stats.pending) == (1, 0, 0)
    assert es_stats.delivered == 399 and es_stats.duplicates > 0  # the lost answer's resend
    assert (loki_stats.rejected, loki_stats.delivered, loki_stats.pending) == (0, 400, 0)
    assert loki.duplicates > 0  # Loki kept one copy of what was sent twice
    (rejected,) = events.of("logs.ship_rejected", "elasticsearch")
    assert "document_parsing_exception" in rejected.data["reason"]
    # Requests carried the wire formats' headers all along.
    assert {r.headers["content-type"] for r in es.requests} == {"application/x-ndjson"}
    assert {r.headers["content-type"] for r in loki.requests} == {"application/json"}
    for name in ("elasticsearch", "loki"):
        assert events.of("logs.ship_recovered", name)
    # Entries of every Loki stream arrived in time order within each push.
    for request in loki.requests:
        for stream in (request.body or {}).get("streams", []):
            stamps = [int(v[0]) for v in stream["values"]]
            assert stamps == sorted(stamps)


class Child:
    """`python -m conveyor.testing.ship_child`, recorded by PID and killed by PID."""

    def __init__(self, state: Path, logs_file: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor.testing.ship_child", str(state), str(logs_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "ES_PASSWORD": "s3cret"},
        )
        self.pid = self.proc.pid

    def write(self, batch: list[LogRecord]) -> None:
        stdin, stdout = self._pipes()
        stdin.write(_RECORDS.dump_json(batch).decode() + "\n")
        stdin.flush()
        assert stdout.readline().strip() == f"ok {len(batch)}"  # on disk now

    def finish(self) -> list[dict[str, Any]]:
        stdin, stdout = self._pipes()
        stdin.close()
        lines = stdout.read().splitlines()
        assert self.proc.wait(timeout=WAIT) == 0
        return [json.loads(line) for line in lines]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=WAIT)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        return self.proc.stdin, self.proc.stdout


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def test_a_shipper_killed_mid_outage_resends_what_was_not_acknowledged(
    servers: tuple[FakeElasticsearch, FakeLoki], tmp_path: Path, children: list[Child]
) -> None:
    es, _ = servers
    es.basic = ("conveyor", "s3cret")
    logs_file = tmp_path / "logs.yaml"
    logs_file.write_text(
        f"logs:\n  ship:\n    - elasticsearch:\n        url: {es.url}\n"
        "        username: conveyor\n        password_env: ES_PASSWORD\n"
    )
    state = tmp_path / "state"
    es.http.stop()
    try:
        first = Child(state, logs_file)
        children.append(first)
        for start in range(0, 90, 30):
            first.write(records(start, 30))
        # Elasticsearch comes back but every answer is lost on the way: it stores the
        # documents of the batch in flight, the shipper never learns it did.
        es.lose_answers_next = 10**6
        es.http.start()
        until("a batch in the index", lambda: len(es.documents()) >= 30)
        first.write(records(90, 30))
        stored = len(es.documents())
        first.kill()  # SIGKILL: nothing acknowledged, nothing flushed
        assert first.proc.returncode == -signal.SIGKILL

        # Restarted while Elasticsearch still struggles: 429s, then some items refused for now.
        es.lose_answers_next = 0
        es.fail_next.extend([429, 503])
        es.reject_items_next = 10
        second = Child(state, logs_file)
        children.append(second)
        second.write(records(120, 30))
        (stats,) = second.finish()
    finally:
        es.basic = None

    assert es_messages(es) == Counter(f"request {n}" for n in range(150))
    assert stats["drained"] and stats["pending"] == 0 and stats["rejected"] == 0
    # Everything the killed shipper had not had acknowledged was sent again; what had reached
    # the index came back 409 (already there) and was counted, not stored twice.
    assert stats["duplicates"] >= stored >= 30
    assert stats["delivered"] == 150
    assert list((state / "logs-ship" / "elasticsearch").glob("*.seg"))  # the written segment
    assert all(r.headers.get("authorization", "").startswith("Basic ") for r in es.requests)


def test_what_the_collector_stores_from_a_container_is_shipped_once(
    servers: tuple[FakeElasticsearch, FakeLoki], tmp_path: Path, base_image: str
) -> None:
    """End to end: a real container's output, collected from the Docker Engine, stored, and
    shipped to both destinations with its labels, each line once (ids are the store's)."""
    es, loki = servers
    spec = LogShipping(
        ship=(
            ElasticsearchDestination(name="elasticsearch", url=es.url),
            LokiDestination(name="loki", url=loki.url),
        )
    )
    project = f"ship{uuid.uuid4().hex[:8]}"
    lines = 2_000
    script = (
        "import json\n"
        'print(json.dumps({"level": "error", "msg": "payment failed", "order": "o-9"}))\n'
        f"for i in range({lines}): print(f'request {{i}}')\n"
    )
    cid = subprocess.run(
        ["docker", "run", "-d", "--network", "none",
         "--label", f"io.conveyor.project={project}",
         "--label", "io.conveyor.service=web", "--label", "io.conveyor.replica=web-1",
         "--label", "io.conveyor.release=2",
         base_image, "python3", "-c", script],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    shipping = open_shipping(spec, tmp_path / "state", {}, Events(), FAST)
    shipping.start()
    collector = Collector(
        project,
        "staging",
        tmp_path / "state" / "logs.db",
        DockerLogs(),
        options=CollectorOptions(discover_interval=0.1, idle_flush=0.1),
        sink=shipping,
    )
    collector.start()
    try:
        assert collector.wait_written(lines + 1, WAIT)
        assert shipping.flush(WAIT)
    finally:
        collector.stop()  # stops the shippers too
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True, check=False)

    expected = Counter([f"request {n}" for n in range(lines)] + ["payment failed"])
    assert es_messages(es) == expected
    assert loki_messages(loki) == expected
    (failed,) = [d for d in es.documents() if d["message"] == "payment failed"]
    assert failed["log"] == {"level": "error"}
    assert failed["fields"] == {"order": "o-9"}
    assert failed["conveyor"]["service"] == "web"
    assert failed["conveyor"]["release"] == 2
    assert failed["conveyor"]["environment"] == "staging"
