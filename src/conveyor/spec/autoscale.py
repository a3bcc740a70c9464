"""A service's `x-conveyor.autoscale` -> model.Autoscale:

    x-conveyor:
      autoscale: {min: 2, max: 10, cpu: 70%}    # or rps: 50 (requests/s per replica)

`min` and `max` are replica counts (1 <= min <= max); `cpu` is a utilisation percentage of the
CPU request (`70%` or `70`), `rps` a positive rate. At least one target. Problems go to the
Context with file, line and field.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.autoscale import Autoscale
from conveyor.spec.context import Context
from conveyor.spec.keys import known_keys, mapping, optional
from conveyor.spec.values import describe, to_float, to_int
from conveyor.spec.yamlpos import YamlPath

AUTOSCALE_KEYS = ("min", "max", "cpu", "rps")


def _percent(value: object) -> int:
    text = value.strip().removesuffix("%").strip() if isinstance(value, str) else value
    try:
        percent = to_int(text)
    except ValueError:
        raise ValueError(f"must be a percentage like '70%', got {describe(value)}") from None
    if not 1 <= percent <= 100:
        raise ValueError(f"must be between 1% and 100%, got {describe(value)}")
    return percent


def _positive_rate(value: object) -> float:
    rate = to_float(value)
    if rate <= 0:
        raise ValueError(f"must be above 0 requests per second, got {describe(value)}")
    return rate


def autoscale(ctx: Context, path: YamlPath, written: Any) -> Autoscale | None:
    """The autoscale settings at `path`, None when absent or wrong (recorded)."""
    if written is None:
        return None
    raw = mapping(ctx, path, written)
    if raw is None:
        return None
    known_keys(ctx, path, raw, AUTOSCALE_KEYS)
    low = optional(ctx, raw, path, "min", to_int)
    high = optional(ctx, raw, path, "max", to_int)
    cpu = optional(ctx, raw, path, "cpu", _percent)
    rps = optional(ctx, raw, path, "rps", _positive_rate)
    ok = True
    for key, value in (("min", low), ("max", high)):
        if value is None and key not in raw:
            ctx.error(path, f"needs '{key}' (a replica count)")
            ok = False
        elif value is not None and value < 1:
            ctx.error((*path, key), f"must be at least 1, got {value}")
            ok = False
    if low is not None and high is not None and high < low:
        ctx.error((*path, "max"), f"must be at least min ({low}), got {high}")
        ok = False
    if "cpu" not in raw and "rps" not in raw:
        ctx.error(path, "needs a target: 'cpu' (a percentage) or 'rps' (requests per second)")
        ok = False
    if not ok or low is None or high is None or (cpu is None and rps is None):
        return None
    return Autoscale(min=low, max=high, cpu=cpu, rps=rps)
