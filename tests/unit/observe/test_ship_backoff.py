"""The back-off schedule: doubling up to a cap, jittered within [d/2, d], Retry-After honoured
within the cap."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from conveyor.observe.logs.ship.backoff import Backoff
from conveyor.observe.logs.ship.verdict import retry_after


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    b = Backoff(base=0.5, cap=60.0)
    assert [b.ceiling(n) for n in range(9)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]
    assert b.ceiling(10_000) == 60.0  # no overflow after a long outage


def test_delays_stay_within_half_and_whole_of_the_ceiling_and_spread() -> None:
    b = Backoff(base=1.0, cap=30.0)
    rng = random.Random(7)
    for attempt in range(12):
        delays = [b.delay(attempt, rng) for _ in range(200)]
        high = b.ceiling(attempt)
        assert all(high / 2 <= d <= high for d in delays)
        assert max(delays) - min(delays) > high / 4  # jitter: not all in step


def test_retry_after_is_honoured_within_the_cap() -> None:
    b = Backoff(base=0.5, cap=20.0)
    rng = random.Random(1)
    assert b.delay(0, rng, retry_after=5.0) == 5.0
    assert b.delay(0, rng, retry_after=600.0) == 20.0
    assert b.delay(5, rng, retry_after=0.1) >= 8.0  # the schedule when it asks for less


def test_retry_after_header_forms() -> None:
    assert retry_after({"retry-after": "12"}) == 12.0
    later = datetime.now(UTC) + timedelta(seconds=90)
    seconds = retry_after({"retry-after": format_datetime(later, usegmt=True)})
    assert seconds is not None and 80 < seconds <= 90
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
