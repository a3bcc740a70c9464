"""The cursor: reading a stream again from it takes every line once."""

from __future__ import annotations

from conveyor.observe.logs.cursor import Cursor, Resume


def read(stamps: list[int], cursor: Cursor) -> tuple[list[int], Cursor]:
    """The positions (indexes) taken from a stream read from `cursor`, and the cursor after."""
    r = Resume(cursor)
    taken = [i for i, ts in enumerate(stamps) if r.take(ts) is not None]
    return taken, r.cursor


def since_filter(stamps: list[int], cursor: Cursor) -> list[int]:
    """What the Docker Engine sends for `since`: the lines stamped at or after it."""
    return [ts for ts in stamps if ts >= cursor.ts]


def test_stopping_anywhere_and_reading_again_takes_each_line_once() -> None:
    base = 1_765_000_000_123_456_789
    # equal stamps are possible (a burst within one clock tick)
    stamps = [base, base + 5, base + 5, base + 5, base + 9, base + 9, base + 200]
    for stop in range(len(stamps) + 1):
        first, cursor = read(stamps[:stop], Cursor())
        rest, end = read(since_filter(stamps, cursor), cursor)
        offset = len(stamps) - len(since_filter(stamps, cursor))
        assert first + [offset + i for i in rest] == list(range(len(stamps))), stop
        assert end == Cursor(base + 200, 1)


def test_the_cursor_counts_lines_at_its_stamp() -> None:
    r = Resume(Cursor())
    assert r.take(10) == (10, 1)
    assert r.take(10) == (10, 2)
    assert r.take(11) == (11, 1)


def test_lines_before_the_cursor_are_skipped() -> None:
    r = Resume(Cursor(100, 2))
    assert r.take(99) is None
    assert r.take(100) is None
    assert r.take(100) is None
    assert r.take(100) == (100, 3)  # a third line at the same stamp is new
    assert r.take(101) == (101, 1)


def test_a_clock_step_back_does_not_move_the_cursor_back() -> None:
    r = Resume(Cursor())
    r.take(100)
    assert r.take(50) == (100, 1)
    assert r.cursor == Cursor(100, 1)
