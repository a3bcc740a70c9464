"""The shipper: a batch is on disk when `write` returns; the sender sends again only what the
answer left unsettled, with back-off; refusals and cap drops are counted and reported; a
destination that stays down keeps everything in the buffer. The fake servers' handlers stand
in for the network here (tests/integration/observe/test_log_shipping.py uses sockets)."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

import pytest

from conveyor.model.log_shipping import ElasticsearchDestination, LokiDestination
from conveyor.observe.logs.ship.backoff import Backoff
from conveyor.observe.logs.ship.buffer import DiskBuffer
from conveyor.observe.logs.ship.elasticsearch import ElasticsearchFormat
from conveyor.observe.logs.ship.loki import LokiFormat
from conveyor.observe.logs.ship.shipper import Shipper, ShipperOptions
from conveyor.observe.logs.ship.verdict import Answer, Request
from conveyor.testing.fake_elasticsearch import FakeElasticsearch
from conveyor.testing.fake_loki import FakeLoki
from conveyor.testing.loopback_http import Reply
from tests.unit.observe.ship_fakes import DirectTransport, Events
from tests.unit.observe.ship_records import record

MB = 1024 * 1024
ES = ElasticsearchDestination(name="es", url="http://127.0.0.1:9200")
WAIT = 30.0  # seconds a flush may take at most before the test fails (never reached when green)


class Sleeps:
    """Records each back-off instead of sleeping through it; after `block_after` of them,
    waits for the shipper to stop (an outage that outlasts the test)."""

    def __init__(self, block_after: int | None = None) -> None:
        self.delays: list[float] = []
        self._block_after = block_after

    def __call__(self, stop: threading.Event, seconds: float) -> None:
        self.delays.append(seconds)
        if self._block_after is not None and len(self.delays) >= self._block_after:
            stop.wait(WAIT)


def es_shipper(
    tmp_path: Path,
    es: FakeElasticsearch,
    events: Events,
    sleeps: Sleeps,
    batch: int = 1000,
    cap: int = 16 * MB,
) -> tuple[Shipper, DirectTransport]:
    transport = DirectTransport(es.handle)
    shipper = Shipper(
        ElasticsearchFormat(ES, {}),
        DiskBuffer(tmp_path / "es", cap=cap),
        transport,
        events,
        ShipperOptions(batch_records=batch, backoff=Backoff(base=1.0, cap=8.0)),
        random.Random(3),
        sleeps,
    )
    return shipper, transport


def messages(es: FakeElasticsearch) -> Counter[str]:
    return Counter(doc["message"] for doc in es.documents())


def test_only_the_records_an_answer_left_unsettled_are_sent_again(tmp_path: Path) -> None:
    es = FakeElasticsearch(reject_items_next=3)  # a partial failure: 3 items answer 429
    events, sleeps = Events(), Sleeps()
    shipper, transport = es_shipper(tmp_path, es, events, sleeps)
    shipper.write([record(n) for n in range(10)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()

    assert messages(es) == Counter(f"line {n}" for n in range(10))
    assert [r.body.count(b"\n") // 2 for r in transport.sent] == [10, 3]
    stats = shipper.stats()
    assert (stats.delivered, stats.retries, stats.requests, stats.pending) == (10, 1, 2, 0)
    assert len(sleeps.delays) == 1 and 0.5 <= sleeps.delays[0] <= 1.0
    assert events.kinds() == ["logs.ship_failing", "logs.ship_recovered"]


def test_records_refused_for_good_are_dropped_counted_and_reported(tmp_path: Path) -> None:
    es = FakeElasticsearch()
    events, sleeps = Events(), Sleeps()
    shipper, _ = es_shipper(tmp_path, es, events, sleeps)
    shipper.write([record(1, fields={"user": "bob"})])
    # `user.id` makes `fields.user` an object where the index mapped a value: refused.
    shipper.write([record(2, fields={"user.id": "7"}), record(3)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()

    assert messages(es) == Counter(["line 1", "line 3"])
    stats = shipper.stats()
    assert (stats.delivered, stats.rejected, stats.pending) == (2, 1, 0)
    (rejected,) = [e for e in events.events if e.kind == "logs.ship_rejected"]
    assert rejected.level == "error"
    assert rejected.data["records"] == 1 and rejected.data["status"] == 400
    assert "document_parsing_exception" in rejected.data["reason"]
    assert sleeps.delays == []  # nothing to retry


def test_whole_request_failures_back_off_then_deliver_once(tmp_path: Path) -> None:
    es = FakeElasticsearch(fail_next=[503, 429, 429, 500], lose_answers_next=1)
    events, sleeps = Events(), Sleeps()
    shipper, transport = es_shipper(tmp_path, es, events, sleeps)
    shipper.write([record(n) for n in range(5)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()

    # Stored by the request whose answer was lost, then sent again: 409s, kept once.
    assert messages(es) == Counter(f"line {n}" for n in range(5))
    stats = shipper.stats()
    assert (stats.requests, stats.retries, stats.duplicates, stats.delivered) == (6, 5, 5, 5)
    assert len(sleeps.delays) == 5
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    # One outage, told once: not an event per retry.
    assert events.kinds() == ["logs.ship_failing", "logs.ship_recovered"]
    assert "HTTP 503" in (events.events[0].data["problem"])
    assert transport.closed


def test_a_request_too_large_is_sent_in_halves(tmp_path: Path) -> None:
    es = FakeElasticsearch()

    def limited(method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if body.count(b"\n") > 8:  # more than 4 records
            return Reply(413, b"", {})
        return es.handle(method, path, headers, body)

    events, sleeps = Events(), Sleeps()
    transport = DirectTransport(limited)
    shipper = Shipper(
        ElasticsearchFormat(ES, {}),
        DiskBuffer(tmp_path / "es", cap=MB),
        transport,
        events,
        sleep=sleeps,
    )
    shipper.write([record(n) for n in range(12)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()
    assert messages(es) == Counter(f"line {n}" for n in range(12))
    assert shipper.stats().rejected == 0 and sleeps.delays == []


def test_a_destination_that_stays_down_keeps_everything_buffered(tmp_path: Path) -> None:
    es = FakeElasticsearch()
    events, sleeps = Events(), Sleeps(block_after=4)
    shipper, transport = es_shipper(tmp_path, es, events, sleeps, batch=4)
    transport.down = True
    shipper.write([record(n) for n in range(10)])
    shipper.start()
    assert not shipper.flush(0.3)  # nothing can be delivered
    shipper.stop()
    assert [min(8.0, 2.0**n) / 2 <= d <= min(8.0, 2.0**n) for n, d in enumerate(sleeps.delays)] == [
        True
    ] * 4
    assert shipper.stats().failing and es.documents() == []
    assert events.kinds() == ["logs.ship_failing"]
    assert "Connection refused" in events.events[0].data["problem"]
    # Every retry asked again for the first batch: a later one never overtook it.
    assert {r.body for r in transport.sent} == {transport.sent[0].body}

    reopened = DiskBuffer(tmp_path / "es", cap=16 * MB)
    assert reopened.pending()[0] == 10


def test_the_cap_drops_loudly(tmp_path: Path) -> None:
    es = FakeElasticsearch()
    events, sleeps = Events(), Sleeps()
    shipper, _ = es_shipper(tmp_path, es, events, sleeps, cap=MB)  # not started: all pile up
    for n in range(0, 3000, 100):
        shipper.write([record(i, message=f"{i} " + "x" * 400) for i in range(n, n + 100)])
    stats = shipper.stats()
    assert stats.accepted == 3000 and stats.dropped > 0
    assert stats.dropped + stats.pending == 3000
    dropped = [e for e in events.events if e.kind == "logs.ship_dropped"]
    assert dropped and all(e.level == "error" for e in dropped)
    assert sum(e.data["records"] for e in dropped) == stats.dropped
    assert dropped[-1].data["total"] == stats.dropped
    shipper.stop()


def test_loki_resends_keep_one_copy(tmp_path: Path) -> None:
    loki = FakeLoki(fail_next=[429], lose_answers_next=1)
    events, sleeps = Events(), Sleeps()
    shipper = Shipper(
        LokiFormat(LokiDestination(name="loki", url="http://127.0.0.1:3100"), {}),
        DiskBuffer(tmp_path / "loki", cap=MB),
        DirectTransport(loki.handle),
        events,
        sleep=sleeps,
    )
    shipper.write([record(n, replica=f"web-{n % 2}") for n in range(6)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()
    lines = [entry.line for _, entry in loki.entries()]
    assert sorted(lines) == sorted(set(lines)) and len(lines) == 6
    assert loki.duplicates == 6  # the lost answer's records came again and were kept once
    assert len(sleeps.delays) == 2


@pytest.mark.parametrize("status", [400, 422])
def test_loki_bad_requests_are_refused_for_good(tmp_path: Path, status: int) -> None:
    class Refusing:
        def post(self, request: Request) -> Answer:
            return Answer(status, {}, b"entry too far behind")

        def close(self) -> None:
            return

    events = Events()
    shipper = Shipper(
        LokiFormat(LokiDestination(name="loki", url="http://127.0.0.1:3100"), {}),
        DiskBuffer(tmp_path / "loki", cap=MB),
        Refusing(),
        events,
        sleep=Sleeps(),
    )
    shipper.write([record(1), record(2)])
    shipper.start()
    assert shipper.flush(WAIT)
    shipper.stop()
    assert shipper.stats().rejected == 2
    assert events.kinds() == ["logs.ship_rejected"]
