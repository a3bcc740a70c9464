"""The shape checks every section of conveyor.yaml (and x-conveyor's hand-checked keys) make:
a value must be a mapping, its keys known ones (with the closest as a suggestion), each
problem recorded on the Context at the key's line."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from conveyor.spec.context import Context
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import YamlPath

T = TypeVar("T")

_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # an environment variable's name


def mapping(
    ctx: Context, path: YamlPath, value: Any, shape: str = "a mapping"
) -> dict[str, Any] | None:
    """`value` when it is a mapping, else None after recording "must be <shape>". Test the
    result with `is None`: an empty mapping is a mapping."""
    if isinstance(value, dict):
        return value
    ctx.error(path, f"must be {shape}, got {describe(value)}")
    return None


def known_keys(
    ctx: Context,
    path: YamlPath,
    raw: Mapping[str, Any],
    allowed: tuple[str, ...],
    *,
    listed: bool = True,
    secrets: Mapping[str, str] | None = None,
    extensions: bool = False,
) -> None:
    """Refuse every key of `raw` not in `allowed`, suggesting the closest.

    `listed`: the message lists the known keys (sections with few keys), else it names the
    key, with the parent as the field. `secrets`: a key that would hold a secret -> the key
    naming the environment variable that holds it instead (refused with that advice).
    `extensions`: `x-` keys (YAML anchors to reuse) pass."""
    for key in raw:
        name = str(key)
        if key in allowed or (extensions and name.startswith("x-")):
            continue
        secret = (secrets or {}).get(name)
        if secret in allowed:
            ctx.error(
                (*path, key),
                f"secrets do not belong in git: put the value in an environment variable "
                f"and name it with '{secret}'",
            )
        elif listed:
            known = ", ".join(allowed)
            ctx.error((*path, key), f"unknown key (known: {known}){suggest(name, allowed)}")
        else:
            ctx.error((*path, key), f"unknown key '{name}'{suggest(name, allowed)}", about=path)


def optional(
    ctx: Context, raw: Mapping[str, Any], path: YamlPath, key: str, convert: Callable[[Any], T]
) -> T | None:
    """`raw[key]` converted, None when the key is absent or empty (a ValueError recorded)."""
    if raw.get(key) is None:
        return None
    return ctx.convert((*path, key), convert, raw[key], None)


def env_name(ctx: Context, path: YamlPath, raw: Mapping[str, Any], key: str) -> str | None:
    """`raw[key]` when it names an environment variable (a `*_env` key: the secret it holds
    stays out of git), None when absent or wrong (recorded)."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) and _VARIABLE.fullmatch(value):
        return value
    ctx.error(
        (*path, key),
        f"must name an environment variable (letters, digits, _), got {describe(value)}",
    )
    return None
