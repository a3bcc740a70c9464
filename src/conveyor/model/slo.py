"""Service level objectives of one service: what share of its requests must succeed, and what
share must be answered faster than a threshold (docs/alerts.md).

Pure data. Written in compose.yaml (`x-conveyor.slo`, every environment) and per environment in
conveyor.yaml (`environments.<env>.slo.<service>`, replacing the compose file's for that
service); `render.prometheus_rules` turns them into multi-window burn-rate alerts.
"""

from __future__ import annotations

from conveyor.model.frozen import Frozen


class LatencyObjective(Frozen):
    """`objective` of the requests are answered within `threshold` seconds."""

    threshold: float  # seconds
    objective: float  # a fraction: 0.99 for 99 %


class ServiceSLO(Frozen):
    """The objectives of one service; either may be absent (not both, the loader checks)."""

    availability: float | None = None  # fraction of requests answered without a 5xx
    latency: LatencyObjective | None = None

    @property
    def availability_budget(self) -> float | None:
        """The error budget: the fraction of requests allowed to fail."""
        return None if self.availability is None else 1.0 - self.availability

    @property
    def latency_budget(self) -> float | None:
        """The fraction of requests allowed to be slower than the threshold."""
        return None if self.latency is None else 1.0 - self.latency.objective
