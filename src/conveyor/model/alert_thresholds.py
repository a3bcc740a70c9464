"""The thresholds of one service's alerts, as a user sets them (docs/alerts.md, "Thresholds").

Pure data. Written per service in compose.yaml (`x-conveyor.alerts`) and as defaults per
environment in conveyor.yaml (`environments.<env>.alerts`); every field left unset falls back
to the next level (the service's, then the environment's, then `render.prometheus_rules`'s
built-in `AlertSettings`).
"""

from __future__ import annotations

from conveyor.model.frozen import Frozen

# The keys users write, in the order docs and messages list them.
THRESHOLD_KEYS = (
    "error_ratio",
    "min_rate",
    "latency",
    "down_for",
    "error_for",
    "latency_for",
    "replicas_for",
)


class AlertThresholds(Frozen):
    """None: not set here."""

    error_ratio: float | None = None  # 5xx / responses over 5 min, a fraction
    min_rate: float | None = None  # requests/s below which an error ratio is noise
    latency: float | None = None  # seconds: p95 from a histogram, else HAProxy's average
    down_for: float | None = None  # seconds with no replica in rotation: ServiceDown
    error_for: float | None = None  # seconds
    latency_for: float | None = None  # seconds
    replicas_for: float | None = None  # seconds below the desired replicas

    def given(self) -> dict[str, float]:
        """The fields set here."""
        return {k: v for k, v in self.model_dump().items() if v is not None}

    def over(self, base: AlertThresholds | None) -> AlertThresholds:
        """These thresholds, with `base`'s where these leave a field unset."""
        if base is None:
            return self
        return base.model_copy(update=self.given())
