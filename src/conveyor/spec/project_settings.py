"""The top-level `x-conveyor` of compose.yaml: settings of the whole project.

    x-conveyor:
      logs: false            # no log collection (a short-lived review environment)
      # or
      logs:
        collect: true
        retention: 3d        # how long lines are kept: 90m, 12h, 3d, 2w
        max_size: 512m       # how large the log store may grow

The schema (`spec.schema`) has checked the shape; values are checked here, each error at its
file:line.
"""

from __future__ import annotations

import re
from typing import Any

from conveyor.model.logs import LogSettings
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_bytes, parse_duration
from conveyor.spec.values import to_bool

_DAYS = re.compile(r"(\d+(?:\.\d+)?)([dw])")
_AGE_HINT = "use e.g. '12h', '3d' or '2w'"


def log_settings(ctx: Context, data: dict[str, Any]) -> LogSettings:
    ext = data.get("x-conveyor")
    if not isinstance(ext, dict) or "logs" not in ext:
        return LogSettings()
    raw = ext["logs"]
    path = ("x-conveyor", "logs")
    if isinstance(raw, bool):
        return LogSettings(collect=raw)
    if not isinstance(raw, dict):
        return LogSettings()  # the schema said so already
    collect = ctx.optional(raw, "collect", path, to_bool, True)
    max_age = ctx.optional(raw, "retention", path, _age, None)
    max_bytes = ctx.optional(raw, "max_size", path, _size, None)
    return LogSettings(collect=collect, max_age=max_age, max_bytes=max_bytes)


def _age(value: object) -> float:
    text = str(value).strip()
    found = _DAYS.fullmatch(text)
    seconds = (
        float(found.group(1)) * 86_400 * (7 if found.group(2) == "w" else 1)
        if found
        else _duration(value)
    )
    if seconds <= 0:
        raise ValueError(f"the retention must be longer than 0, got {value!r} ({_AGE_HINT})")
    return seconds


def _duration(value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"invalid retention {value!r} ({_AGE_HINT})") from None


def _size(value: object) -> int:
    size = parse_bytes(value)
    if size < 1024 * 1024:
        raise ValueError(f"the log store needs at least 1m, got {value!r}")
    return size
