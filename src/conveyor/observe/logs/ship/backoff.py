"""When to try a destination again: exponential back-off with jitter, capped (pure).

The n-th retry (n = 0, 1, 2…) waits a random time in [d/2, d], with d = min(cap, base * 2**n):
never less than half the schedule (so a flapping destination is not hammered) and spread over
the other half (so the senders of several projects do not come back in step). A server's
`Retry-After` is honoured, within the cap: a retry never waits longer than `cap`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5  # seconds before the first retry (upper bound)
    cap: float = 60.0  # the longest wait

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the wait before retry number `attempt` (0-based)."""
        # 2**attempt overflows a float long before it matters: stop doubling at the cap.
        return min(self.cap, self.base * 2.0 ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random, retry_after: float | None = None) -> float:
        high = self.ceiling(attempt)
        wait = rng.uniform(high / 2, high)
        if retry_after is not None and retry_after > wait:
            wait = min(self.cap, retry_after)
        return wait
