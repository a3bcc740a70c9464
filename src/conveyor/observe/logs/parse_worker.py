"""The collector's parsing in a worker process, so that parsing (Python, holding its
interpreter lock) and the full-text insert (SQLite, in the collector's writer thread) run on
two CPUs at once.

    worker = ParseWorker()                       # one per collector; starts on first use
    streams = worker.streams({STDOUT: (source, cursor), STDERR: (...)}, tags)  # a `Streams`
    taken, rows, cursors = streams.feed(frames)  # frames there, rows and cursors back
    pending = streams.submit(frames)             # sent; the follower reads on meanwhile
    taken, rows, cursors = pending.result()      # results taken in the order sent
    worker.stop()

The worker runs `streams.ContainerStreams`, the code followers run in-process on one CPU: a
follower's frames go to it pickled, in the batches the engine reading yields, and its rows
and moved cursors come back the same way, the rows in the flat form the store binds as it is
(`store.FlatRows`), so the collector's process does not build them; the follower hands them
to the writer as before, so the rows and the cursor they reach are still stored in one
transaction.

A worker that dies (killed, out of memory, a bug) takes the open state of every container's
streams with it: the records it held open and where each stream's reading stood. Nothing it
parsed is lost, because nothing counts until the writer stores it: the next request of each
follower fails (`ParseWorkerLost`), the follower reads its container again from the cursor of
the last rows it handed over (as after an engine restart), and the next request starts a new
worker.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.host.worker import WorkerLost, WorkerProcess, serve_fd
from conveyor.observe.logs.cursor import Cursor
from conveyor.observe.logs.store import FlatRows
from conveyor.observe.logs.streams import ContainerStreams, Fed, Moved, Pending, Sources, Tags
from conveyor.runtime.log_protocol import Frame

NAME = "conveyor-logs-parse"
MODULE = "conveyor.observe.logs.parse_worker"  # run as `python -m` (this file)
# Requests: (op, key, argument); answers: (True, value) or (False, what went wrong).
_OPEN, _FEED, _FLUSH, _CLOSE, _CPU = range(5)
_PICKLE = pickle.HIGHEST_PROTOCOL


class ParseWorkerLost(ConveyorError):
    """The parse worker ended, or failed, while it held a follower's streams: the follower
    reads again from its cursor."""


def serve(conn: Connection) -> None:
    """The worker's loop: one answer per request, until the collector closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the collector: it stops us
    open_streams: dict[int, ContainerStreams] = {}
    while True:
        try:
            op, key, arg = pickle.loads(conn.recv_bytes())  # noqa: S301 — our own pipe
        except (EOFError, OSError):
            return
        answer: tuple[bool, Any]
        try:
            if op == _FEED:
                answer = (True, open_streams[key].feed(arg))
            elif op == _FLUSH:
                answer = (True, open_streams[key].flush())
            elif op == _OPEN:
                open_streams[key] = ContainerStreams(*arg)
                answer = (True, None)
            elif op == _CLOSE:
                open_streams.pop(key, None)
                answer = (True, None)
            else:
                answer = (True, time.process_time())
        except Exception as e:  # a bug: the follower reads again; this worker goes on
            open_streams.pop(key, None)
            answer = (False, f"{type(e).__name__}: {e}")
        try:
            conn.send_bytes(pickle.dumps(answer, _PICKLE))
        except OSError:
            return


class _Answer:
    """One request's answer, waited for by the follower that asked."""

    __slots__ = ("data", "done", "lost")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.data = b""
        self.lost = ""  # why no answer comes: the worker ended


class _Asked:
    """A request sent to the worker, its answer still to come."""

    __slots__ = ("answer", "generation")

    def __init__(self, generation: int, answer: _Answer) -> None:
        self.generation = generation
        self.answer = answer

    def wait(self) -> tuple[int, Any]:
        """The generation that answered and its answer; ParseWorkerLost when it ended or
        failed."""
        answer = self.answer
        answer.done.wait()
        if answer.lost:
            raise ParseWorkerLost(answer.lost)
        ok, value = pickle.loads(answer.data)  # noqa: S301 — our own worker's
        if not ok:
            raise ParseWorkerLost(f"the {NAME} process failed: {value}")
        return self.generation, value


class _Link:
    """One worker process and the answers it owes, oldest first (it answers in order)."""

    def __init__(self, process: WorkerProcess, generation: int) -> None:
        self.process = process
        self.generation = generation
        self.owed: collections.deque[_Answer] = collections.deque()


class ParseWorker:
    """The collector's worker process, shared by its followers. Their requests are sent as
    they come and answered in order by a receiving thread, so while the worker parses one
    follower's batch the next one waits in its socket: it is not left idle between them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self.generation = 0  # bumped at each start and loss: streams opened before are gone
        self.starts = 0
        self._keys = itertools.count(1)
        self._stopped = False  # no new worker once the collector stopped

    @property
    def pid(self) -> int | None:
        link = self._link
        return None if link is None else link.process.pid

    def streams(self, sources: Sources, tags: Tags) -> RemoteStreams:
        return RemoteStreams(self, next(self._keys), sources, tags)

    def cpu_seconds(self) -> float:
        """The worker's CPU time since it started (benchmarks); 0.0 when it is not running."""
        try:
            return float(self.request(self.generation, _CPU, 0, None)[1])
        except ConveyorError:
            return 0.0

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopped = True
            link, self._link = self._link, None
        if link is not None:
            link.process.stop(timeout)  # its receiving thread ends at the closed socket

    def request(self, generation: int | None, op: int, key: int, arg: object) -> tuple[int, Any]:
        """Ask the worker; returns the generation that answered and its answer. With a
        `generation` (streams opened then), ParseWorkerLost if the worker has been replaced
        since; None (opening) takes the current one, starting a worker when none runs."""
        return self.send(generation, op, key, arg).wait()

    def send(self, generation: int | None, op: int, key: int, arg: object) -> _Asked:
        """`request` in two halves: the question sent now, its answer waited for with
        `wait()` (meanwhile the asker may read on: the worker answers in order)."""
        message = pickle.dumps((op, key, arg), _PICKLE)
        answer = _Answer()
        with self._lock:
            if self._stopped:
                raise ParseWorkerLost(f"the {NAME} process was stopped")
            if generation is not None and generation != self.generation:
                raise ParseWorkerLost(f"the {NAME} process was restarted")
            link = self._link
            if link is None:
                if generation is not None:
                    raise ParseWorkerLost(f"the {NAME} process is not running")
                link = self._start()
            # Owed before it is sent: its answer can come only after.
            link.owed.append(answer)
            # A worker that ended: the receiving thread sees it too, and tells every asker.
            with contextlib.suppress(WorkerLost):
                link.process.send(message)
        return _Asked(link.generation, answer)

    def _start(self) -> _Link:
        process = WorkerProcess(MODULE, NAME)
        process.start()
        self.generation += 1
        self.starts += 1
        link = _Link(process, self.generation)
        self._link = link
        threading.Thread(
            target=self._receive, args=(link,), name="logs-parse-answers", daemon=True
        ).start()
        return link

    def _receive(self, link: _Link) -> None:
        while True:
            try:
                data = link.process.receive()
            except WorkerLost as e:
                lost = str(e)
                break
            answer = link.owed.popleft()  # answers come in the order asked
            answer.data = data
            answer.done.set()
        # The worker ended (killed, or stopped): whatever it owed is not coming, and every
        # stream opened in it is gone.
        with self._lock:
            if self._link is link:
                self._link = None
                self.generation += 1
        while link.owed:
            answer = link.owed.popleft()
            answer.lost = lost
            answer.done.set()


class RemoteStreams:
    """`Streams` in the worker. Keeps the cursors of what was handed over, so a worker that
    is lost costs a reading again from them, not a line."""

    def __init__(self, worker: ParseWorker, key: int, sources: Sources, tags: Tags) -> None:
        self._worker = worker
        self._key = key
        self._tags = dict(tags)
        self._sources = {n: source for n, (source, _) in sources.items()}
        self._stream_of = {source: n for n, source in self._sources.items()}
        self._emitted: dict[int, Cursor] = {n: cursor for n, (_, cursor) in sources.items()}
        self._generation: int | None = None  # the worker's, once opened there

    def feed(self, frames: list[Frame]) -> Fed:
        return self.submit(frames).result()

    def submit(self, frames: list[Frame]) -> Pending:
        """The frames sent to the worker; the result, waited for later, moves the cursors
        a restart reads again from (so a batch whose result was never taken is read again)."""
        return _Fed(self, self._send(_FEED, frames))

    def flush(self) -> tuple[FlatRows, Moved]:
        rows, moved = self._ask(_FLUSH, None)
        self._handed(moved)
        return rows, moved

    def restart(self) -> None:
        # Opened again, from the cursors handed over, at the next request (which may need a
        # new worker: a restart must not fail).
        self._generation = None

    def since(self) -> int:
        return min(c.ts for c in self._emitted.values())

    def close(self) -> None:
        if self._generation is None:
            return
        with contextlib.suppress(ConveyorError):  # a worker gone took its streams with it
            self._worker.request(self._generation, _CLOSE, self._key, None)
        self._generation = None

    def _ask(self, op: int, arg: object) -> Any:
        return self._wait(self._send(op, arg))

    def _send(self, op: int, arg: object) -> _Asked:
        if self._generation is None:
            opening = {n: (source, self._emitted[n]) for n, source in self._sources.items()}
            opened = (opening, self._tags)
            self._generation, _ = self._worker.request(None, _OPEN, self._key, opened)
        try:
            return self._worker.send(self._generation, op, self._key, arg)
        except ParseWorkerLost:
            self._generation = None
            raise

    def _wait(self, asked: _Asked) -> Any:
        try:
            return asked.wait()[1]
        except ParseWorkerLost:
            if asked.generation == self._generation:
                self._generation = None
            raise

    def _handed(self, moved: Moved) -> None:
        for source, cursor in moved.items():
            self._emitted[self._stream_of[source]] = cursor


class _Fed:
    """A `Pending` batch in the worker."""

    __slots__ = ("_asked", "_streams")

    def __init__(self, streams: RemoteStreams, asked: _Asked) -> None:
        self._streams = streams
        self._asked = asked

    def result(self) -> Fed:
        taken, rows, moved = self._streams._wait(self._asked)
        self._streams._handed(moved)
        return taken, rows, moved


if __name__ == "__main__":
    serve_fd(sys.argv, serve)
