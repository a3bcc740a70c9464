"""An in-memory `ContainerLogs` (runtime/log_protocol.py) for the collector's tests and the
ingest benchmark: containers with their output as the Docker Engine would give it (frames with
nanosecond stamps, `since` inclusive, follow until the container stops), and the faults the
collector must survive: the engine going away mid-stream and refusing requests meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from conveyor.errors import EngineUnreachable
from conveyor.runtime.log_protocol import STDOUT, ContainerRun, Frame, LogContainer


@dataclass
class FakeContainer:
    id: str
    labels: dict[str, str]
    running: bool = True
    tty: bool = False
    frames: list[Frame] = field(default_factory=list)
    finished_at: str = "0001-01-01T00:00:00Z"
    starts: int = 1


class FakeContainerLogs:
    def __init__(self, batch: int = 1000) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.batch = batch  # frames per batch a reading yields
        self.down = False  # the engine refuses every request
        self.reads: list[tuple[str, int]] = []  # (container, since) of every read_logs
        self.refused = 0  # requests refused while down
        self._cond = threading.Condition()
        self._epoch = 0  # bumped by `break_streams`: open readings end
        self._cut_after: int | None = None  # `cut_next`: batches before the next reading breaks
        self._clock = 1_800_000_000 * 10**9
        self.listings = 0  # log_containers calls answered or refused
        self._hung = threading.Event()  # set: listings answer; clear: they wait (`hang`)
        self._hung.set()

    # the test's side -------------------------------------------------------------------------

    def add(self, cid: str, labels: dict[str, str], running: bool = True) -> FakeContainer:
        with self._cond:
            c = FakeContainer(cid, labels, running)
            self.containers[cid] = c
            self._cond.notify_all()
            return c

    def write(self, cid: str, *lines: str, stream: int = STDOUT, same_stamp: bool = False) -> None:
        """Lines the container writes now, each stamped a microsecond after the last (or all
        with one stamp: a burst within one clock tick)."""
        with self._cond:
            c = self.containers[cid]
            if same_stamp:
                self._clock += 1000
            for line in lines:
                if not same_stamp:
                    self._clock += 1000
                c.frames.append((stream, self._clock, line, True))
            self._cond.notify_all()

    def write_frames(self, cid: str, frames: list[Frame]) -> None:
        with self._cond:
            self.containers[cid].frames.extend(frames)
            self._cond.notify_all()

    def stop(self, cid: str) -> None:
        with self._cond:
            c = self.containers[cid]
            c.running = False
            c.finished_at = f"stopped-{len(c.frames)}"
            self._cond.notify_all()

    def start(self, cid: str) -> None:
        with self._cond:
            c = self.containers[cid]
            c.running = True
            c.starts += 1
            self._cond.notify_all()

    def remove(self, cid: str) -> None:
        with self._cond:
            del self.containers[cid]
            self._cond.notify_all()

    def break_streams(self, down: bool = True) -> None:
        """The engine goes away: open readings end, requests fail while `down`."""
        with self._cond:
            self.down = down
            self._epoch += 1
            self._cond.notify_all()

    def cut_next(self, batches: int) -> None:
        """The next reading breaks off after `batches` batches, the engine still up (a
        connection cut mid-body): it ends, not complete."""
        with self._cond:
            self._cut_after = batches

    def hang(self, hung: bool = True) -> None:
        """Listings wait (a host whose SSH tunnel is being opened, and does not answer) until
        `hang(False)`; other requests answer as before."""
        if hung:
            self._hung.clear()
        else:
            self._hung.set()

    def come_back(self) -> None:
        with self._cond:
            self.down = False
            self._cond.notify_all()

    # ContainerLogs -----------------------------------------------------------------------------

    def wait_refused(self, count: int, timeout: float) -> bool:
        """Block until `count` requests were refused while down."""
        with self._cond:
            return self._cond.wait_for(lambda: self.refused >= count, timeout)

    def _check(self) -> None:
        if self.down:
            self.refused += 1
            self._cond.notify_all()
            raise EngineUnreachable("cannot reach the Docker Engine (fake: down)")

    def log_containers(self, project: str) -> list[LogContainer]:
        self._hung.wait()
        with self._cond:
            self.listings += 1
            self._check()
            return [
                LogContainer(c.id, dict(c.labels), c.running)
                for c in self.containers.values()
                if c.labels.get("io.conveyor.project") == project
            ]

    def container_run(self, container_id: str) -> ContainerRun | None:
        with self._cond:
            self._check()
            c = self.containers.get(container_id)
            if c is None:
                return None
            return ContainerRun(c.running, c.tty, f"start-{c.starts}", c.finished_at)

    def read_logs(
        self, container_id: str, since: int, follow: bool, tty: bool, idle: float | None = None
    ) -> _FakeReading:
        with self._cond:
            self._check()
            if container_id not in self.containers:
                raise EngineUnreachable(f"no such container {container_id}")
            self.reads.append((container_id, since))
            cut, self._cut_after = self._cut_after, None
            return _FakeReading(self, container_id, since, follow, idle, self._epoch, cut)


class _FakeReading:
    def __init__(
        self,
        owner: FakeContainerLogs,
        cid: str,
        since: int,
        follow: bool,
        idle: float | None,
        epoch: int,
        cut: int | None = None,
    ) -> None:
        self._owner = owner
        self._cut = cut
        self.complete = False
        self._cid = cid
        self._since = since
        self._follow = follow
        self.idle = idle
        self._epoch = epoch
        self._closed = False

    def close(self) -> None:
        with self._owner._cond:
            self._closed = True
            self._owner._cond.notify_all()

    def __iter__(self) -> Iterator[list[Frame]]:
        owner = self._owner
        pos = 0
        with owner._cond:
            c = owner.containers.get(self._cid)
            frames = c.frames if c is not None else []
            while pos < len(frames) and frames[pos][1] < self._since:
                pos += 1
        while True:
            with owner._cond:
                if self._closed or owner._epoch != self._epoch:
                    return  # broke off: not complete
                c = owner.containers.get(self._cid)
                if c is None:
                    return
                if self._cut is not None:
                    if self._cut <= 0:
                        return  # cut mid-body: not complete
                    self._cut -= 1
                if pos < len(c.frames):
                    batch = c.frames[pos : pos + owner.batch]
                    pos += len(batch)
                else:
                    if not self._follow or not c.running:
                        self.complete = True
                        return
                    idle = self.idle
                    if owner._cond.wait(idle) or idle is None:
                        continue  # something changed: look again
                    batch = []  # quiet for `idle` seconds
            yield batch
