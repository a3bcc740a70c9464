"""`x-conveyor.canary` of a compose service -> model.CanarySpec (docs/flux.md):

    x-conveyor:
      canary: true                  # Flagger's defaults below
      canary:
        steps: [5, 10, 25, 50]      # or step_weight: 10 + max_weight: 50
        interval: 1m                # between steps
        threshold: 5                # failed checks before rolling back
        error_ratio: 1%             # the canary's 5xx share, at most
        latency: 500ms              # the canary's p99, at most

Only an HTTP service (x-conveyor.port or a probe) with x-conveyor.metrics can be a canary:
Flagger shifts HTTP traffic and judges the canary by its replicas' own metrics. Problems
name file, line and field.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.canary import CanarySpec
from conveyor.model.stack import Routing
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.slo import parse_fraction
from conveyor.spec.values import describe, to_bool, to_int
from conveyor.spec.yamlpos import YamlPath

CANARY_KEYS = (
    "steps",
    "step_weight",
    "max_weight",
    "interval",
    "threshold",
    "error_ratio",
    "latency",
)
_DEFAULT = CanarySpec()


def canary(
    ctx: Context, path: YamlPath, written: Any, route: Routing, has_metrics: bool
) -> CanarySpec | None:
    """The service's canary settings (`path` is its x-conveyor.canary), None when it asks for
    none (absent or `false`). `has_metrics`: the service sets x-conveyor.metrics."""
    if written is None:
        return None
    if isinstance(written, bool | str):
        if not ctx.convert(path, to_bool, written, False):
            return None
        raw: dict[str, Any] = {}
    else:
        found = mapping(ctx, path, written, "true or a mapping of canary settings")
        if found is None:
            return None
        raw = found
    known_keys(ctx, path, raw, CANARY_KEYS, listed=False)
    if route.port is None and route.probe is None:
        ctx.error(
            path,
            "a canary needs an HTTP service: set x-conveyor.port to the port it answers HTTP on",
        )
    if not has_metrics:
        ctx.error(
            path,
            "a canary is judged by its own latency and errors: set x-conveyor.metrics to where "
            "its replicas serve Prometheus metrics",
        )
    if "steps" in raw and ("step_weight" in raw or "max_weight" in raw):
        ctx.error((*path, "steps"), "set 'steps' or 'step_weight'/'max_weight', not both")
    steps = _steps(ctx, (*path, "steps"), raw.get("steps"))
    step_weight = _opt(ctx, raw, path, "step_weight", _weight, _DEFAULT.step_weight)
    max_weight = _opt(ctx, raw, path, "max_weight", _weight, _DEFAULT.max_weight)
    if step_weight > max_weight:
        ctx.error(
            (*path, "step_weight"),
            f"is above max_weight ({step_weight} > {max_weight}): the canary never steps",
        )
    return CanarySpec(
        steps=steps,
        step_weight=step_weight,
        max_weight=max_weight,
        interval=_opt(ctx, raw, path, "interval", _interval, _DEFAULT.interval),
        threshold=_opt(ctx, raw, path, "threshold", _threshold, _DEFAULT.threshold),
        max_error_ratio=_opt(ctx, raw, path, "error_ratio", _ratio, _DEFAULT.max_error_ratio),
        max_latency=_opt(ctx, raw, path, "latency", _latency, _DEFAULT.max_latency),
    )


def _opt(
    ctx: Context, raw: dict[str, Any], path: YamlPath, key: str, convert: Any, default: Any
) -> Any:
    if raw.get(key) is None:
        return default
    return ctx.convert((*path, key), convert, raw[key], default)


def _steps(ctx: Context, path: YamlPath, written: Any) -> tuple[int, ...]:
    if written is None:
        return ()
    if not isinstance(written, list) or not written:
        ctx.error(
            path,
            f"must be a list of traffic weights such as [5, 10, 25, 50], got {describe(written)}",
        )
        return ()
    out: list[int] = []
    for index, item in enumerate(written):
        weight = ctx.convert((*path, index), _weight, item, None)
        if weight is None:
            continue
        if out and weight <= out[-1]:
            ctx.error((*path, index), f"weights must increase, got {weight} after {out[-1]}")
            continue
        out.append(weight)
    return tuple(out)


def _weight(value: Any) -> int:
    number = to_int(value)
    if not 1 <= number <= 100:
        raise ValueError(f"must be a traffic weight from 1 to 100 (percent), got {number}")
    return number


def _interval(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds < 1 or seconds != int(seconds):
        raise ValueError(f"must be whole seconds, at least 1s, got {describe(value)}")
    return seconds


def _threshold(value: Any) -> int:
    number = to_int(value)
    if number < 1:
        raise ValueError(f"must be at least 1 failed check, got {number}")
    return number


def _ratio(value: Any) -> float:
    fraction = parse_fraction(value, "0.01")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"must be above 0% and below 100%, got {describe(value)}")
    return fraction


def _latency(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be a positive duration, got {describe(value)}")
    return seconds
