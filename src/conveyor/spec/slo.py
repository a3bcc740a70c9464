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
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.model.slo import LatencyObjective, ServiceSLO
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import YamlPath

SLO_KEYS = ("availability", "latency")
LATENCY_KEYS = ("threshold", "objective")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9._-]+")  # the Compose schema's pattern
_PERCENT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*")


def parse_objective(value: object) -> float:
    """`99.9%` or `0.999` as the fraction 0.999. Raises ValueError with a message to show."""
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
            f"must be a percentage like '99.9%' or a fraction like 0.999, got {describe(value)}"
        )
    if fraction >= 1.0 and not (isinstance(value, str) and "%" in value):
        raise ValueError(
            f"{describe(value)} reads as a fraction above 1: write a percentage with its "
            f"sign ('{value}%') or a fraction (0.999)"
        )
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
    settings = _mapping(ctx, raw, path)
    if settings is None:
        return None
    _known(ctx, settings, path, SLO_KEYS)
    before = len(ctx.errors)
    availability = _value(ctx, settings, path, "availability", parse_objective)
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
    services = _mapping(ctx, raw, path, "a mapping of service: objectives")
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
    settings = _mapping(ctx, raw, path, "a mapping with 'threshold' and 'objective'")
    if settings is None:
        return None
    _known(ctx, settings, path, LATENCY_KEYS)
    missing = [key for key in LATENCY_KEYS if settings.get(key) is None]
    for key in missing:
        ctx.error(path, f"'{key}' is required")
    threshold = _value(ctx, settings, path, "threshold", parse_threshold)
    objective = _value(ctx, settings, path, "objective", parse_objective)
    if threshold is None or objective is None:
        return None
    return LatencyObjective(threshold=threshold, objective=objective)


def _value(
    ctx: Context, raw: Mapping[str, Any], path: YamlPath, key: str, convert: Callable[[Any], float]
) -> float | None:
    if raw.get(key) is None:
        return None
    result: float | None = ctx.convert((*path, key), convert, raw[key], None)
    return result


def _mapping(
    ctx: Context, value: Any, path: YamlPath, shape: str = "a mapping"
) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    ctx.error(path, f"must be {shape}, got {describe(value)}")
    return None


def _known(ctx: Context, raw: Mapping[str, Any], path: YamlPath, known: tuple[str, ...]) -> None:
    for key in raw:
        if key not in known:
            ctx.error((*path, key), f"unknown key '{key}'{suggest(str(key), known)}", about=path)
