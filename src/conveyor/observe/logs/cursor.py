"""Where reading a container's stream goes on from: the Docker Engine's timestamp (in
nanoseconds) of the last line taken and how many lines with exactly that timestamp were taken.
Pure.

Docker stamps each line when it reads it from the container, one stream at a time, so within
one stream the stamps never go down; two lines may share one. Its logs API filters by `since`
(lines stamped at or after it, to the nanosecond). Reading again from a cursor therefore
asks for `since` the cursor's stamp, drops the first `count` lines stamped exactly at it (and,
defensively, any stamped before it), and takes the rest: no line twice, none missed.

The collector stores the cursor in the same transaction as the records it covers, so a crash
of Conveyor leaves a cursor that matches what is stored; lines of a record still open (a
traceback waiting for its next line) are read again after a restart.

A wall clock that steps back while a container writes can stamp a line before the cursor; the
cursor then stays where it is (it never goes back), so the line is taken once but lines after
it that share its earlier stamps may be missed after a restart (documented in docs/logs.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Cursor:
    ts: int = 0  # nanoseconds since the epoch of the last line taken; 0: nothing taken yet
    count: int = 0  # lines taken with exactly that stamp

    @property
    def empty(self) -> bool:
        return self.ts == 0


class Resume:
    """Decides, line by line of one stream read from `cursor`, which lines are new, and where
    the cursor stands after each new one."""

    __slots__ = ("_count", "_skip", "_skipped", "_start", "_ts")

    def __init__(self, cursor: Cursor) -> None:
        self._start = cursor.ts
        self._skip = cursor.count
        self._skipped = 0
        self._ts = cursor.ts
        self._count = cursor.count

    def take(self, ts: int) -> tuple[int, int] | None:
        """The cursor after this line, as (ts, count), if it is new; None if it was taken
        before. (A tuple: this runs for every line.)"""
        if ts < self._start:
            return None
        if ts == self._start and self._skipped < self._skip:
            self._skipped += 1
            return None
        if ts == self._ts:
            self._count += 1
        elif ts > self._ts:
            self._ts, self._count = ts, 1
        # else: a stamp before the last one (the clock stepped back): the cursor stays
        return (self._ts, self._count)

    @property
    def cursor(self) -> Cursor:
        return Cursor(self._ts, self._count)
