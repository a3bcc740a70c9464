"""The log collector: follows every container of a project through the Docker Engine's logs
API and writes what they say, parsed and labelled, into the embedded store.

    collector = Collector(project, environment, store_path, DockerLogs())
    collector.start()        # threads; takes logs.lock next to the store (one collector)
    ...
    collector.stop()

    # a fleet: one engine per host, by name; each container's lines are labelled with it
    Collector(project, environment, store_path, {"h1": logs_h1, "h2": logs_h2})

Threads:

- `logs-discover` (on a fleet `logs-discover-<host>`, one per host, so a host that does not
  answer stalls no other) lists the project's containers every `discover_interval` seconds
  and starts a follower for each one that runs (or stopped with output not read yet):
  replicas, one-shot services and CI job containers alike (service addresses write nothing
  and are left out). A fleet host whose engine does not answer is looked at again after a
  back-off that doubles up to `host_backoff_max`;
- one `logs-<container>` follower per container reads its output from the cursor stored for
  each of its streams and has it turned into rows (`streams.ContainerStreams`: what is new,
  `cursor.Resume`; multi-line records joined; parsed) — in the parse worker process
  (`parse_worker`) on a machine with more than one CPU, so parsing and the writer's SQLite
  work run at once, else in the follower itself — and hands them to the writer. When its
  stream ends, the container either stopped (the rest is flushed; done) or the engine went
  away (a dockerd restart), or the parse worker was lost: it reads again from the last record
  it handed over, with back-off until the engine (or a new worker) answers;
- `logs-writer` writes batches (and the cursors they move) in one transaction each, hands
  each stored batch to the sink when one was given (the shippers to Elasticsearch and Loki:
  `ship/`), and runs the store's maintenance (retention, compaction).

A record a stream leaves open (the last line might go on) is handed over once the stream has
been quiet for `idle_flush` seconds (the engine reading says so), by the follower itself, so
each stream's records and cursors reach the writer in order.

Stopping loses nothing: what was handed over is written before the writer ends; lines of a
record still open are read again by the next start, because the stored cursor stops before
them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError, LockBusy, ShipError
from conveyor.model.logs import Stream
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.labels import collected, labels_of
from conveyor.observe.logs.parse_worker import ParseWorker
from conveyor.observe.logs.retention import Retention
from conveyor.observe.logs.ship.sink import LogSink
from conveyor.observe.logs.store import ROW_VALUES, FlatRows, LogStore
from conveyor.observe.logs.streams import ContainerStreams, Pending, Sources, Streams
from conveyor.runtime.log_protocol import (
    STDERR,
    STDOUT,
    ContainerLogs,
    ContainerRun,
    Frame,
    LogContainer,
    LogReading,
)

LOCK_NAME = "logs.lock"
# What a follower hands the writer: rows (flat), and the cursor each source reaches with them.
Handover = tuple[FlatRows, dict[int, Cursor]]
Report = Callable[[str], None]
# Seconds of quiet after which a follower hands over the batch the parse worker holds for it
# (while output flows, the next batch's arrival does).
_SETTLE_AFTER = 0.02
# Frames in a batch from which it is left with the parse worker while the next is read: a
# reading that is behind the output gets full batches (a socket read of 256 KiB: thousands).
_PIPELINE_FROM = 256


@dataclass(frozen=True)
class CollectorOptions:
    discover_interval: float = 1.0  # seconds between looks for new containers
    flush_interval: float = 0.2  # seconds the writer waits to fill a batch
    batch_rows: int = 20_000  # rows per transaction at most
    idle_flush: float = 0.5  # seconds a stream stays quiet before its open record is written
    maintain_interval: float = 60.0  # seconds between retention and compaction passes
    queue_batches: int = 512  # handovers waiting for the writer before followers wait
    backoff_max: float = 5.0  # seconds between attempts while the engine does not answer
    recheck: float = 5.0  # seconds of quiet after which a followed container is looked at
    suspect_for: float = 60.0  # seconds after an engine restart quiet readings are re-opened
    host_backoff_max: float = 15.0  # seconds at most between looks at a fleet host that is down
    # Parse in a worker process (`parse_worker`), so parsing and storing use two CPUs at
    # once; None: when the machine has more than one CPU.
    parse_worker: bool | None = None


@dataclass
class CollectorStats:
    lines: int = 0  # entries read from the engine (after the cursor)
    records: int = 0  # records written
    followed: int = 0  # followers started
    errors: int = 0  # engine errors met (each retried)
    last_error: str = ""


class _Watch:
    """One engine the collector follows (this machine's, or a fleet host's, by name): the
    followers of its containers, and its stopped containers whose output was read to the
    end."""

    def __init__(self, host: str | None, docker: ContainerLogs) -> None:
        self.host = host
        self.docker = docker
        self.followers: dict[str, _Follower] = {}
        self.drained: dict[str, str] = {}  # container -> FinishedAt when its output was read
        self.failing = False  # its last listing failed

    @property
    def thread_name(self) -> str:
        return "logs-discover" if self.host is None else f"logs-discover-{self.host}"

    @property
    def where(self) -> str:
        """How a message names the engine: nothing on one host, ` on h2` on a fleet."""
        return "" if self.host is None else f" on {self.host}"


class Collector:
    def __init__(
        self,
        project: str,
        environment: str | None,
        store_path: Path,
        docker: ContainerLogs | Mapping[str | None, ContainerLogs],
        *,
        policy: Retention | None = None,
        options: CollectorOptions | None = None,
        report: Report | None = None,
        sink: LogSink | None = None,
    ) -> None:
        """`docker` is the engine to follow, or on a fleet one per host by the host's name
        (each container's lines are labelled with its host; None: this machine's engine;
        docs/logs.md). `report` hears, in a sentence, what a user should know (the engine
        unreachable, a store error); it must not block. `sink` is handed every batch once it
        is stored, with the store's ids (the collector stops it when it stops)."""
        self.project = project
        self.environment = environment
        self.store_path = store_path
        engines: dict[str | None, ContainerLogs] = (
            dict(docker.items()) if isinstance(docker, Mapping) else {None: docker}
        )
        self._watches = [_Watch(host, engine) for host, engine in engines.items()]
        self.policy = policy or Retention()
        self.options = options or CollectorOptions()
        self.report = report or (lambda _msg: None)
        self.sink = sink
        self.stats = CollectorStats()
        self._stop = threading.Event()
        self._queue: queue.Queue[Handover] = queue.Queue(self.options.queue_batches)
        # Held to register a follower and by `stop` to collect them: none starts after it.
        self._following = threading.Lock()
        self._said: dict[tuple[str | None, str], str] = {}  # what `_failed` last said, by key
        self._lock_fd: int | None = None
        self._store: LogStore | None = None
        self._threads: list[threading.Thread] = []
        self._written = threading.Condition()
        use_worker = self.options.parse_worker
        if use_worker is None:
            use_worker = (os.cpu_count() or 1) > 1
        self._use_worker = use_worker
        self.parse_worker = ParseWorker() if use_worker else None  # a new one at each start

    # lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Take the store's lock, open it and start the threads. LockBusy when another
        collector writes this store."""
        self._lock_fd = _take_lock(self.store_path.parent / LOCK_NAME)
        try:
            self._store = LogStore.open(self.store_path, self.policy)
        except BaseException:
            _release_lock(self._lock_fd)
            self._lock_fd = None
            raise
        if self._use_worker:
            self.parse_worker = ParseWorker()
        writer = threading.Thread(target=self._write_loop, name="logs-writer", daemon=True)
        writer.start()
        self._threads.append(writer)
        for watch in self._watches:
            t = threading.Thread(
                target=self._discover_loop, args=(watch,), name=watch.thread_name, daemon=True
            )
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop following, write what was handed over, close the store, release the lock."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        # Discovery first, so no follower starts after the others were told to stop; the
        # writer last, so it writes what the followers handed over.
        # (A discovery still waiting on a host that does not answer starts no follower after
        # this: `_follow` looks at `_stop` under `_following`.)
        for t in self._threads:
            if t.name.startswith("logs-discover"):
                t.join(max(0.0, deadline - time.monotonic()))
        with self._following:
            followers = [f for w in self._watches for f in w.followers.values()]
        for f in followers:
            f.close()
        for f in followers:
            f.join(max(0.0, deadline - time.monotonic()))
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()
        if self.parse_worker is not None:
            self.parse_worker.stop(max(0.0, deadline - time.monotonic()))
        if self.sink is not None:
            self.sink.stop(max(0.0, deadline - time.monotonic()))
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._lock_fd is not None:
            _release_lock(self._lock_fd)
            self._lock_fd = None
        for watch in self._watches:
            close = getattr(watch.docker, "close", None)
            if close is not None:
                close()  # its client's connections (a fleet host's tunnel outlives it)

    def run(self, stopping: threading.Event) -> None:
        """Collect until `stopping` is set (for a host that runs it in its own thread)."""
        self.start()
        try:
            stopping.wait()
        finally:
            self.stop()

    @property
    def store(self) -> LogStore:
        if self._store is None:
            raise ConveyorError("the log collector is not running")
        return self._store

    def wait_written(self, records: int, timeout: float) -> bool:
        """Block until at least `records` records were written (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._written:
            while self.stats.records < records:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._written.wait(left)
        return True

    # discovery -----------------------------------------------------------------------------

    def _discover_loop(self, watch: _Watch) -> None:
        opts = self.options
        failures = 0
        while not self._stop.is_set():
            wait = opts.discover_interval
            try:
                self._discover(watch)
                failures = 0
            except Exception as e:  # the engine restarting, a store error; or a bug, which
                # must not stop collecting for good either
                said = str(e) if isinstance(e, ConveyorError) else f"{type(e).__name__}: {e}"
                self._failed(f"logs of {self.project}{watch.where}: {said}", (watch.host, ""))
                watch.failing = True
                if watch.host is not None:
                    # A fleet host that does not answer: each look may cost an SSH connect
                    # timeout, so look less often (its followers retry on their own).
                    failures += 1
                    wait = discover_wait(failures, opts.discover_interval, opts.host_backoff_max)
            self._stop.wait(wait)

    def discover(self) -> None:
        """Start a follower for each container whose output is not being read and may have
        lines after its cursor (on every engine, one after the other)."""
        for watch in self._watches:
            self._discover(watch)

    def _discover(self, watch: _Watch) -> None:
        docker = watch.docker
        found = docker.log_containers(self.project)
        if watch.failing:  # it answers again: its errors are worth saying again
            watch.failing = False
            self._forget(watch.host)
        for c in found:
            if self._stop.is_set() or not collected(c.labels):
                continue
            f = watch.followers.get(c.id)
            if f is not None and f.alive:
                continue
            if not c.running:
                run = docker.container_run(c.id)
                if run is None or watch.drained.get(c.id) == run.finished_at:
                    continue
            self._follow(watch, c)
        with self._following:
            for cid, f in list(watch.followers.items()):
                if not f.alive:
                    del watch.followers[cid]

    def _follow(self, watch: _Watch, c: LogContainer) -> None:
        with self._following:
            if self._stop.is_set():
                return
            store = self.store
            streams: tuple[Stream, ...] = ("stdout", "stderr")
            sources = {
                stream: store.source(
                    labels_of(c.id, c.labels, stream, self.project, self.environment, watch.host)
                )
                for stream in streams
            }
            f = _Follower(self, watch, c.id, sources)
            watch.followers[c.id] = f
            self.stats.followed += 1
            f.start()

    def _streams(self, sources: Sources) -> Streams:
        """Where a follower's output is parsed: the worker process, or the follower itself."""
        tags = {source: self.store.tag(source) for source, _ in sources.values()}
        if self.parse_worker is None:
            return ContainerStreams(sources, tags)
        return self.parse_worker.streams(sources, tags)

    def _count_lines(self, n: int) -> None:
        with self._written:
            self.stats.lines += n

    def _failed(self, message: str, key: tuple[str | None, str] | None = None) -> None:
        """Count an error, and report it once per distinct error, not once per retry: of
        what `key` names (an engine's discovery: (host, ""); a follower: (host, container)),
        or, without one, of the collector as a whole."""
        self.stats.errors += 1
        if key is None:
            if message != self.stats.last_error:
                self.report(message)
        elif self._said.get(key) != message:
            self._said[key] = message
            self.report(message)
        self.stats.last_error = message

    def _forget(self, host: str | None) -> None:
        """An engine answers again: what its discovery and followers said may be said again."""
        for key in list(self._said):  # a copy: followers may add keys meanwhile
            if key[0] == host:
                self._said.pop(key, None)

    # writing -------------------------------------------------------------------------------

    def _hand_over(self, rows: FlatRows, cursors: dict[int, Cursor]) -> bool:
        """Queue a batch for the writer, waiting while it is behind; False once stopping."""
        while True:
            try:
                self._queue.put((rows, cursors), timeout=0.2)
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _write_loop(self) -> None:
        opts = self.options
        next_maintain = time.monotonic() + opts.maintain_interval
        while True:
            stopping = self._stop.is_set()
            rows: FlatRows = []
            cursors: dict[int, Cursor] = {}
            deadline = time.monotonic() + opts.flush_interval
            while len(rows) < opts.batch_rows * ROW_VALUES:
                wait = deadline - time.monotonic()
                try:
                    got, moved = (
                        self._queue.get_nowait()
                        if stopping or wait <= 0
                        else self._queue.get(timeout=wait)
                    )
                except queue.Empty:
                    break
                rows.extend(got)
                cursors.update(moved)
            if rows or cursors:
                self._write(rows, cursors)
            elif stopping:
                return
            if not stopping and time.monotonic() >= next_maintain:
                self._maintain()
                next_maintain = time.monotonic() + opts.maintain_interval

    def _write(self, rows: FlatRows, cursors: dict[int, Cursor]) -> None:
        while True:
            try:
                last = self.store.write_flat(rows, cursors)
                break
            except ConveyorError as e:
                self._failed(f"log store {self.store_path}: {e}")
            except Exception as e:  # sqlite3 errors: the disk is full, the file is locked
                self._failed(f"log store {self.store_path}: {type(e).__name__}: {e}")
            if self._stop.wait(1.0):
                return  # not written: the cursors were not moved either, so nothing is lost
        with self._written:
            self.stats.records += len(rows) // ROW_VALUES
            self._written.notify_all()
        if self.sink is not None and rows:
            self._ship(rows, last)

    def _ship(self, rows: FlatRows, last: int) -> None:
        """The stored batch to the sink, as the records a search would return. The store
        keeps them either way: a sink that cannot take them is reported, not retried here
        (the shippers retry what reached their buffers)."""
        records = self.store.written_flat(rows, last - len(rows) // ROW_VALUES + 1)
        assert self.sink is not None
        try:
            self.sink.write(records)
        except ShipError as e:
            self._failed(f"logs of {self.project} not shipped: {e}")
        except Exception as e:  # a bug in a shipper must not stop the store's writer
            self._failed(f"logs of {self.project} not shipped: {type(e).__name__}: {e}")

    def _maintain(self) -> None:
        try:
            self.store.maintain()
        except Exception as e:
            self._failed(f"log store maintenance: {type(e).__name__}: {e}")


class _Follower:
    def __init__(
        self, owner: Collector, watch: _Watch, container: str, sources: dict[Stream, int]
    ) -> None:
        self.owner = owner
        self.watch = watch
        self.container = container
        store = owner.store
        self.streams = owner._streams(
            {
                STDOUT: (sources["stdout"], store.cursor(sources["stdout"])),
                STDERR: (sources["stderr"], store.cursor(sources["stderr"])),
            }
        )
        self._reading: object = None
        # The batch the parse worker is parsing while the next one is read (its result is
        # taken before any other, so rows and cursors reach the writer in order).
        self._pending: Pending | None = None
        self._pipelined = owner.parse_worker is not None
        self._fed_at = 0.0  # monotonic time of the last frames fed
        self._closed = threading.Event()
        self._suspect_until = 0.0  # monotonic time until which quiet readings are re-opened
        self._reopened = False  # the last reading was ended here, not by the engine
        self._thread = threading.Thread(
            target=self._run, name=f"logs-{container[:12]}", daemon=True
        )

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def close(self) -> None:
        self._closed.set()
        reading = self._reading
        close = getattr(reading, "close", None)
        if close is not None:
            close()

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            self.streams.close()

    def _follow(self) -> None:
        owner = self.owner
        docker = self.watch.docker
        key = (self.watch.host, self.container)
        backoff = 0.2
        while not self._closed.is_set():
            try:
                run = docker.container_run(self.container)
                if run is None:
                    return  # removed: whatever it wrote was read or is gone with it
                since = self.streams.since()
                reading = docker.read_logs(
                    self.container, since, run.running, run.tty, owner.options.idle_flush
                )
                self._reading = reading
                if self._closed.is_set():
                    reading.close()
                    return
                self._read(reading, run)
                if self._closed.is_set():
                    return  # stopping: what is open is read again next time
                self._settle()
                after = docker.container_run(self.container)
                if after is None:
                    self._flush_all()
                    return  # removed: whatever it wrote was read or is gone with it
                # The output broke off (a transport error, the engine going away) rather
                # than ended: what was read need not be all of it, even of a stopped
                # container, so it is never taken for the end (the rest would stay unread
                # for good); reading goes on from the last record handed over.
                broke_off = not reading.complete and not self._reopened
                if not after.running and not broke_off:
                    self._flush_all()
                    if not run.running:  # read to the end of a stopped container: done
                        self.watch.drained[self.container] = after.finished_at
                        return
                    # Followed until it stopped: read what is left once more, from the
                    # cursor (a reading the engine's restart left stale ends without it).
                    self._restart()
                    continue
                # The output ended while the container runs, or broke off: the engine went
                # away (a restart), or the reading was found stale. Read again from the last
                # record handed over; right after an engine restart, distrust quiet readings.
                if not self._reopened:
                    self._suspect_until = time.monotonic() + owner.options.suspect_for
                self._reopened = False
                self._restart()
                if broke_off and not after.running:
                    # The engine is up but cut a stopped container's output: say so, and
                    # back off further should it keep doing it.
                    owner._failed(
                        f"logs of {self.container[:12]}{self.watch.where}: the engine's "
                        "output broke off before its end; reading it again from the cursor",
                        key,
                    )
                else:
                    backoff = 0.2
            except ConveyorError as e:
                owner._failed(f"logs of {self.container[:12]}{self.watch.where}: {e}", key)
                self._restart()
            if self._closed.wait(backoff):
                return
            backoff = min(backoff * 2, owner.options.backoff_max)

    def _read(self, reading: LogReading, run: ContainerRun) -> None:
        """Consume a reading. While it is quiet, look at the container every `recheck`
        seconds: a container that stopped, or was restarted, ends the reading (the engine
        has been seen to leave a followed reading silent after its own restart, so the
        container's exit never reaches it); so does any quiet reading shortly after an
        engine restart (read again to be sure)."""
        opts = self.owner.options
        last_check = time.monotonic()
        for frames in reading:
            self._consume(frames, reading)
            if frames or not run.running:
                continue
            now = time.monotonic()
            if now - last_check < opts.recheck:
                continue
            last_check = now
            current = self.watch.docker.container_run(self.container)
            stale = now < self._suspect_until
            if current is None or not current.running or current.started_at != run.started_at:
                stale = True
            if stale:
                self._reopened = True
                reading.close()
                return

    def _restart(self) -> None:
        """Read again from the last records handed over (the current reading, if one is
        still open, is given up: a parse worker was lost in the middle of it)."""
        close = getattr(self._reading, "close", None)
        if close is not None:
            close()
        self._pending = None  # its rows were not handed over: they are read again
        self.streams.restart()

    def _consume(self, frames: list[Frame], reading: LogReading) -> None:
        idle_flush = self.owner.options.idle_flush
        if not frames:
            if self._pending is not None:
                # Quiet for a moment: the batch being parsed is handed over now; what is
                # still open waits for the rest of `idle_flush`.
                self._settle()
                rest = idle_flush - (time.monotonic() - self._fed_at)
                if rest > 0:
                    reading.idle = rest
                    return
            reading.idle = idle_flush
            self._flush_all()  # quiet for `idle_flush`: nothing more will join
            return
        self._fed_at = time.monotonic()
        # This batch goes to the parse worker before the last one's rows are handed over,
        # so the worker parses while this thread hands over and reads on (a follower that
        # waited for each answer left the engine's output waiting meanwhile).
        sent = self.streams.submit(frames)
        self._settle()
        self._pending = sent
        if not self._pipelined or len(frames) < _PIPELINE_FROM:
            # Parsed here already, or a few lines (the reading keeps up with the output):
            # handed over at once, as a live tail wants them.
            self._settle()
        elif reading.idle is not None:
            reading.idle = min(_SETTLE_AFTER, idle_flush)  # hand it over when output pauses

    def _settle(self) -> None:
        """Hand over the rows of the batch still being parsed (ParseWorkerLost: they are
        read again)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        taken, rows, cursors = pending.result()
        self.owner._count_lines(taken)
        if rows:
            self.owner._hand_over(rows, cursors)

    def _flush_all(self) -> None:
        self._settle()
        rows, cursors = self.streams.flush()
        if rows:
            self.owner._hand_over(rows, cursors)


def discover_wait(failures: int, interval: float, most: float) -> float:
    """Seconds before a fleet host's engine is listed again after `failures` listings in a
    row failed: twice the last wait, from `interval` up to `most` (never below `interval`)."""
    if failures <= 0:
        return interval
    return min(interval * float(2 ** min(failures, 32)), max(interval, most))


def _take_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EAGAIN, errno.EACCES):
            holder = path.read_text().strip() or "another process"
            raise LockBusy(
                f"{path}: {holder} already collects these logs; one collector per store"
            ) from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"log collector (pid {os.getpid()})".encode())
    return fd


def collecting_pid(store_dir: Path) -> int | None:
    """The PID of the collector writing the store in `store_dir` (it holds the lock), or None
    when none does. Takes the lock for an instant when it is free."""
    path = store_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        found = re.search(r"pid (\d+)", path.read_text(errors="replace"))
        return int(found.group(1)) if found else 0
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _release_lock(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
