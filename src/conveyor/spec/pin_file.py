"""`.conveyor/pins/<environment>.json` <-> model.Pin.

The server writes the file when it rolls an environment back (`render_pin`); people may edit
or delete it, so it is read like any input file: JSON read by the YAML 1.2 loader (JSON is
YAML 1.2), so each problem names the file, the line and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conveyor.errors import SpecError
from conveyor.model.pins import Pin
from conveyor.spec.context import Context, raise_errors
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import load_yaml

KEYS = ("commit", "release", "by", "at")
_HEX = re.compile(r"[0-9a-f]{7,64}")


def render_pin(pin: Pin) -> str:
    """The file's text: one key a line, so a diff of two pins reads well."""
    return json.dumps(pin.model_dump(exclude_none=True), indent=2) + "\n"


def parse_pin(text: str, file: str) -> Pin:
    """A pin file's text -> Pin. Raises SpecError / SpecErrors (`file:line: field: message`)."""
    doc = load_yaml(text, file, version="1.2")
    raw = doc.data
    if not isinstance(raw, dict):
        raise SpecError(file, 1, "", f"must be a JSON object, got {describe(raw)}")
    ctx = Context(doc=doc, file=file, base=Path("."), environ={})
    for key in raw:
        if key not in KEYS:
            ctx.error((key,), f"unknown key '{key}'{suggest(str(key), KEYS)}")
    commit = raw.get("commit")
    if "commit" not in raw:
        ctx.error((), "'commit' is required: the commit the environment is held at")
    elif not isinstance(commit, str) or not _HEX.fullmatch(commit):
        ctx.error(("commit",), f"must be a commit id (7 to 64 hex digits), got {describe(commit)}")
    release = _number(ctx, raw, "release", int)
    at = _number(ctx, raw, "at", float)
    by = raw.get("by")
    if by is not None and not isinstance(by, str):
        ctx.error(("by",), f"must be a string, got {describe(by)}")
    raise_errors(ctx.errors)
    return Pin(commit=str(commit), release=release, by=by, at=at)


def _number(ctx: Context, raw: dict[str, Any], key: str, kind: type[int] | type[float]) -> Any:
    value = raw.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or value < (1 if kind is int else 0):
        shape = "a release number (1 or more)" if kind is int else "seconds since the epoch"
        ctx.error((key,), f"must be {shape}, got {describe(value)}")
        return None
    return kind(value)
