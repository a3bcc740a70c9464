"""Retention and sealing decisions."""

from __future__ import annotations

import pytest

from conveyor.observe.logs.retention import DAY, Retention, Segment, seal_due, to_drop

NOW = 1_800_000_000.0


def seg(n: int, age_days: float, size: int = 100, sealed: bool = True, rows: int = 10) -> Segment:
    newest = int((NOW - age_days * DAY) * 1e9)
    return Segment(n, NOW - age_days * DAY - 60, rows, size, newest - 1000, newest, sealed)


def test_segments_older_than_max_age_are_dropped() -> None:
    policy = Retention(max_age=7 * DAY)
    segments = [seg(1, 9), seg(2, 7.5), seg(3, 6), seg(4, 0, sealed=False)]
    assert to_drop(segments, NOW, 400, policy) == [1, 2]


def test_the_oldest_go_while_the_store_is_too_big() -> None:
    policy = Retention(max_bytes=250)
    segments = [seg(1, 3), seg(2, 2), seg(3, 1), seg(4, 0, sealed=False)]
    assert to_drop(segments, NOW, 400, policy) == [1, 2]
    assert to_drop(segments, NOW, 250, policy) == []


def test_the_segment_being_written_is_never_dropped() -> None:
    policy = Retention(max_bytes=10, max_age=DAY)
    assert to_drop([seg(1, 30, sealed=False)], NOW, 10_000, policy) == []


def test_age_and_size_together_count_each_segment_once() -> None:
    policy = Retention(max_bytes=150, max_age=7 * DAY)
    segments = [seg(1, 8), seg(2, 2), seg(3, 1)]
    assert to_drop(segments, NOW, 300, policy) == [1, 2]


def test_sealing() -> None:
    policy = Retention(segment_rows=100, segment_span=3600, max_bytes=8000)
    open_seg = Segment(1, NOW - 10, 50, 10, 0, 0, False)
    assert not seal_due(open_seg, NOW, policy)
    assert seal_due(Segment(1, NOW - 10, 100, 10, 0, 0, False), NOW, policy)  # rows
    assert seal_due(Segment(1, NOW - 3600, 1, 10, 0, 0, False), NOW, policy)  # span
    assert seal_due(Segment(1, NOW - 10, 1, 1000, 0, 0, False), NOW, policy)  # an eighth
    assert not seal_due(Segment(1, NOW - 9999, 0, 0, None, None, False), NOW, policy)  # empty


def test_a_policy_must_keep_something() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Retention(max_age=0)
