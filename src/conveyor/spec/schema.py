"""Validation against the Compose Specification's JSON schema, with errors people can act on.

The schema is the one check-jsonschema vendors (the official compose-spec.json), so Conveyor
accepts exactly what Compose accepts. jsonschema's own messages are written for schema
authors ("... is not valid under any of the given schemas"); here each error becomes one
`file:line: field: message` line pointing at the key to fix. `x-conveyor` is validated by a
small schema of our own through the same translation, so its errors read the same way.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

# jsonschema ships no type information (no py.typed, no stubs installed); everything it
# returns is handled through the small typed helpers below.
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from conveyor.errors import SpecError
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import Document, YamlPath, dotted

# The one vendored copy we trust: installed with check-jsonschema, pinned by its version.
_COMPOSE_SCHEMA = ("check_jsonschema.builtin_schemas.vendor", "compose-spec.json")

_DURATION = {"type": ["string", "number"]}
X_CONVEYOR_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        # integer or string: interpolation turns `${PORT}` into a string; values.to_int checks.
        "port": {"type": ["integer", "string"]},
        "public_port": {"type": ["integer", "string"]},
        "probe": {
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "interval": _DURATION,
                        "timeout": _DURATION,
                        "start_timeout": _DURATION,
                    },
                    "additionalProperties": False,
                },
            ]
        },
        "balance": {"type": "string", "enum": ["roundrobin", "leastconn"]},
    },
    "additionalProperties": False,
}

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


@dataclass(frozen=True)
class _Issue:
    field: YamlPath  # what is wrong
    at: YamlPath  # where to point (the key itself when it exists)
    message: str


@functools.cache
def _compose_validator() -> Any:
    package, name = _COMPOSE_SCHEMA
    schema = json.loads(files(package).joinpath(name).read_text(encoding="utf-8"))
    return validator_for(schema)(schema)


@functools.cache
def _x_conveyor_validator() -> Any:
    return validator_for(X_CONVEYOR_SCHEMA)(X_CONVEYOR_SCHEMA)


def validate(doc: Document, file: str) -> list[SpecError]:
    """Every schema problem in `doc`, one SpecError each, sorted by line."""
    if doc.data is None:
        return [SpecError(file, None, "", "the file is empty")]
    issues = _issues(_compose_validator(), doc.data, ())
    services = doc.data.get("services") if isinstance(doc.data, dict) else None
    if isinstance(services, dict):
        for name, service in services.items():
            if isinstance(service, dict) and "x-conveyor" in service:
                base = ("services", name, "x-conveyor")
                issues.extend(_issues(_x_conveyor_validator(), service["x-conveyor"], base))
    errors = {(doc.line(issue.at), dotted(issue.field), issue.message): None for issue in issues}
    return [SpecError(file, line, field, message) for line, field, message in sorted(errors)]


def _issues(validator: Any, instance: object, base: YamlPath) -> list[_Issue]:
    root: dict[str, Any] = validator.schema
    out: list[_Issue] = []
    for error in validator.iter_errors(instance):
        out.extend(_translate(error, root, base))
    return out


def _path(error: Any, base: YamlPath) -> YamlPath:
    return (*base, *error.absolute_path)


def _translate(error: Any, root: dict[str, Any], base: YamlPath) -> Iterator[_Issue]:
    path = _path(error, base)
    kind: str = error.validator
    value = error.instance
    if kind in ("oneOf", "anyOf"):
        yield from _alternatives(error, root, base)
    elif kind == "type":
        yield _Issue(path, path, f"must be {_types(error.validator_value)}, got {describe(value)}")
    elif kind in ("additionalProperties", "unevaluatedProperties"):
        yield from _unknown_keys(error.schema, root, value, path)
    elif kind == "required":
        for key in error.validator_value:
            if isinstance(value, dict) and key not in value:
                yield _Issue((*path, key), path, "is required")
    elif kind == "enum":
        options = ", ".join(f"'{o}'" for o in error.validator_value)
        hint = suggest(value, map(str, error.validator_value)) if isinstance(value, str) else ""
        yield _Issue(path, path, f"must be one of {options}, got {describe(value)}{hint}")
    elif kind == "minimum":
        yield _Issue(path, path, f"must be at least {error.validator_value}, got {value}")
    elif kind == "maximum":
        yield _Issue(path, path, f"must be at most {error.validator_value}, got {value}")
    elif kind == "pattern":
        yield _Issue(path, path, f"must match {error.validator_value}, got {describe(value)}")
    elif kind == "uniqueItems":
        yield _Issue(path, path, "must not repeat the same item")
    else:
        message = " ".join(str(error.message).split())
        yield _Issue(path, path, message)


def _alternatives(error: Any, root: dict[str, Any], base: YamlPath) -> Iterator[_Issue]:
    """A oneOf/anyOf failed. Explain the alternative whose *shape* matches the value (a
    mapping for the mapping form, ...); if none does, say which shapes are allowed."""
    path = _path(error, base)
    branches: dict[int, list[Any]] = {}
    for sub in error.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    if not branches:  # valid under several alternatives: nothing specific to point at
        yield _Issue(path, path, "matches more than one allowed form")
        return
    expected: list[str] = []
    fitting: list[list[Any]] = []
    for subs in branches.values():
        types = _shape_mismatch(subs, error)
        if types is None:
            fitting.append(subs)
        else:
            expected.extend(types)
    if not fitting:
        yield _Issue(path, path, f"must be {_types(expected)}, got {describe(error.instance)}")
        return
    # Several shapes fit (rare): explain the one whose errors go deepest, like best_match.
    best = max(fitting, key=lambda subs: (max(len(s.absolute_path) for s in subs), -len(subs)))
    for sub in best:
        yield from _translate(sub, root, base)


def _shape_mismatch(subs: list[Any], parent: Any) -> list[str] | None:
    """The types a branch wanted if it failed only because the value has another type."""
    depth = len(parent.absolute_path)
    for sub in subs:
        if len(sub.absolute_path) != depth:
            continue
        if sub.validator == "type":
            wanted = sub.validator_value
            return [wanted] if isinstance(wanted, str) else list(wanted)
        if sub.validator in ("oneOf", "anyOf"):
            nested = [_shape_mismatch([s], sub) for s in sub.context or ()]
            if nested and all(n is not None for n in nested):
                return [t for n in nested if n is not None for t in n]
    return None


def _types(names: object) -> str:
    wanted = [names] if isinstance(names, str) else list(names) if isinstance(names, list) else []
    words = list(dict.fromkeys(_TYPE_WORDS.get(str(n), str(n)) for n in wanted))
    # "empty" is how Compose says "use the default"; it is never what a person meant to fix.
    if len(words) > 1 and "empty" in words:
        words.remove("empty")
    if len(words) <= 1:
        return words[0] if words else "something else"
    return ", ".join(words[:-1]) + " or " + words[-1]


def _unknown_keys(
    schema: dict[str, Any], root: dict[str, Any], value: object, path: YamlPath
) -> Iterator[_Issue]:
    if not isinstance(value, dict):
        return
    known, patterns = _known_keys(schema, root)
    for key in value:
        if key in known or any(re.search(p, key) for p in patterns):
            continue
        if known:
            message = f"unknown key '{key}'{suggest(key, known)}"
        else:  # only name patterns allowed here (service names, volume names, ...)
            allowed = " or ".join(p for p in patterns)
            message = f"invalid name '{key}' (must match {allowed})"
        yield _Issue(path, (*path, key), message)


def _known_keys(schema: dict[str, Any], root: dict[str, Any]) -> tuple[set[str], list[str]]:
    """Property names and patterns a schema allows, following `$ref` and `allOf` (the
    service schema is an allOf of container_spec and workload_spec)."""
    known = set(schema.get("properties", {}))
    patterns = list(schema.get("patternProperties", {}))
    for sub in _subschemas(schema, root):
        more_known, more_patterns = _known_keys(sub, root)
        known |= more_known
        patterns += [p for p in more_patterns if p not in patterns]
    return known, patterns


def _subschemas(schema: dict[str, Any], root: dict[str, Any]) -> Iterable[dict[str, Any]]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        yield _resolve(ref, root)
    yield from schema.get("allOf", ())


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    # compose-spec.json only uses local JSON pointers ("#/$defs/service").
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise TypeError(f"schema reference {ref} is not an object")
    return node
