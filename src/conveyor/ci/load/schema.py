"""Validation against GitLab's own CI JSON schema, with one short line per problem.

The schema is the copy check-jsonschema vendors (GitLab maintains it for its pipeline editor),
so Conveyor accepts the keywords and shapes GitLab documents. Where that editor schema is
stricter than GitLab's server (`artifacts: {paths: []}`, `stages` listing a stage twice…), it
is relaxed to the server's rule (RELAXATIONS, listed in docs/ci-parity.md). It is applied to
the merged document (includes, `extends` and `!reference` resolved), and each error is
translated from jsonschema's wording ("... is not valid under any of the given schemas") into
what to fix (`spec.schema_errors`, in GitLab's words below), at the `file:line` where the
offending key was written, which may be an included file.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any, ClassVar

# jsonschema ships no type information; its errors are handled through typed helpers here.
from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from conveyor.ci.load.located import LMap, locate
from conveyor.errors import SpecError
from conveyor.spec.schema_errors import Issue, SchemaError, SchemaTranslator, Wording, spec_errors
from conveyor.spec.values import describe as _describe
from conveyor.spec.values import suggest
from conveyor.spec.yamlpos import YamlPath

_SCHEMA = ("check_jsonschema.builtin_schemas.vendor", "gitlab-ci.json")

# The schema's regular expressions, said the way a person fixes them.
_PATTERNS = {
    "^/.+/$": "must be a regular expression between slashes, like /Coverage: (\\d+)%/",
    "^[^/]*[^./][^/]*$": "must not contain '/' and must not be '.' or '..'",
    "\\w\\.ya?ml$": "must name a .yml or .yaml file",
    "\\.ya?ml$": "must name a .yml or .yaml file",
    "^https?://.+\\.ya?ml$": "must be an http(s) URL of a .yml or .yaml file",
    "(?:\\S/\\S|\\$\\S+)": "must be a project path like group/project",
}
_DROP = object()
# Where the editor's schema is stricter than GitLab's server, which is what decides whether a
# pipeline runs: (JSON pointer, keyword, new value or _DROP, the server's rule that allows it).
# Listed in docs/ci-parity.md. A pointer that no longer exists fails loudly: a new schema
# version has to be audited again.
RELAXATIONS: tuple[tuple[str, str, object, str], ...] = (
    (
        "/definitions/artifacts/properties/paths",
        "minItems",
        _DROP,
        "Entry::Artifacts: paths is array_of_strings, [] included",
    ),
    (
        "/definitions/artifacts/properties/exclude",
        "minItems",
        _DROP,
        "Entry::Artifacts: exclude is array_of_strings",
    ),
    (
        "/definitions/artifacts/properties/reports/properties/junit/oneOf/1",
        "minItems",
        _DROP,
        "Entry::Reports: junit is array_of_strings_or_string",
    ),
    ("/properties/stages", "minItems", _DROP, "Entry::Stages: nested_array_of_strings"),
    (
        "/properties/stages",
        "uniqueItems",
        _DROP,
        "Entry::Stages: nested_array_of_strings; a repeated stage is the first one",
    ),
    (
        "/definitions/allow_failure/oneOf/2/properties/exit_codes",
        "minItems",
        _DROP,
        "Entry::AllowFailure: array_of_integers_or_integer",
    ),
    (
        "/definitions/allow_failure/oneOf/2/properties/exit_codes",
        "uniqueItems",
        _DROP,
        "Entry::AllowFailure: array_of_integers_or_integer",
    ),
    (
        "/definitions/retry/oneOf/1/properties/exit_codes/oneOf/0",
        "minItems",
        _DROP,
        "Entry::Retry: array_of_integers_or_integer",
    ),
    (
        "/definitions/retry/oneOf/1/properties/exit_codes/oneOf/0",
        "uniqueItems",
        _DROP,
        "Entry::Retry: array_of_integers_or_integer",
    ),
    (
        "/definitions/job_template/properties/environment/oneOf/1/properties/url",
        "pattern",
        _DROP,
        "Entry::Environment: url is any string (`${REVIEW_URL}`, a bare host)",
    ),
    (
        "/definitions/job_template/properties/environment/oneOf/1/properties/url",
        "maxLength",
        255,
        "Entry::Environment: url is at most 255 characters",
    ),
    (
        "/definitions/image/oneOf/1/properties/entrypoint",
        "minItems",
        _DROP,
        "Entry::Imageable: entrypoint is array_of_strings",
    ),
    (
        "/definitions/services/items/oneOf/1/properties/entrypoint",
        "minItems",
        _DROP,
        "Entry::Imageable: entrypoint is array_of_strings",
    ),
    (
        "/definitions/image/oneOf/1/properties/pull_policy/oneOf/1",
        "uniqueItems",
        _DROP,
        "Entry::PullPolicy: allowed_array_values, repeats included",
    ),
    (
        "/definitions/services/items/oneOf/1/properties/pull_policy/oneOf/1",
        "uniqueItems",
        _DROP,
        "Entry::PullPolicy: allowed_array_values, repeats included",
    ),
    (
        "/definitions/globalVariables/patternProperties/.*/oneOf/1/properties/options",
        "minItems",
        _DROP,
        "Entry::Variable: options is array_of_strings",
    ),
    (
        "/definitions/globalVariables/patternProperties/.*/oneOf/1/properties/options",
        "uniqueItems",
        _DROP,
        "Entry::Variable: options is array_of_strings",
    ),
    (
        "/definitions/job_template/properties/extends/oneOf/1",
        "minItems",
        _DROP,
        "Entry::Processable: extends is array_of_strings_or_string",
    ),
)
_MAX_LISTED = 8  # choices spelled out in full in an error message
# Keywords GitLab removed, named in the "did you mean" of an unknown key.
_RENAMED = {"type": "stage", "types": "stages"}


class GitLabWording(Wording):
    """How `.gitlab-ci.yml` problems are said. `keywords` are the top-level keywords: any
    other top-level key is a job."""

    pattern_hints: ClassVar[Mapping[str, str]] = _PATTERNS

    def __init__(self, keywords: frozenset[str] = frozenset()) -> None:
        self.keywords = keywords

    def describe(self, value: Any) -> str:
        """A value as written: strings in quotes but without Python's escaping of backslashes."""
        return f"'{value}'" if isinstance(value, str) else _describe(value)

    def type_message(self, wanted: Any, value: Any, path: YamlPath) -> str:
        keywords = self.keywords
        if len(path) == 1 and keywords and path[0] not in keywords and wanted == "object":
            # Any top-level key that is not a keyword is a job, and a job is a mapping.
            return f"a job must be a mapping, got {self.describe(value)}"
        return super().type_message(wanted, value, path)

    def choice(self, choices: Sequence[Any], value: Any) -> str:
        listed = ", ".join(f"'{c}'" for c in choices)
        hint = suggest(value, [str(c) for c in choices]) if isinstance(value, str) else ""
        if len(choices) > _MAX_LISTED and hint:  # a long list hides the one suggestion
            return f"{self.describe(value)} is not one of the {len(choices)} allowed values{hint}"
        if len(choices) == 1:
            return f"must be {listed}, got {self.describe(value)}{hint}"
        return f"must be one of {listed}, got {self.describe(value)}{hint}"

    def unknown_key(
        self, key: str, path: YamlPath, known: set[str], patterns: Sequence[str]
    ) -> Issue:
        renamed = _RENAMED.get(key)
        guess = renamed if renamed in known else _closest(key, known)
        hint = f" (did you mean '{guess}'?)" if guess else ""
        where = (*path, key)
        return Issue(where, where, f"unknown key{hint}", (*path, guess) if guess else None)

    def other(self, error: SchemaError) -> str:
        kind, bound, value = error.validator, error.validator_value, error.instance
        if kind == "minimum":
            return f"must be at least {bound}, got {self.describe(value)}"
        if kind == "maximum":
            return f"must be at most {bound}, got {self.describe(value)}"
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
            return f"lists {self.describe(repeated)} more than once"
        if kind == "not" and isinstance(bound, dict) and bound.get("required"):
            return f"'{bound['required'][0]}' is not allowed here"
        return f"is not allowed ({kind} {bound})"

    def special_alternatives(self, error: SchemaError, path: YamlPath) -> list[Issue] | None:
        if not _is_delayed_rule(error.schema):
            return None
        # The job schema's oneOf saying a delayed job needs start_in. A job that is not a
        # mapping fails it too, but its type error already says what to fix.
        if not isinstance(error.instance, dict):
            return []
        return [Issue((*path, "start_in"), (*path, "when"), "is required when 'when' is delayed")]


def _closest(key: str, known: set[str]) -> str | None:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _is_delayed_rule(schema: Any) -> bool:
    branches = schema.get("oneOf", ()) if isinstance(schema, dict) else ()
    return any(
        isinstance(branch, dict) and branch.get("required") == ["when", "start_in"]
        for branch in branches
    )


@functools.cache
def _schema() -> dict[str, Any]:
    package, name = _SCHEMA
    loaded: dict[str, Any] = json.loads(files(package).joinpath(name).read_text("utf-8"))
    return relax(loaded)


def relax(schema: dict[str, Any]) -> dict[str, Any]:
    """The editor's schema with RELAXATIONS applied (in place)."""
    for pointer, keyword, value, _why in RELAXATIONS:
        node: Any = schema
        for part in pointer.strip("/").split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DROP:
            if keyword not in node:
                raise KeyError(f"{pointer} has no {keyword}: audit the new schema's strictness")
            del node[keyword]
        else:
            node[keyword] = value
    return schema


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
    issues: list[Issue] = []
    checked = LMap(doc.loc)
    for key, value, loc in doc.located_items():
        guess = _misspelt_keyword(key, value, keywords)
        if guess:
            issues.append(Issue((key,), (key,), f"unknown keyword (did you mean '{guess}'?)"))
        else:
            checked.put(key, value, loc)
    issues.extend(SchemaTranslator(_validator(), GitLabWording(keywords)).issues(checked))
    return _errors(issues, doc)


def validate_part(keyword: str, instance: Any, base: YamlPath, root: LMap) -> list[SpecError]:
    """Validate one top-level keyword's value on its own (`include` before it is expanded)."""
    validator = _validator().evolve(schema=_schema()["properties"][keyword])
    return _errors(SchemaTranslator(validator, GitLabWording()).issues(instance, base), root)


def _errors(issues: list[Issue], root: LMap) -> list[SpecError]:
    def where(at: YamlPath) -> tuple[str, int]:
        loc = locate(root, at, root.loc)
        return loc.file, loc.line

    return spec_errors(issues, where)


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
