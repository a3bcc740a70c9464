"""Progressive delivery of one HTTP service on Kubernetes (x-conveyor.canary, docs/flux.md).

Pure data. `render.flagger` turns it into a Flagger Canary: traffic moves to the new version in
steps while the canary's error ratio and latency stay under the limits, and back at once when
they do not, `threshold` times.
"""

from __future__ import annotations

from conveyor.model.frozen import Frozen


class CanarySpec(Frozen):
    """How a new version of a service takes traffic from the old one."""

    # The canary's share of traffic at each step, in percent; empty: `step_weight` at a time
    # up to `max_weight`.
    steps: tuple[int, ...] = ()
    step_weight: int = 10
    max_weight: int = 50
    interval: float = 60.0  # seconds between steps (and between checks)
    threshold: int = 5  # failed checks before the canary is rolled back
    max_error_ratio: float = 0.01  # 5xx / responses of the canary over one interval
    max_latency: float = 0.5  # seconds: the canary's p99 over one interval
