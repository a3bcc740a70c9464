"""Validation against GitLab's own CI JSON schema, with one short line per problem.

The schema is the copy check-jsonschema vendors (GitLab maintains it for its pipeline editor),
so Conveyor accepts the keywords and shapes GitLab documents. It is applied to the merged
document (includes, `extends` and `!reference` resolved), and each error is translated from
jsonschema's wording ("... is not valid under any of the given schemas") into what to fix,
at the `file:line` where the offending key was written, which may be an included file.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

# jsonschema ships no type information; its errors are handled through typed helpers here.
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from conveyor.ci.load.located import LMap, locate
from conveyor.errors import SpecError
from conveyor.spec.values import describe as _describe
from conveyor.spec.values import suggest
from conveyor.spec.yamlpos import YamlPath, dotted

_SCHEMA = ("check_jsonschema.builtin_schemas.vendor", "gitlab-ci.json")

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "empty",
}
# The schema's regular expressions, said the way a person fixes them.
_PATTERNS = {
    "^/.+/$": "must be a regular expression between slashes, like /Coverage: (\\d+)%/",
    "^[^/]*[^./][^/]*$": "must not contain '/' and must not be '.' or '..'",
    "^(https?://.+|\\$[A-Za-z]+)": "must start with http:// or https:// (or be a $VARIABLE)",
    "\\w\\.ya?ml$": "must name a .yml or .yaml file",
    "\\.ya?ml$": "must name a .yml or .yaml file",
    "^https?://.+\\.ya?ml$": "must be an http(s) URL of a .yml or .yaml file",
    "(?:\\S/\\S|\\$\\S+)": "must be a project path like group/project",
}
_MAX_LISTED = 8  # choices spelled out in full in an error message
# Keywords GitLab removed, named in the "did you mean" of an unknown key.
_RENAMED = {"type": "stage", "types": "stages"}


@dataclass(frozen=True)
class _Issue:
    field: YamlPath  # what is wrong
    at: YamlPath  # where to point: the key itself when it exists
    message: str


@dataclass
class _Mismatch:
    """Why an alternative (`oneOf` branch) does not fit the value's shape at all."""

    types: list[str] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)  # `const`/`enum` choices


@functools.cache
def _schema() -> dict[str, Any]:
    package, name = _SCHEMA
    loaded: dict[str, Any] = json.loads(files(package).joinpath(name).read_text("utf-8"))
    return loaded


@functools.cache
def _validator() -> Any:
    schema = _schema()
    return validator_for(schema)(schema)


def global_keywords() -> frozenset[str]:
    """Top-level keys that are keywords, not jobs (`pages` is a job with a special name)."""
    names = set(_schema()["properties"]) - {"$schema", "!reference", "pages"}
    return frozenset(names)


def validate(doc: LMap) -> list[SpecError]:
    """Every schema problem in the merged document, sorted by file and line."""
    keywords = global_keywords()
    issues: list[_Issue] = []
    checked = LMap(doc.loc)
    for key, value, loc in doc.located_items():
        guess = _misspelt_keyword(key, value, keywords)
        if guess:
            issues.append(_Issue((key,), (key,), f"unknown keyword (did you mean '{guess}'?)"))
        else:
            checked.put(key, value, loc)
    for error in _validator().iter_errors(checked):
        issues.extend(_translate(error, (), keywords))
    return _errors(issues, doc)


def validate_part(keyword: str, instance: Any, base: YamlPath, root: LMap) -> list[SpecError]:
    """Validate one top-level keyword's value on its own (`include` before it is expanded)."""
    validator = _validator().evolve(schema=_schema()["properties"][keyword])
    issues: list[_Issue] = []
    for error in validator.iter_errors(instance):
        issues.extend(_translate(error, base, frozenset()))
    return _errors(issues, root)


def _errors(issues: list[_Issue], root: LMap) -> list[SpecError]:
    unique: dict[tuple[str, int, str, str], None] = {}
    for issue in _without_implied(issues):
        loc = locate(root, issue.at, root.loc)
        unique[(loc.file, loc.line, dotted(issue.field), issue.message)] = None
    return [SpecError(f, line, fld, msg) for f, line, fld, msg in sorted(unique)]


def _without_implied(issues: list[_Issue]) -> list[_Issue]:
    """Drop "'name' is required" when an unknown key beside it says "did you mean 'name'":
    fixing the typo fixes both."""
    guessed = set()
    for issue in issues:
        if issue.message.startswith("unknown key (did you mean '"):
            guessed.add((*issue.field[:-1], issue.message.split("'")[1]))
    return [i for i in issues if not (i.message == "is required" and i.field in guessed)]


def _misspelt_keyword(key: str, value: Any, keywords: frozenset[str]) -> str | None:
    """A top-level key that looks like a keyword typo rather than a job: not a keyword, not a
    mapping with a script (`stage: [a, b]`, `varaibles:` without a script)."""
    if key in keywords or key.startswith(".") or key == "pages":
        return None
    if isinstance(value, LMap) and any(k in value for k in ("script", "extends", "trigger", "run")):
        return None
    if _RENAMED.get(key) in keywords:
        return _RENAMED[key]
    close = difflib.get_close_matches(key, sorted(keywords), n=1, cutoff=0.75)
    return close[0] if close else None


def _translate(error: Any, base: YamlPath, keywords: frozenset[str]) -> Iterator[_Issue]:
    path: YamlPath = (*base, *error.absolute_path)
    kind: str = error.validator
    value = error.instance
    if kind in ("oneOf", "anyOf"):
        yield from _alternatives(error, base, keywords)
    elif kind == "type":
        yield _Issue(path, path, _type_message(error.validator_value, value, path, keywords))
    elif kind == "additionalProperties":
        yield from _unknown_keys(error.schema, value, path)
    elif kind == "required":
        for key in error.validator_value:
            if isinstance(value, dict) and key not in value:
                yield _Issue((*path, key), path, "is required")
    elif kind in ("enum", "const"):
        choices = error.validator_value if kind == "enum" else [error.validator_value]
        yield _Issue(path, path, _choice_message(choices, value))
    elif kind == "pattern":
        message = _PATTERNS.get(error.validator_value, f"must match {error.validator_value}")
        yield _Issue(path, path, f"{message}, got {describe(value)}")
    else:
        yield _Issue(path, path, _bound_message(kind, error.validator_value, value))


def _type_message(wanted: Any, value: Any, path: YamlPath, keywords: frozenset[str]) -> str:
    if len(path) == 1 and keywords and path[0] not in keywords and wanted == "object":
        # Any top-level key that is not a keyword is a job, and a job is a mapping.
        return f"a job must be a mapping, got {describe(value)}"
    return f"must be {_types(wanted)}, got {describe(value)}"


def _bound_message(kind: str, bound: Any, value: Any) -> str:
    if kind == "minimum":
        return f"must be at least {bound}, got {describe(value)}"
    if kind == "maximum":
        return f"must be at most {bound}, got {describe(value)}"
    if kind in ("minItems", "minLength") and bound == 1:
        return "must not be empty"
    if kind == "minItems":
        return f"must have at least {bound} items"
    if kind == "maxItems":
        return f"must have at most {bound} items, got {len(value)}"
    if kind == "minLength":
        return f"must be at least {bound} characters long"
    if kind == "maxLength":
        return f"must be at most {bound} characters long"
    if kind == "uniqueItems" and isinstance(value, list):
        repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
        return f"lists {describe(repeated)} more than once"
    if kind == "not" and isinstance(bound, dict) and bound.get("required"):
        return f"'{bound['required'][0]}' is not allowed here"
    return f"is not allowed ({kind} {bound})"


def _choice_message(choices: list[Any], value: Any) -> str:
    listed = ", ".join(f"'{c}'" for c in choices)
    hint = suggest(value, [str(c) for c in choices]) if isinstance(value, str) else ""
    if len(choices) > _MAX_LISTED and hint:  # a long list hides the one suggestion
        return f"{describe(value)} is not one of the {len(choices)} allowed values{hint}"
    if len(choices) == 1:
        return f"must be {listed}, got {describe(value)}{hint}"
    return f"must be one of {listed}, got {describe(value)}{hint}"


def _unknown_keys(schema: dict[str, Any], value: Any, path: YamlPath) -> Iterator[_Issue]:
    if not isinstance(value, dict):
        return
    known = set(schema.get("properties", {}))
    for key in value:
        if key in known:
            continue
        renamed = _RENAMED.get(key)
        hint = f" (did you mean '{renamed}'?)" if renamed in known else suggest(key, known)
        yield _Issue((*path, key), (*path, key), f"unknown key{hint}")


def _alternatives(error: Any, base: YamlPath, keywords: frozenset[str]) -> Iterator[_Issue]:
    """A oneOf/anyOf failed: explain the alternative with the value's shape, or list shapes."""
    path: YamlPath = (*base, *error.absolute_path)
    if _is_delayed_rule(error.schema):
        # The job schema's oneOf saying a delayed job needs start_in. A job that is not a
        # mapping fails it too, but its type error already says what to fix.
        if isinstance(error.instance, dict):
            message = "is required when 'when' is delayed"
            yield _Issue((*path, "start_in"), (*path, "when"), message)
        return
    branches = _branches(error.context or ())
    if not branches:
        yield _Issue(path, path, "matches more than one allowed form")
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
        # Several alternatives take this shape (needs: three mapping forms): explain the one
        # with the fewest complaints, which is the form the author most likely meant.
        best = min(fitting, key=len)
        for sub in best:
            yield from _translate(sub, base, keywords)
        return
    value = error.instance
    if missing.values and any(type(v) is type(value) for v in missing.values):
        yield _Issue(path, path, _choice_message(missing.values, value))
        return
    wanted = missing.types + [_json_type(v) for v in missing.values]
    yield _Issue(path, path, f"must be {_types(wanted)}, got {describe(value)}")


def _branches(context: Any) -> list[list[Any]]:
    grouped: dict[int, list[Any]] = {}
    for sub in context:
        grouped.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    return list(grouped.values())


def _mismatch(subs: list[Any], depth: int) -> _Mismatch | None:
    """The shapes a branch wanted, if it failed because the value has another shape; None if
    the value has the branch's shape and the complaints are about its content."""
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


def describe(value: Any) -> str:
    """A value as written: strings in quotes but without Python's escaping of backslashes."""
    return f"'{value}'" if isinstance(value, str) else _describe(value)


def _is_delayed_rule(schema: Any) -> bool:
    branches = schema.get("oneOf", ()) if isinstance(schema, dict) else ()
    return any(
        isinstance(branch, dict) and branch.get("required") == ["when", "start_in"]
        for branch in branches
    )


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else "null"


def _types(names: Any) -> str:
    wanted = [names] if isinstance(names, str) else list(names)
    words = list(dict.fromkeys(_TYPE_WORDS.get(str(n), str(n)) for n in wanted))
    if len(words) > 1 and "empty" in words:  # null means "use the default", never the fix
        words.remove("empty")
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]
