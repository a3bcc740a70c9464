"""The collector against an in-memory engine: every line once, across restarts of the
collector and of the engine, with multi-line records kept whole. Each test runs twice: parsing
in the collector's parse worker process, and in its follower threads (one CPU)."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from conveyor.errors import LockBusy, ShipError
from conveyor.model.logs import LogQuery, LogRecord
from conveyor.observe.logs.collect import Collector, CollectorOptions
from conveyor.observe.logs.store import LogStore
from conveyor.runtime.log_protocol import STDERR, STDOUT
from conveyor.testing.logs import FakeContainerLogs

OPTS = CollectorOptions(discover_interval=0.05, flush_interval=0.02, idle_flush=0.1)
WEB = {
    "io.conveyor.project": "shop",
    "io.conveyor.service": "web",
    "io.conveyor.replica": "web-1",
    "io.conveyor.release": "4",
}
TB = [
    "Traceback (most recent call last):",
    '  File "app.py", line 1, in <module>',
    "ValueError: bad",
]


@pytest.fixture(autouse=True, params=[True, False], ids=["worker", "in-process"])
def parse_worker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    on = bool(request.param)
    monkeypatch.setattr(sys.modules[__name__], "OPTS", dataclasses.replace(OPTS, parse_worker=on))
    return on


@pytest.fixture
def engine() -> FakeContainerLogs:
    return FakeContainerLogs(batch=7)  # small batches: stops fall between them


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "logs.db"


def collector(engine: FakeContainerLogs, path: Path) -> Collector:
    return Collector("shop", "staging", path, engine, options=OPTS)


@pytest.fixture
def running(engine: FakeContainerLogs, path: Path) -> Iterator[Collector]:
    c = collector(engine, path)
    c.start()
    yield c
    c.stop()


def stored(path: Path, **query: object) -> list[LogRecord]:
    s = LogStore.open(path, create=False)
    try:
        return list(reversed(s.search(LogQuery(limit=100_000, **query))))  # type: ignore[arg-type]
    finally:
        s.close()


def messages(path: Path, **query: object) -> list[str]:
    return [r.message for r in stored(path, **query)]


def test_lines_are_parsed_and_labelled(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB)
    engine.write("c1", '{"level":"error","msg":"db down","retry":"3"}')
    engine.write("c1", "level=warn msg=slow ms=900", stream=STDERR)
    engine.write("c1", *TB, stream=STDERR)
    engine.write("c1", "plain words")
    assert running.wait_written(4, 10)
    records = stored(path)
    by_message = {r.message: r for r in records}
    assert by_message["db down"].level == "error"
    assert by_message["db down"].fields == {"retry": "3"}
    assert by_message["slow"].labels.stream == "stderr"
    tb = by_message["\n".join(TB)]
    assert tb.level == "error"
    labels = by_message["plain words"].labels
    assert (labels.project, labels.environment, labels.service, labels.replica) == (
        "shop",
        "staging",
        "web",
        "web-1",
    )
    assert (labels.release, labels.container, labels.stream) == (4, "c1", "stdout")


def test_a_restart_of_the_collector_loses_no_line_and_repeats_none(
    engine: FakeContainerLogs, path: Path
) -> None:
    engine.add("c1", WEB)
    lines = [f"line {i}" for i in range(500)]
    first = collector(engine, path)
    first.start()
    engine.write("c1", *lines[:250])
    engine.write("c1", *[f"burst {i}" for i in range(5)], same_stamp=True)
    assert first.wait_written(100, 10)
    first.stop()  # mid-stream: some of the 255 are read, maybe not all
    engine.write("c1", *lines[250:])
    second = collector(engine, path)
    second.start()
    assert second.wait_written(505 - first.stats.records, 10)
    second.stop()
    want = lines[:250] + [f"burst {i}" for i in range(5)] + lines[250:]
    assert messages(path) == want


def test_a_record_open_at_a_stop_is_read_again_whole(engine: FakeContainerLogs, path: Path) -> None:
    engine.add("c1", WEB)
    first = collector(engine, path)
    first.start()
    engine.write("c1", "before", TB[0], TB[1])  # the traceback is not finished
    assert first.wait_written(1, 10)
    first.stop()
    engine.write("c1", TB[2], "after")
    second = collector(engine, path)
    second.start()
    assert second.wait_written(2, 10)
    second.stop()
    assert messages(path) == ["before", "\n".join(TB), "after"]


def test_the_engine_going_away_loses_and_repeats_nothing(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB)
    engine.write("c1", "one", "two", TB[0], TB[1])
    assert running.wait_written(2, 10)
    engine.break_streams(down=True)  # dockerd stops; the container keeps running
    engine.write("c1", TB[2], "three")
    assert engine.wait_refused(2, 10)  # the collector kept trying while it was down
    engine.come_back()
    assert running.wait_written(4, 10)
    engine.write("c1", "four")
    assert running.wait_written(5, 10)
    assert messages(path) == ["one", "two", "\n".join(TB), "three", "four"]
    assert running.stats.errors >= 1  # it said so


def test_split_lines_are_put_together(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB)
    t = 1_900_000_000 * 10**9
    engine.write_frames(
        "c1",
        [
            (STDOUT, t, "a" * 10, False),
            (STDOUT, t, "b" * 10, False),
            (STDOUT, t, "c", True),
            (STDOUT, t + 1, "next", True),
        ],
    )
    assert running.wait_written(2, 10)
    assert messages(path) == ["a" * 10 + "b" * 10 + "c", "next"]


def test_a_stopped_container_is_read_once_and_again_after_a_restart(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB, running=False)
    engine.write("c1", "from a one-shot run")
    assert running.wait_written(1, 10)
    reads = len(engine.reads)
    running.discover()
    running.discover()
    assert len(engine.reads) == reads  # drained: not read again
    engine.start("c1")
    engine.write("c1", "second run")
    assert running.wait_written(2, 10)
    assert messages(path) == ["from a one-shot run", "second run"]


def test_a_stopped_containers_output_that_breaks_off_is_read_on_not_taken_for_its_end(
    engine: FakeContainerLogs, path: Path
) -> None:
    engine.add("c1", WEB, running=False)
    engine.write("c1", *(f"line {i}" for i in range(100)))
    engine.cut_next(2)  # the first reading breaks off after 14 of the 100 lines
    said: list[str] = []
    c = Collector("shop", None, path, engine, options=OPTS, report=said.append)
    c.start()
    try:
        assert c.wait_written(100, 10)
        reads = len(engine.reads)
        c.discover()
        assert len(engine.reads) == reads  # read to its end this time: drained
    finally:
        c.stop()
    assert messages(path) == [f"line {i}" for i in range(100)]  # each once, in order
    assert len([cid for cid, _since in engine.reads if cid == "c1"]) == 2  # read again once
    assert any("broke off" in m for m in said)


def test_a_removed_replica_stays_searchable(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB)
    engine.write("c1", "old replica says hi")
    assert running.wait_written(1, 10)
    engine.remove("c1")
    engine.add("c2", {**WEB, "io.conveyor.replica": "web-2", "io.conveyor.release": "5"})
    engine.write("c2", "new replica says hi")
    assert running.wait_written(2, 10)
    assert messages(path, services=("web",), text="says") == [
        "old replica says hi",
        "new replica says hi",
    ]
    assert messages(path, release=4) == ["old replica says hi"]


def test_service_addresses_and_other_projects_are_left_out(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("addr", {"io.conveyor.project": "shop", "io.conveyor.address": "web"})
    engine.add("other", {"io.conveyor.project": "elsewhere"})
    engine.add("c1", WEB)
    for cid in ("addr", "other", "c1"):
        engine.write(cid, f"from {cid}")
    assert running.wait_written(1, 10)
    running.discover()
    assert {cid for cid, _ in engine.reads} == {"c1"}
    assert messages(path) == ["from c1"]


def test_one_collector_per_store(engine: FakeContainerLogs, running: Collector, path: Path) -> None:
    with pytest.raises(LockBusy, match="already collects"):
        collector(engine, path).start()


def test_a_quiet_stream_hands_over_its_open_record(
    engine: FakeContainerLogs, running: Collector, path: Path
) -> None:
    engine.add("c1", WEB)
    engine.write("c1", "config:", "  a: 1")  # could go on: held until the stream is quiet
    assert running.wait_written(1, 10)
    assert messages(path) == ["config:\n  a: 1"]


class RecordingSink:
    """A LogSink that keeps what it is handed (or refuses it while `refuse` is set)."""

    def __init__(self) -> None:
        self.batches: list[list[LogRecord]] = []
        self.refuse = False
        self.stopped = False

    def write(self, records: Sequence[LogRecord]) -> None:
        if self.refuse:
            raise ShipError("buffer full")
        self.batches.append(list(records))

    def stop(self, timeout: float = 10.0) -> None:
        self.stopped = True

    @property
    def records(self) -> list[LogRecord]:
        return [r for batch in self.batches for r in batch]


def test_every_stored_record_reaches_the_sink_as_a_search_returns_it(
    engine: FakeContainerLogs, path: Path
) -> None:
    sink = RecordingSink()
    c = Collector("shop", "staging", path, engine, options=OPTS, sink=sink)
    c.start()
    try:
        engine.add("c1", WEB)
        engine.write("c1", '{"level":"error","msg":"db down","retry":"3"}')
        engine.write("c1", *TB, stream=STDERR)
        engine.write("c1", *[f"line {i}" for i in range(30)])
        assert c.wait_written(32, 10)
    finally:
        c.stop()
    assert sink.stopped
    assert sink.records == stored(path)  # same ids, labels, levels, fields and times


def test_a_sink_that_refuses_is_reported_and_the_store_keeps_the_lines(
    engine: FakeContainerLogs, path: Path
) -> None:
    sink = RecordingSink()
    sink.refuse = True
    said: list[str] = []
    c = Collector("shop", None, path, engine, options=OPTS, report=said.append, sink=sink)
    c.start()
    try:
        engine.add("c1", WEB)
        engine.write("c1", "kept here")
        assert c.wait_written(1, 10)
    finally:
        c.stop()
    assert messages(path) == ["kept here"]
    assert sink.records == []
    assert any("not shipped" in s and "buffer full" in s for s in said)
