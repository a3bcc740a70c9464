"""The collector's parse worker process: the same rows and cursors as parsing in-process, and a
worker that dies costs a reading again from the cursor, never a line (none lost, none twice)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.model.logs import LogQuery
from conveyor.observe.logs.collect import Collector, CollectorOptions
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.parse_worker import ParseWorker, ParseWorkerLost
from conveyor.observe.logs.store import ROW_VALUES, LogStore
from conveyor.observe.logs.streams import ContainerStreams
from conveyor.runtime.log_protocol import STDERR, STDOUT, Frame
from conveyor.testing.logs import FakeContainerLogs

OPTS = CollectorOptions(
    discover_interval=0.05, flush_interval=0.02, idle_flush=60.0, parse_worker=True
)
WEB = {"io.conveyor.project": "shop", "io.conveyor.service": "web"}
TAGS = {1: "v1 s1 ", 2: "v1 s2 "}  # each source's `LogStore.tag`
TB = [
    "Traceback (most recent call last):",
    '  File "app.py", line 1, in <module>',
    "    run()",
]


@pytest.fixture
def worker() -> Iterator[ParseWorker]:
    w = ParseWorker()
    yield w
    w.stop()


def frames() -> list[Frame]:
    out: list[Frame] = []
    ts = 1_800_000_000 * 10**9
    texts = [
        '{"level":"warn","msg":"slow","ms":812}',
        'level=error msg="db down" retry=3',
        *TB,
        "ValueError: bad",
        "plain ERROR words",
    ]
    for i, text in enumerate(texts * 3):
        ts += 1000 if i % 4 else 0  # some lines share a stamp
        out.append((STDERR if i % 3 == 0 else STDOUT, ts, text, True))
    out.append((STDOUT, ts + 1, "a split li", False))  # a line the engine cut in two
    out.append((STDOUT, ts + 2, "ne, put together", True))
    return out


def test_the_worker_parses_as_the_follower_does(worker: ParseWorker) -> None:
    sources = {STDOUT: (1, Cursor()), STDERR: (2, Cursor(5, 1))}
    here, there = ContainerStreams(sources, TAGS), worker.streams(sources, TAGS)
    batch = frames()
    for part in (batch[:5], batch[5:11], batch[11:]):
        assert there.feed(part) == here.feed(part)
    assert there.flush() == here.flush()
    assert there.since() == here.since() > 0
    assert worker.pid is not None and worker.pid != os.getpid()
    there.close()
    assert worker._link is not None
    child = worker._link.process
    assert child._process is not None
    popen = child._process
    worker.stop()
    # It ended at the end of its socket (exit status 0), not killed; no new one after a stop.
    assert popen.returncode == 0 and not child.alive
    with pytest.raises(ParseWorkerLost, match="stopped"):
        worker.streams({STDOUT: (1, Cursor())}, TAGS).feed(batch)


def test_streams_in_a_worker_that_died_are_given_up_not_silently_reopened(
    worker: ParseWorker,
) -> None:
    sources = {STDOUT: (1, Cursor()), STDERR: (2, Cursor())}
    here, there = ContainerStreams(sources, TAGS), worker.streams(sources, TAGS)
    batch = frames()
    _, rows, moved = there.feed(batch[:2])
    assert rows and moved
    here.feed(batch[:2])
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # What it held is gone: the follower must hear so (and read again), not go on.
    with pytest.raises(ParseWorkerLost, match="ended"):
        there.feed(batch[2:4])
    there.restart()
    here.restart()
    assert there.since() == here.since()  # read again from what was handed over
    assert there.feed(batch[:9]) == here.feed(batch[:9])  # the first two skipped
    assert worker.starts == 2 and worker.pid not in (None, pid)


def stored(path: Path) -> list[str]:
    s = LogStore.open(path, create=False)
    try:
        return [r.message for r in reversed(s.search(LogQuery(limit=10_000)))]
    finally:
        s.close()


@pytest.fixture
def engine() -> FakeContainerLogs:
    return FakeContainerLogs(batch=3)


@pytest.fixture
def running(engine: FakeContainerLogs, tmp_path: Path) -> Iterator[tuple[Collector, list[str]]]:
    said: list[str] = []
    c = Collector("shop", None, tmp_path / "logs.db", engine, options=OPTS, report=said.append)
    c.start()
    yield c, said
    c.stop()


def kill_worker(c: Collector) -> int:
    assert c.parse_worker is not None
    pid = c.parse_worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_killed_worker_is_restarted_and_what_it_held_is_read_again_from_the_cursor(
    engine: FakeContainerLogs, running: tuple[Collector, list[str]], tmp_path: Path
) -> None:
    c, said = running
    engine.add("c1", WEB)
    engine.write("c1", "first", "second")
    assert c.wait_written(1, 10)  # "second" may still wait for what follows it
    # A traceback left open in the worker (its next line decides whether it goes on)...
    engine.write("c1", *TB)
    lines_before = c.stats.lines
    while c.stats.lines < lines_before + 3:  # the worker has taken it
        c.wait_written(10**9, 0.02)
    dead = kill_worker(c)
    # ...is lost with it; the follower reads again from the cursor and gets it whole.
    engine.write("c1", "ValueError: bad", "third")
    engine.write("c1", "fourth")
    assert c.wait_written(4, 20)  # "fourth" stays open: nothing came after it
    assert stored(tmp_path / "logs.db")[:4] == [
        "first",
        "second",
        "\n".join([*TB, "ValueError: bad"]),
        "third",
    ]
    assert c.parse_worker is not None and c.parse_worker.pid not in (None, dead)
    assert any("conveyor-logs-parse process" in m for m in said), said


def test_one_cpu_parses_in_the_followers(
    engine: FakeContainerLogs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    c = Collector("shop", None, tmp_path / "logs.db", engine)
    assert c.parse_worker is None
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert Collector("shop", None, tmp_path / "logs.db", engine).parse_worker is not None


def numbered(n: int, start: int = 0) -> list[Frame]:
    ts = 1_800_000_000 * 10**9
    return [(STDOUT, ts + i * 1000, f"line {i}", True) for i in range(start, start + n)]


def test_a_batch_whose_result_was_not_taken_is_read_again(worker: ParseWorker) -> None:
    """Two batches in the worker at once: the cursor a restart reads from is that of the
    last result taken, so a batch lost with the worker is read again, and one taken is not."""
    there = worker.streams({STDOUT: (1, Cursor())}, TAGS)
    batch = numbered(6)
    first, second = there.submit(batch[:3]), there.submit(batch[3:])
    taken, rows, moved = first.result()
    assert taken == 3 and rows[0::ROW_VALUES] == ["line 0", "line 1"]  # "line 2" is open
    assert moved == {1: Cursor(batch[1][1], 1)}
    assert second is not None  # its result never taken (the follower lost the worker)
    there.restart()
    assert there.since() == batch[1][1]  # after "line 1": the first result, not the second
    _, rows, _ = there.feed(batch)  # the engine's output again from there
    assert rows[0::ROW_VALUES] == ["line 2", "line 3", "line 4"]


@pytest.fixture
def bulk() -> FakeContainerLogs:
    return FakeContainerLogs(batch=1000)  # batches a follower leaves with the worker


def test_a_batch_left_with_the_worker_is_handed_over_when_the_output_pauses(
    bulk: FakeContainerLogs, tmp_path: Path
) -> None:
    # idle_flush is a minute: only the pause after the batch can hand its rows over.
    c = Collector("shop", None, tmp_path / "logs.db", bulk, options=OPTS)
    c.start()
    try:
        bulk.add("c1", WEB)
        bulk.write("c1", *(f"line {i}" for i in range(1000)))
        assert c.wait_written(999, 20)  # the last line stays open
        assert stored(tmp_path / "logs.db") == [f"line {i}" for i in range(999)]
    finally:
        c.stop()


def test_a_worker_killed_while_batches_are_in_flight_loses_and_repeats_no_line(
    bulk: FakeContainerLogs, tmp_path: Path
) -> None:
    c = Collector("shop", None, tmp_path / "logs.db", bulk, options=OPTS)
    c.start()
    try:
        bulk.add("c1", WEB)
        for part in range(8):
            bulk.write("c1", *(f"line {part * 1000 + i}" for i in range(1000)))
            if part in (2, 5):
                while c.stats.records < part * 900:  # part of it written, batches in flight
                    c.wait_written(10**9, 0.01)
                kill_worker(c)
        assert c.wait_written(7999, 60)
        assert stored(tmp_path / "logs.db") == [f"line {i}" for i in range(7999)]
        assert c.parse_worker is not None and c.parse_worker.starts == 3
    finally:
        c.stop()
