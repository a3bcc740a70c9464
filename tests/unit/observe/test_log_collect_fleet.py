"""The collector over a fleet: one in-memory engine per host. Each container's lines are
labelled with its host and found by it; a host that does not answer stalls no other; a host
that goes away and comes back is read on from its cursors (no line lost, none twice); its
errors are said once, not once per retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.model.logs import LogQuery, LogRecord
from conveyor.observe.logs.collect import Collector, CollectorOptions, discover_wait
from conveyor.observe.logs.store import LogStore
from conveyor.testing.logs import FakeContainerLogs

OPTS = CollectorOptions(
    discover_interval=0.05,
    flush_interval=0.02,
    idle_flush=0.1,
    backoff_max=0.2,
    host_backoff_max=0.2,
    parse_worker=False,
)


def replica(name: str) -> dict[str, str]:
    return {
        "io.conveyor.project": "shop",
        "io.conveyor.service": name.split("-", maxsplit=1)[0],
        "io.conveyor.replica": name,
        "io.conveyor.release": "3",
    }


@pytest.fixture
def h1() -> FakeContainerLogs:
    return FakeContainerLogs(batch=7)


@pytest.fixture
def h2() -> FakeContainerLogs:
    return FakeContainerLogs(batch=7)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "logs.db"


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def fleet(
    h1: FakeContainerLogs, h2: FakeContainerLogs, path: Path, said: list[str]
) -> Iterator[Collector]:
    c = Collector("shop", "prod", path, {"h1": h1, "h2": h2}, options=OPTS, report=said.append)
    c.start()
    yield c
    h1.hang(False)
    h2.hang(False)
    c.stop()


def stored(path: Path, **query: object) -> list[LogRecord]:
    s = LogStore.open(path, create=False)
    try:
        return list(reversed(s.search(LogQuery(limit=100_000, **query))))  # type: ignore[arg-type]
    finally:
        s.close()


def messages(path: Path, **query: object) -> list[str]:
    return [r.message for r in stored(path, **query)]


def test_each_hosts_lines_are_labelled_with_their_host_and_found_by_it(
    h1: FakeContainerLogs, h2: FakeContainerLogs, fleet: Collector, path: Path
) -> None:
    h1.add("c1", replica("web-1-1"))
    h2.add("c2", replica("web-1-2"))
    h2.add("c3", replica("worker-1-1"))
    h1.write("c1", "from h1")
    h2.write("c2", "from h2")
    h2.write("c3", "worker on h2")
    assert fleet.wait_written(3, 10)
    where = {r.message: (r.labels.host, r.labels.replica) for r in stored(path)}
    assert where == {
        "from h1": ("h1", "web-1-1"),
        "from h2": ("h2", "web-1-2"),
        "worker on h2": ("h2", "worker-1-1"),
    }
    assert sorted(messages(path, services=("web",))) == ["from h1", "from h2"]
    assert sorted(messages(path, hosts=("h2",))) == ["from h2", "worker on h2"]
    assert messages(path, hosts=("h2",), services=("web",)) == ["from h2"]
    assert messages(path, hosts=("h3",)) == []


def test_a_host_that_does_not_answer_stalls_no_other(
    h1: FakeContainerLogs, h2: FakeContainerLogs, path: Path, said: list[str]
) -> None:
    h1.add("c1", replica("web-1-1"))
    h1.write("c1", "h1 before")
    h1.hang()  # every listing of h1 waits, from the first one on
    c = Collector("shop", None, path, {"h1": h1, "h2": h2}, options=OPTS, report=said.append)
    c.start()
    try:
        h2.add("c2", replica("web-1-2"))
        h2.write("c2", *(f"h2 line {i}" for i in range(20)))
        assert c.wait_written(20, 10)
        assert messages(path) == [f"h2 line {i}" for i in range(20)]
        h1.hang(False)
        assert c.wait_written(21, 10)
        assert messages(path, hosts=("h1",)) == ["h1 before"]
    finally:
        h1.hang(False)
        c.stop()


def test_a_host_that_goes_away_and_comes_back_is_read_on_from_its_cursors(
    h1: FakeContainerLogs, h2: FakeContainerLogs, fleet: Collector, path: Path
) -> None:
    h1.add("c1", replica("web-1-1"))
    h2.add("c2", replica("web-1-2"))
    h1.write("c1", *(f"h1 line {i}" for i in range(100)))
    assert fleet.wait_written(100, 10)
    h1.break_streams(down=True)  # the link is cut: readings end, every request fails
    h1.write("c1", *(f"h1 line {i}" for i in range(100, 200)))  # the replica writes on
    assert h1.wait_refused(10, 10)
    h2.write("c2", *(f"h2 line {i}" for i in range(50)))
    assert fleet.wait_written(150, 10)  # h2's lines are stored while h1 is away
    assert messages(path, hosts=("h2",)) == [f"h2 line {i}" for i in range(50)]
    assert len(messages(path, hosts=("h1",))) == 100
    h1.come_back()
    assert fleet.wait_written(250, 10)
    assert messages(path, hosts=("h1",)) == [f"h1 line {i}" for i in range(200)]
    assert len(stored(path)) == 250  # none twice


def test_a_host_away_is_said_once_per_error_not_once_per_retry_and_again_when_it_is_lost_again(
    h1: FakeContainerLogs, h2: FakeContainerLogs, fleet: Collector, path: Path, said: list[str]
) -> None:
    h1.add("c1", replica("web-1-1"))
    h1.add("c2", replica("web-1-2"))
    h1.write("c1", "one")
    h1.write("c2", "two")
    assert fleet.wait_written(2, 10)
    h1.break_streams(down=True)
    assert h1.wait_refused(30, 20)  # discovery and both followers, several times each
    about_h1 = [m for m in said if "on h1" in m]
    assert about_h1, said
    assert len(about_h1) == len(set(about_h1)), about_h1  # each said once
    listing = [m for m in about_h1 if m.startswith("logs of shop on h1:")]
    assert len(listing) == 1, about_h1
    h1.come_back()
    _wait_listings(h1, 3)  # it answered a listing (and its errors were forgotten)
    h1.break_streams(down=True)
    assert h1.wait_refused(h1.refused + 5, 20)
    again = [m for m in said if m.startswith("logs of shop on h1:")]
    assert len(again) == 2, said
    h1.come_back()


def _wait_listings(engine: FakeContainerLogs, more: int) -> None:
    start = engine.listings
    done = threading.Event()
    for _ in range(400):
        if engine.listings >= start + more:
            return
        done.wait(0.05)
    raise AssertionError(f"the engine was listed {engine.listings - start} times, not {more}")


def test_one_engine_labels_no_host(h1: FakeContainerLogs, path: Path) -> None:
    c = Collector("shop", None, path, h1, options=OPTS)
    c.start()
    try:
        h1.add("c1", replica("web-1-1"))
        h1.write("c1", "here")
        assert c.wait_written(1, 10)
    finally:
        c.stop()
    (record,) = stored(path)
    assert record.labels.host is None


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 15.0), (60, 15.0)],
)
def test_a_host_that_does_not_answer_is_looked_at_less_often(failures: int, wait: float) -> None:
    assert discover_wait(failures, 1.0, 15.0) == wait


def test_the_back_off_never_goes_below_the_discovery_interval() -> None:
    assert discover_wait(3, 2.0, 0.5) == 2.0
