"""Reading the two streams of one container into rows: which entries are new (`cursor.Resume`:
no line twice, none missed), the pieces of a line the engine split put together, multi-line
records joined (`multiline.Joiner`), each record parsed (`parse.parse_line`) into a store row
(in the flat form the store inserts: `store.FlatRows`), and the cursor each stream reaches
with them. Pure: frames in, rows and cursors out.

    streams = ContainerStreams({STDOUT: (source, cursor), STDERR: (source2, cursor2)}, tags)
    taken, rows, cursors = streams.feed(frames)   # cursors: source id -> Cursor, moved ones
    pending = streams.submit(frames)              # the same in two steps (a worker parses
    taken, rows, cursors = pending.result()       #   meanwhile); results taken in order
    rows, cursors = streams.flush()               # the stream went quiet: close open records
    streams.restart()                             # read again from what was handed over

The collector runs this in its follower threads (one CPU) or in a parse worker process
(`parse_worker`, two CPUs or more): the same code either way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from conveyor.model.logs import LogLevel
from conveyor.observe.logs.cursor import Cursor, Resume
from conveyor.observe.logs.multiline import Group, Joiner
from conveyor.observe.logs.parse import parse_line, plain_level
from conveyor.observe.logs.store import LEVEL_INDEX, LEVEL_TAG, FlatRows
from conveyor.runtime.log_protocol import Frame

Mark = tuple[int, int]  # a cursor position (ts, count) carried through the joiner
# A stream's number (STDOUT, STDERR) -> its store source id and the cursor it starts from.
Sources = Mapping[int, tuple[int, Cursor]]
Tags = Mapping[int, str]  # source id -> its rows' tags (`LogStore.tag`)
Moved = dict[int, Cursor]  # source id -> the cursor its records just handed over reach
Fed = tuple[int, FlatRows, Moved]  # entries taken (new), rows (flat), moved cursors


class Pending(Protocol):
    """A batch of frames handed to `Streams.submit`; its result is taken once, in the order
    the batches were submitted."""

    def result(self) -> Fed: ...


class Streams(Protocol):
    """What a follower reads its container's output through (here, or in a worker)."""

    def feed(self, frames: list[Frame]) -> Fed: ...

    def submit(self, frames: list[Frame]) -> Pending: ...

    def flush(self) -> tuple[FlatRows, Moved]: ...

    def restart(self) -> None: ...

    def since(self) -> int: ...

    def close(self) -> None: ...


class StreamState:
    """Reading one stream of one container: where it is, and the record it may hold open."""

    __slots__ = ("emitted", "handed", "joiner", "levels", "partial", "resume", "source")

    def __init__(self, source: int, cursor: Cursor, tag: str) -> None:
        self.source = source
        # A row's level index and tags, by the level parsed (`store.flat_rows`).
        self.levels = row_levels(tag)
        self.emitted = cursor  # after the last record handed over
        self.handed: Mark = (cursor.ts, cursor.count)  # the same, while a batch is made
        self.resume = Resume(cursor)
        self.joiner: Joiner[Mark] = Joiner()
        self.partial: tuple[int, list[str]] | None = None  # a split line being put together

    def restart(self) -> None:
        """Read again from the last record handed over: what is open is read again."""
        self.resume = Resume(self.emitted)
        self.joiner = Joiner()
        self.partial = None


class Parsed:
    """A `Pending` whose result is already there (parsed in this process)."""

    __slots__ = ("_fed",)

    def __init__(self, fed: Fed) -> None:
        self._fed = fed

    def result(self) -> Fed:
        return self._fed


class ContainerStreams:
    """`Streams` in this process."""

    def __init__(self, sources: Sources, tags: Tags) -> None:
        """`tags`: each source's `LogStore.tag`."""
        self.streams = {
            n: StreamState(source, cursor, tags[source]) for n, (source, cursor) in sources.items()
        }

    def feed(self, frames: list[Frame]) -> Fed:
        rows: FlatRows = []
        streams = self.streams
        moved: set[StreamState] = set()
        taken = 0
        for stream, stamp, piece, complete in frames:
            s = streams[stream]
            mark = s.resume.take(stamp)
            if mark is None:
                continue
            taken += 1
            ts, text = stamp, piece
            if not complete or s.partial is not None:
                # A line the engine split: put together, stamped with its first piece.
                if s.partial is None:
                    s.partial = (stamp, [piece])
                    continue
                s.partial[1].append(piece)
                if not complete:
                    continue
                ts, text = s.partial[0], "".join(s.partial[1])
                s.partial = None
            groups = s.joiner.feed(ts, text, mark)
            if groups:
                add_rows(s.source, s.levels, groups, rows)
                s.handed = groups[-1].mark
                moved.add(s)
        return taken, rows, moved_cursors(moved)

    def submit(self, frames: list[Frame]) -> Pending:
        return Parsed(self.feed(frames))

    def flush(self) -> tuple[FlatRows, Moved]:
        rows: FlatRows = []
        moved: set[StreamState] = set()
        for s in self.streams.values():
            groups = s.joiner.flush()
            if groups:
                add_rows(s.source, s.levels, groups, rows)
                s.handed = groups[-1].mark
                moved.add(s)
        return rows, moved_cursors(moved)

    def restart(self) -> None:
        for s in self.streams.values():
            s.restart()

    def since(self) -> int:
        """The stamp to ask the engine for the output from."""
        return min(s.emitted.ts for s in self.streams.values())

    def close(self) -> None:
        pass


# One encoder, made once: json.dumps with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def row_levels(tag: str) -> dict[LogLevel | None, tuple[int | None, str]]:
    """A source's rows' level index and tags, by the level parsed (`store.flat_rows`)."""
    levels: dict[LogLevel | None, tuple[int | None, str]] = {None: (None, tag + LEVEL_TAG[None])}
    for name, index in LEVEL_INDEX.items():
        levels[name] = (index, tag + LEVEL_TAG[index])
    return levels


def add_rows(
    source: int,
    levels: dict[LogLevel | None, tuple[int | None, str]],
    groups: list[Group[Mark]],
    rows: FlatRows,
) -> None:
    """The groups of one stream parsed into rows, in the store's flat form (`FlatRows`;
    nearly always one group of one line). `levels`: `row_levels` of the source's tag."""
    extend = rows.extend
    for ts, text, _mark, lines, traceback in groups:
        level: LogLevel | None
        if lines == 1:
            level, message, fields = parse_line(text)
        else:
            level = "error" if traceback else plain_level(text)
            message, fields = text, {}
        index, tags = levels[level]
        extend((message, _encode(fields) if fields else None, tags, ts, source, index))


def moved_cursors(moved: set[StreamState]) -> Moved:
    """The cursors of the streams whose records were just handed over, made once per batch
    (not once per line)."""
    cursors: Moved = {}
    for s in moved:
        s.emitted = Cursor(*s.handed)
        cursors[s.source] = s.emitted
    return cursors
