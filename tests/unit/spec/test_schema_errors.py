"""The shared schema-error translator with a schema of its own, as a new input format plugs in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from jsonschema.validators import validator_for  # type: ignore[import-untyped]

from conveyor.spec.schema_errors import Issue, SchemaTranslator, Wording, spec_errors
from conveyor.spec.yamlpos import YamlPath

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "replicas": {"type": "integer", "minimum": 1},
        "policy": {"enum": ["rolling", "blue-green", "canary"]},
        "port": {"oneOf": [{"type": "integer"}, {"type": "string"}]},
    },
    "additionalProperties": False,
}
LINES = {(): 1, ("name",): 2, ("replicas",): 3, ("policy",): 4, ("port",): 5, ("nmae",): 2}


def errors(doc: Any, wording: Wording | None = None) -> list[str]:
    translator = SchemaTranslator(validator_for(SCHEMA)(SCHEMA), wording)
    found = spec_errors(translator.issues(doc), lambda at: ("app.yaml", LINES.get(at, 1)))
    return [e.render() for e in found]


def test_each_problem_is_one_line_pointing_at_the_key() -> None:
    doc = {"name": "Shop", "replicas": 0, "policy": "canery", "port": [8080], "extra": 1}
    assert errors(doc) == [
        "app.yaml:1: unknown key 'extra'",
        "app.yaml:2: name: must match ^[a-z]+$, got 'Shop'",
        "app.yaml:3: replicas: must be at least 1, got 0",
        "app.yaml:4: policy: must be one of 'rolling', 'blue-green', 'canary', got 'canery'"
        " (did you mean 'canary'?)",
        "app.yaml:5: port: must be an integer or a string, got a list",
    ]


class PlainWords(Wording):
    """A schema whose users want a field named for an unknown key, and its typo fixed."""

    pattern_hints: ClassVar[Mapping[str, str]] = {"^[a-z]+$": "must be lowercase letters"}

    def unknown_key(self, key: str, path: YamlPath, known: set[str], patterns: Any) -> Issue:
        where = (*path, key)
        guess = "name" if key == "nmae" else None
        return Issue(where, where, f"is not a setting ({guess})", (*path, guess) if guess else None)


def test_a_wording_plugs_in_and_a_typo_hides_the_required_it_causes() -> None:
    assert errors({"nmae": "Shop"}, PlainWords()) == ["app.yaml:2: nmae: is not a setting (name)"]
    assert errors({"name": "A"}, PlainWords()) == [
        "app.yaml:2: name: must be lowercase letters, got 'A'"
    ]


def test_spec_errors_sorts_and_drops_duplicates() -> None:
    issue = Issue(("port",), ("port",), "bad")
    got = spec_errors(
        [issue, issue, Issue(("name",), ("name",), "bad")], lambda at: ("f", LINES[at])
    )
    assert [e.render() for e in got] == ["f:2: name: bad", "f:5: port: bad"]
