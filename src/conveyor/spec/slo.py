"""Service level objectives as written -> model.ServiceSLO, for both places they are written:

    # compose.yaml, a service's x-conveyor (every environment)
    x-conveyor:
      slo:
        availability: 99.9%
        latency: {threshold: 300ms, objective: 99%}

    # conveyor.yaml, per environment (replaces the service's x-conveyor.slo there)
    environments:
      production:
        slo:
          web: {availability: 99.95%}

An objective is a percentage (`99.9%`) or a fraction (`0.999`), above 0 and below 100 %: a
100 % objective leaves no error budget to burn. A threshold is a duration (`300ms`, `0.3`).
Problems go to the Context with file, line and field, like every other key.
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.model.slo import LatencyObjective, ServiceSLO
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import known_keys, mapping, optional
from conveyor.spec.values import describe
from conveyor.spec.yamlpos import YamlPath

SLO_KEYS = ("availability", "latency")
LATENCY_KEYS = ("threshold", "objective")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")  # the Compose schema's pattern
_PERCENT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")


def parse_fraction(value: object, example: str = "0.999") -> float:
    """`99.9%` or `0.999` as the fraction 0.999, unchecked for range. Raises ValueError with
    a message to show (a number above 1 without its `%` is refused: a fraction was meant),
    giving `example` (a fraction as written) as one to follow."""
    fraction: float | None = None
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        if match is not None:
            fraction = round(float(match.group(1)) / 100.0, 12)  # 99.9 / 100 is not 0.999
        else:
            try:
                fraction = float(value.strip())
            except ValueError:
                fraction = None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        fraction = float(value)
    if fraction is None:
        raise ValueError(
            f"must be a percentage like '{float(example) * 100:g}%' or a fraction like "
            f"{example}, got {describe(value)}"
        )
    if fraction >= 1.0 and not (isinstance(value, str) and "%" in value):
        raise ValueError(
            f"{describe(value)} reads as a fraction above 1: write a percentage with its "
            f"sign ('{value}%') or a fraction ({example})"
        )
    return fraction


def parse_objective(value: object) -> float:
    """`99.9%` or `0.999` as the fraction 0.999. Raises ValueError with a message to show."""
    fraction = parse_fraction(value)
    if not 0.0 < fraction < 1.0:
        raise ValueError(
            f"must be above 0% and below 100% (a 100% objective leaves no error budget), "
            f"got {describe(value)}"
        )
    return fraction


def parse_threshold(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be a duration above zero, got {describe(value)}")
    return seconds


def service_slo(ctx: Context, path: YamlPath, raw: Any) -> ServiceSLO | None:
    """The SLO written at `path` (None when absent or wrong: the problems are recorded)."""
    if raw is None:
        return None
    settings = mapping(ctx, path, raw)
    if settings is None:
        return None
    known_keys(ctx, path, settings, SLO_KEYS, listed=False)
    before = len(ctx.errors)
    availability = optional(ctx, settings, path, "availability", parse_objective)
    latency = _latency(ctx, (*path, "latency"), settings.get("latency"))
    if "availability" not in settings and "latency" not in settings:
        ctx.error(path, "needs 'availability', 'latency' or both")
    if len(ctx.errors) != before:
        return None
    return ServiceSLO(availability=availability, latency=latency)


def environment_slos(ctx: Context, path: YamlPath, raw: Any) -> dict[str, ServiceSLO]:
    """conveyor.yaml's `environments.<env>.slo`: service name -> its objectives."""
    if raw is None:
        return {}
    services = mapping(ctx, path, raw, "a mapping of service: objectives")
    out: dict[str, ServiceSLO] = {}
    for name, written in (services or {}).items():
        where = (*path, name)
        if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
            ctx.error(where, f"invalid service name '{name}' (must match ^[a-zA-Z0-9._-]+$)")
            continue
        if written is None:
            ctx.error(where, "needs 'availability', 'latency' or both")
            continue
        slo = service_slo(ctx, where, written)
        if slo is not None:
            out[name] = slo
    return out


def _latency(ctx: Context, path: YamlPath, raw: Any) -> LatencyObjective | None:
    if raw is None:
        return None
    settings = mapping(ctx, path, raw, "a mapping with 'threshold' and 'objective'")
    if settings is None:
        return None
    known_keys(ctx, path, settings, LATENCY_KEYS, listed=False)
    missing = [key for key in LATENCY_KEYS if settings.get(key) is None]
    for key in missing:
        ctx.error(path, f"'{key}' is required")
    threshold = optional(ctx, settings, path, "threshold", parse_threshold)
    objective = optional(ctx, settings, path, "objective", parse_objective)
    if threshold is None or objective is None:
        return None
    return LatencyObjective(threshold=threshold, objective=objective)
