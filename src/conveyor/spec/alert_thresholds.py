"""The thresholds of the service alerts as written -> model.AlertThresholds, in both places:

    # compose.yaml, a service's x-conveyor (every environment)
    x-conveyor:
      alerts: {error_ratio: 2%, latency: 500ms, down_for: 30s}

    # conveyor.yaml, per environment: the default of every service that sets no value itself
    environments:
      staging:
        alerts: {error_ratio: 10%, down_for: 2m}

A ratio is a percentage (`2%`) or a fraction (`0.02`), above 0 and below 100 %; `min_rate` is
requests per second (0 or more); `latency` a duration above zero; the `*_for` keys durations
(0 fires at the first evaluation). Problems go to the Context with file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conveyor.model.alert_thresholds import THRESHOLD_KEYS, AlertThresholds
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_non_negative_duration
from conveyor.spec.keys import known_keys, mapping, optional
from conveyor.spec.slo import parse_fraction, parse_threshold
from conveyor.spec.values import describe, to_float
from conveyor.spec.yamlpos import YamlPath


def parse_ratio(value: object) -> float:
    """`2%` or `0.02` as 0.02. Raises ValueError with a message to show."""
    fraction = parse_fraction(value, example="0.02")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"must be above 0% and below 100%, got {describe(value)}")
    return fraction


def parse_rate(value: object) -> float:
    rate = to_float(value)
    if rate < 0:
        raise ValueError(f"must be a number of requests per second (0 or more), got {rate:g}")
    return rate


def parse_wait(value: object) -> float:
    """A `*_for` duration: 0 or more, in whole milliseconds (Prometheus's resolution)."""
    seconds = parse_non_negative_duration(value)
    if seconds and round(seconds * 1000) == 0:
        raise ValueError(f"must be 0 or at least 1ms, got {describe(value)}")
    return round(seconds * 1000) / 1000


_CONVERT: dict[str, Callable[[Any], float]] = {
    "error_ratio": parse_ratio,
    "min_rate": parse_rate,
    "latency": parse_threshold,
    "down_for": parse_wait,
    "error_for": parse_wait,
    "latency_for": parse_wait,
    "replicas_for": parse_wait,
}
assert tuple(_CONVERT) == THRESHOLD_KEYS  # one converter per key the model has


def alert_thresholds(ctx: Context, path: YamlPath, raw: Any) -> AlertThresholds | None:
    """The thresholds written at `path` (None when absent, empty or wrong: the problems are
    recorded)."""
    if raw is None:
        return None
    settings = mapping(ctx, path, raw, f"a mapping of {', '.join(THRESHOLD_KEYS)}")
    if settings is None:
        return None
    known_keys(ctx, path, settings, THRESHOLD_KEYS, listed=False)
    before = len(ctx.errors)
    values = {key: optional(ctx, settings, path, key, _CONVERT[key]) for key in THRESHOLD_KEYS}
    if len(ctx.errors) != before:
        return None
    thresholds = AlertThresholds(**values)
    return thresholds if thresholds.given() else None
