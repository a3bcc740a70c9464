"""One translator from JSON-schema errors to what a person fixes: `file:line: field: message`.

jsonschema's own messages are written for schema authors ("... is not valid under any of the
given schemas"). `SchemaTranslator` turns each error into `Issue`s that name the field to fix
and the key to point at, explaining a failed `oneOf`/`anyOf` by the alternative whose shape the
value has (or by the shapes allowed when none has). `spec_errors` makes them `SpecError`s.

A schema plugs in with a `Wording`: how values are shown, which patterns have a plain-words
meaning, how an unknown key, a bad choice or a bound is said. The base class suits any schema
and is what compose.yaml (and its `x-conveyor` block) use; `.gitlab-ci.yml` has its own
(`conveyor.ci.load.schema`). Later schemas (conveyor.yaml, Kubernetes manifests) subclass it
where their users expect other words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from conveyor.errors import SpecError
from conveyor.spec.values import describe, suggest
from conveyor.spec.yamlpos import YamlPath, dotted

# jsonschema ships no type information: its errors are `Any` here, read through these helpers.
SchemaError = Any

TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}


@dataclass(frozen=True)
class Issue:
    field: YamlPath  # what is wrong
    at: YamlPath  # where to point: the key itself when it exists
    message: str
    suggested: YamlPath | None = None  # an unknown key's likely intended name, as a field


def type_words(names: Any) -> str:
    """JSON types as words: `a string or a list`. "empty" (null, i.e. "use the default") is
    left out when there are other choices: it is never what a person meant to fix."""
    wanted = [names] if isinstance(names, str) else list(names)
    words = list(dict.fromkeys(TYPE_WORDS.get(str(n), str(n)) for n in wanted))
    if len(words) > 1 and "empty" in words:
        words.remove("empty")
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


class Wording:
    """How a schema's problems are said. Override what a schema's users expect in other words."""

    # The schema's regular expressions, said the way a person fixes them ("must ...").
    pattern_hints: ClassVar[Mapping[str, str]] = {}

    def describe(self, value: Any) -> str:
        return describe(value)

    def type_message(self, wanted: Any, value: Any, path: YamlPath) -> str:
        del path
        return f"must be {type_words(wanted)}, got {self.describe(value)}"

    def choice(self, choices: Sequence[Any], value: Any) -> str:
        options = ", ".join(f"'{o}'" for o in choices)
        hint = suggest(value, map(str, choices)) if isinstance(value, str) else ""
        return f"must be one of {options}, got {self.describe(value)}{hint}"

    def pattern(self, regex: str, value: Any) -> str:
        message = self.pattern_hints.get(regex, f"must match {regex}")
        return f"{message}, got {self.describe(value)}"

    def unknown_key(
        self, key: str, path: YamlPath, known: set[str], patterns: Sequence[str]
    ) -> Issue:
        if known:
            return Issue(path, (*path, key), f"unknown key '{key}'{suggest(key, known)}")
        # only name patterns allowed here (service names, volume names, ...)
        allowed = " or ".join(patterns)
        return Issue(path, (*path, key), f"invalid name '{key}' (must match {allowed})")

    def other(self, error: SchemaError) -> str:
        """Every other kind of error: bounds, lengths, uniqueness..."""
        kind, bound, value = error.validator, error.validator_value, error.instance
        if kind == "minimum":
            return f"must be at least {bound}, got {value}"
        if kind == "maximum":
            return f"must be at most {bound}, got {value}"
        if kind == "uniqueItems":
            return "must not repeat the same item"
        return " ".join(str(error.message).split())

    def special_alternatives(self, error: SchemaError, path: YamlPath) -> list[Issue] | None:
        """A `oneOf`/`anyOf` of the schema that means something particular; None if not."""
        del error, path
        return None


@dataclass
class _Mismatch:
    """Why an alternative does not fit the value's shape at all."""

    types: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)  # `const`/`enum` choices


class SchemaTranslator:
    """Validate with `validator` (a jsonschema validator) and say each problem as `wording`
    does."""

    def __init__(self, validator: Any, wording: Wording | None = None) -> None:
        self.validator = validator
        self.wording = wording or Wording()
        self._root: dict[str, Any] = validator.schema

    def issues(self, instance: Any, base: YamlPath = ()) -> list[Issue]:
        """Every problem of `instance`; `base` is where it sits in the whole document."""
        out: list[Issue] = []
        for error in self.validator.iter_errors(instance):
            out.extend(self._translate(error, base))
        return out

    def _translate(self, error: SchemaError, base: YamlPath) -> Iterator[Issue]:
        path: YamlPath = (*base, *error.absolute_path)
        kind: str = error.validator
        value = error.instance
        say = self.wording
        if kind in ("oneOf", "anyOf"):
            yield from self._alternatives(error, base)
        elif kind == "type":
            yield Issue(path, path, say.type_message(error.validator_value, value, path))
        elif kind in ("additionalProperties", "unevaluatedProperties"):
            yield from self._unknown_keys(error.schema, value, path)
        elif kind == "required":
            for key in error.validator_value:
                if isinstance(value, dict) and key not in value:
                    yield Issue((*path, key), path, "is required")
        elif kind in ("enum", "const"):
            choices = error.validator_value if kind == "enum" else [error.validator_value]
            yield Issue(path, path, say.choice(choices, value))
        elif kind == "pattern":
            yield Issue(path, path, say.pattern(error.validator_value, value))
        else:
            yield Issue(path, path, say.other(error))

    # --- unknown keys ------------------------------------------------------------------------

    def _unknown_keys(self, schema: dict[str, Any], value: Any, path: YamlPath) -> Iterator[Issue]:
        if not isinstance(value, dict):
            return
        known, patterns = self._known_keys(schema)
        for key in value:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            yield self.wording.unknown_key(key, path, known, patterns)

    def _known_keys(self, schema: dict[str, Any]) -> tuple[set[str], list[str]]:
        """Property names and patterns a schema allows, following `$ref` and `allOf` (Compose's
        service schema is an allOf of container_spec and workload_spec)."""
        known = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for sub in self._subschemas(schema):
            more_known, more_patterns = self._known_keys(sub)
            known |= more_known
            patterns += [p for p in more_patterns if p not in patterns]
        return known, patterns

    def _subschemas(self, schema: dict[str, Any]) -> Iterable[dict[str, Any]]:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            yield self._resolve(ref)
        yield from schema.get("allOf", ())

    def _resolve(self, ref: str) -> dict[str, Any]:
        # Only local JSON pointers ("#/$defs/service", "#/definitions/job").
        node: Any = self._root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        if not isinstance(node, dict):
            raise TypeError(f"schema reference {ref} is not an object")
        return node

    # --- alternatives ------------------------------------------------------------------------

    def _alternatives(self, error: SchemaError, base: YamlPath) -> Iterator[Issue]:
        """A oneOf/anyOf failed: explain the alternative with the value's shape, or say which
        shapes (and values) are allowed."""
        path: YamlPath = (*base, *error.absolute_path)
        special = self.wording.special_alternatives(error, path)
        if special is not None:
            yield from special
            return
        branches = _branches(error.context or ())
        if not branches:  # valid under several alternatives: nothing specific to point at
            yield Issue(path, path, "matches more than one allowed form")
            return
        depth = len(error.absolute_path)
        fitting: list[list[Any]] = []
        missing = _Mismatch()
        for subs in branches:
            mismatch = _mismatch(subs, depth)
            if mismatch is None:
                fitting.append(subs)
            else:
                missing.types.extend(mismatch.types)
                missing.values.extend(mismatch.values)
        if fitting:
            # Several alternatives take the value's shape (needs: three mapping forms): explain
            # the one whose errors go deepest, then the fewest, like jsonschema's best_match.
            best = max(
                fitting, key=lambda subs: (max(len(s.absolute_path) for s in subs), -len(subs))
            )
            for sub in best:
                yield from self._translate(sub, base)
            return
        value = error.instance
        if missing.values and any(type(v) is type(value) for v in missing.values):
            yield Issue(path, path, self.wording.choice(missing.values, value))
            return
        wanted = missing.types + [_json_type(v) for v in missing.values]
        yield Issue(path, path, f"must be {type_words(wanted)}, got {self.wording.describe(value)}")


def _depth_then_fewest(subs: list[SchemaError]) -> tuple[int, int]:
    return max(len(s.absolute_path) for s in subs), -len(subs)


def _branches(context: Iterable[SchemaError]) -> list[list[SchemaError]]:
    """A oneOf/anyOf's sub-errors grouped by the alternative they belong to."""
    grouped: dict[int, list[Any]] = {}
    for sub in context:
        grouped.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    return list(grouped.values())


def _mismatch(subs: list[SchemaError], depth: int) -> _Mismatch | None:
    """The shapes (or values) an alternative wanted, if it failed because the value has another
    shape; None if the value has the alternative's shape and the complaints are about its
    content."""
    here = [sub for sub in subs if len(sub.absolute_path) == depth]
    for sub in here:
        if sub.validator == "type":
            wanted = sub.validator_value
            return _Mismatch(types=[wanted] if isinstance(wanted, str) else list(wanted))
    if here and len(here) == len(subs) and all(s.validator in ("enum", "const") for s in here):
        out = _Mismatch()
        for sub in here:
            choices = sub.validator_value
            out.values.extend(choices if sub.validator == "enum" else [choices])
        return out
    for sub in here:
        if sub.validator in ("oneOf", "anyOf"):
            nested = [_mismatch(group, depth) for group in _branches(sub.context or ())]
            if nested and all(n is not None for n in nested):
                out = _Mismatch()
                for n in nested:
                    if n is not None:
                        out.types.extend(n.types)
                        out.values.extend(n.values)
                return out
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "null"


def spec_errors(
    issues: Iterable[Issue], where: Callable[[YamlPath], tuple[str, int]]
) -> list[SpecError]:
    """One SpecError per distinct problem, sorted by file and line. `where(path)` is the file
    and line a path was written at. A "'name' is required" next to an unknown key that was
    probably meant to be `name` is left out: fixing the typo fixes both."""
    listed = list(issues)
    suggested = {i.suggested for i in listed if i.suggested is not None}
    unique: dict[tuple[str, int, str, str], None] = {}
    for issue in listed:
        if issue.message == "is required" and issue.field in suggested:
            continue
        file, line = where(issue.at)
        unique[(file, line, dotted(issue.field), issue.message)] = None
    return [SpecError(f, line, fld, msg) for f, line, fld, msg in sorted(unique)]
