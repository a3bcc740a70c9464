"""Multi-line records: a Python traceback, a Java stack trace or indented continuation lines
join the line they belong to, so one error is one record. Pure: lines go in, groups come out,
in order.

Rules, for the lines of one stream of one container:

- an indented line (space or tab first) continues the record before it (Java's `\tat ...`,
  `\t... 3 more`, a pretty-printed body, a traceback's frames);
- `Caused by: ...` continues it too (Java's chained exceptions);
- `Traceback (most recent call last):` starts a record of its own; after its indented frames
  the first line that reads like an exception (`ValueError: bad`, `KeyboardInterrupt`)
  ends it; a chained traceback (`During handling of the above exception ...` or `The above
  exception was the direct cause ...`, with the blank lines around it) stays in the same
  record;
- JSON and logfmt lines are complete by themselves: they never continue anything.

A record that is still open waits for the next line (or `flush`, when the stream ends or has
been quiet for a moment): only the next line can say whether it goes on. A record stops
growing at MAX_LINES lines or MAX_CHARS characters, so one endless indented output cannot hold
everything in memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

M = TypeVar("M")  # what the caller tracks per line (the collector: its cursor position)

MAX_LINES = 500
MAX_CHARS = 64 * 1024

TRACEBACK = "Traceback (most recent call last):"
_CHAIN = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# The line that ends a Python traceback: `pkg.mod.SomeError: message` or a bare name.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::.*)?")


class Group(NamedTuple, Generic[M]):
    """Lines joined into one record: the first line's timestamp, the last line's mark. (A
    tuple: one is made for nearly every line.)"""

    ts: int
    text: str
    mark: M
    lines: int
    traceback: bool


class _Open(Generic[M]):
    __slots__ = ("chars", "mark", "parts", "state", "traceback", "ts")

    def __init__(self, ts: int, parts: list[str], mark: M, chars: int) -> None:
        self.ts = ts
        self.parts = parts
        self.mark = mark
        self.chars = chars
        self.traceback = False
        self.state = ""  # a traceback: "frames", "done" (exception line seen), "chain"


@dataclass
class Joiner(Generic[M]):
    """Feed lines in order; take the groups they complete."""

    _open: _Open[M] | None = None
    _held: list[tuple[int, str, M]] = field(default_factory=list)  # blank lines after a traceback

    def feed(self, ts: int, text: str, mark: M) -> list[Group[M]]:
        cur = self._open
        first = text[:1]
        if cur is not None:
            if cur.traceback:
                if self._traceback_goes_on(cur, ts, text, mark):
                    return []
            elif (
                (first in {" ", "\t"} or text.startswith("Caused by: "))
                and not self._held
                and text.strip()
                and _fits(cur, text)
            ):
                _append(cur, text, mark)
                return []
        out = self.flush() if cur is not None or self._held else []
        if (first == "{" or not first or first.isspace()) and (
            _is_structured(text) or not text.strip()
        ):
            out.append(Group(ts, text, mark, 1, False))  # complete by itself
            return out
        self._open = opened = _Open(ts, [text], mark, len(text))
        if first == "T" and text.startswith(TRACEBACK):
            opened.traceback = True
            opened.state = "frames"
        return out

    def flush(self) -> list[Group[M]]:
        """The open record (and blank lines held after a traceback) as complete groups."""
        out: list[Group[M]] = []
        cur, self._open = self._open, None
        if cur is not None:
            parts = cur.parts
            # A record of one line (nearly every one): its text as it is, no join.
            text = parts[0] if len(parts) == 1 else "\n".join(parts)
            out.append(Group(cur.ts, text, cur.mark, len(parts), cur.traceback))
        if self._held:
            held, self._held = self._held, []
            out.extend(Group(ts, text, mark, 1, False) for ts, text, mark in held)
        return out

    @property
    def pending(self) -> bool:
        return self._open is not None or bool(self._held)

    def _traceback_goes_on(self, cur: _Open[M], ts: int, text: str, mark: M) -> bool:
        """Whether `text` belongs to the open traceback (it was then taken)."""
        if not _fits(cur, text):
            return False
        if cur.state == "frames":
            if _indented(text):
                _append(cur, text, mark)
                return True
            if _EXCEPTION_LINE.fullmatch(text) and not text.startswith(TRACEBACK):
                _append(cur, text, mark)
                cur.state = "done"
                return True
            return False
        if not text.strip():  # blank: part of a chain only if a chain sentence follows
            self._held.append((ts, text, mark))
            return True
        if cur.state == "done" and text.strip() in _CHAIN:
            self._take_held(cur)
            _append(cur, text, mark)
            cur.state = "chain"
            return True
        if cur.state == "chain" and text.startswith(TRACEBACK):
            self._take_held(cur)
            _append(cur, text, mark)
            cur.state = "frames"
            return True
        if cur.state == "done" and not self._held and _indented(text):
            _append(cur, text, mark)  # an exception message that goes on indented
            return True
        return False

    def _take_held(self, cur: _Open[M]) -> None:
        for _, blank, mark in self._held:
            _append(cur, blank, mark)
        self._held = []


def _append(cur: _Open[M], text: str, mark: M) -> None:
    cur.parts.append(text)
    cur.chars += len(text) + 1
    cur.mark = mark


def _fits(cur: _Open[M], text: str) -> bool:
    return len(cur.parts) < MAX_LINES and cur.chars + len(text) < MAX_CHARS


def _indented(text: str) -> bool:
    return text[:1] in (" ", "\t") and bool(text.strip())


def _continues(text: str) -> bool:
    return _indented(text) or text.startswith("Caused by: ")


def _is_structured(text: str) -> bool:
    s = text.strip()
    return s.startswith("{") and s.endswith("}")
