"""How long lines are kept, and when the store starts a new segment. Pure decisions over the
store's segment list; `store.LogStore.maintain` acts on them.

The store keeps lines in segments (one full-text table each), newest last. Lines are written
to the newest; it is sealed (no more lines) once it holds `segment_rows` lines, covers
`segment_span` seconds of writing, or has grown past an eighth of `max_bytes`. Retention drops
whole sealed segments: those whose newest line is older than `max_age`, then the oldest ones
while the store is larger than `max_bytes`. Dropping a table is cheap and frees its pages at
once (no row-by-row delete), at the price of granularity: a line outlives `max_age` by at most
one segment's span (6 h by default), and the size can exceed `max_bytes` by at most the
newest segment's (an eighth of it) until that one is sealed.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY = 86_400.0

DEFAULT_MAX_AGE = 7 * DAY
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB
DEFAULT_SEGMENT_ROWS = 1_000_000
DEFAULT_SEGMENT_SPAN = 6 * 3600.0


@dataclass(frozen=True)
class Retention:
    max_age: float = DEFAULT_MAX_AGE  # seconds
    max_bytes: int = DEFAULT_MAX_BYTES
    segment_rows: int = DEFAULT_SEGMENT_ROWS
    segment_span: float = DEFAULT_SEGMENT_SPAN  # seconds of writing one segment takes

    def __post_init__(self) -> None:
        if self.max_age <= 0 or self.max_bytes <= 0:
            raise ValueError("log retention: max_age and max_bytes must be above 0")
        if self.segment_rows <= 0 or self.segment_span <= 0:
            raise ValueError("log retention: segment_rows and segment_span must be above 0")


@dataclass(frozen=True)
class Segment:
    """What the store knows of one segment (timestamps in nanoseconds, `created` in UNIX
    seconds, `bytes` an estimate of its share of the file)."""

    n: int
    created: float
    rows: int
    bytes: int
    min_ts: int | None
    max_ts: int | None
    sealed: bool


def seal_due(segment: Segment, now: float, policy: Retention) -> bool:
    """Whether the segment being written should be sealed before the next write."""
    if segment.sealed or segment.rows == 0:
        return False
    return (
        segment.rows >= policy.segment_rows
        or now - segment.created >= policy.segment_span
        or segment.bytes >= policy.max_bytes // 8
    )


def to_drop(segments: list[Segment], now: float, used_bytes: int, policy: Retention) -> list[int]:
    """The sealed segments to drop (oldest first): too old, then as many of the oldest as
    bring the store under its size. `segments` oldest first; `used_bytes` the file's size
    in use. Never the segment being written."""
    cutoff = int((now - policy.max_age) * 1e9)
    sealed = [s for s in segments if s.sealed]
    drop = [s for s in sealed if s.max_ts is None or s.max_ts < cutoff]
    remaining = used_bytes - sum(s.bytes for s in drop)
    for s in sealed:
        if remaining <= policy.max_bytes:
            break
        if s in drop:
            continue
        drop.append(s)
        remaining -= s.bytes
    return sorted(s.n for s in drop)
