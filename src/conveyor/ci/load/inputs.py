"""`spec:inputs` values: what a file gets for each input, checked the way GitLab checks them.

An input without `default` is required. A value is checked against the input's `type`
(`string` unless said, `number`, `boolean`, `array`), its `options` (strings and numbers only)
and its `regex` (strings only, searched anywhere in the value); a default is checked the same
way. The messages are GitLab's (`Gitlab::Ci::Config::Interpolation::Inputs`), word for word:

    `environment` input: required value has not been provided
    `replicas` input: provided value is not a number
    `environment` input: `dev` cannot be used because it is not in the list of allowed options
    unknown input arguments: colour
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from conveyor.ci.load.located import Loc

NO_SPEC = "Given inputs not defined in the `spec` section of the included configuration file"
_ARTICLE = {"array": "an array"}


@dataclass(frozen=True)
class InputSpec:
    """One `spec:inputs` entry."""

    name: str
    type: str  # string, number, boolean or array
    has_default: bool
    default: Any
    options: tuple[Any, ...] | None
    regex: str | None
    loc: Loc  # where the input is declared


@dataclass(frozen=True)
class InputProblem:
    """A GitLab message, the given input it is about (None: the inputs as a whole) and the
    declared input it is about (None: none in particular)."""

    message: str
    given: str | None = None
    input: str | None = None


def resolve_inputs(
    specs: tuple[InputSpec, ...] | None, given: Mapping[str, Any]
) -> tuple[dict[str, Any], list[InputProblem]]:
    """The value of every input (given, else its default) and what is wrong with the given
    ones; `specs` None means the file has no header. A given `null` counts as not given."""
    if specs is None:
        return {}, [InputProblem(NO_SPEC)] if given else []
    problems = []
    unknown = [name for name in given if name not in {s.name for s in specs}]
    if unknown:
        problems.append(InputProblem(f"unknown input arguments: {', '.join(unknown)}", unknown[0]))
    values: dict[str, Any] = {}
    for spec in specs:
        value = given.get(spec.name)
        if value is None and not spec.has_default:
            problems.append(
                InputProblem(
                    f"`{spec.name}` input: required value has not been provided", None, spec.name
                )
            )
            continue
        if value is not None:
            problems += [InputProblem(m, spec.name, spec.name) for m in value_problems(spec, value)]
        values[spec.name] = spec.default if value is None else value
    return values, problems


def value_problems(spec: InputSpec, value: Any, *, default: bool = False) -> list[str]:
    """GitLab's type, options and regex checks of one value (a default with `default`)."""
    which = "default" if default else "provided"
    out = []
    if not _has_type(spec.type, value):
        out.append(f"{which} value is not {_ARTICLE.get(spec.type, 'a ' + spec.type)}")
    if spec.options is not None:
        if spec.type not in ("string", "number"):
            out.append("Options can only be used with string and number inputs")
        elif not any(_same(value, option) for option in spec.options):
            the = "the " if spec.type == "number" else ""
            out.append(
                f"`{ruby_text(value)}` cannot be used because it is not in the list of {the}"
                "allowed options"
            )
    if spec.regex is not None:
        if spec.type != "string":
            out.append("RegEx validation can only be used with string inputs")
        elif isinstance(value, str):
            try:
                matched = re.search(spec.regex, value) is not None
            except re.error:
                out.append("invalid regular expression")
            else:
                if not matched:
                    out.append(f"{which} value does not match required RegEx pattern")
    return [f"`{spec.name}` input: {message}" for message in out]


def from_text(kind: str, text: str) -> Any:
    """A pipeline input typed on the command line, as the header declares it: `3` for a
    number, `true`/`false` for a boolean, a YAML list (`[a, b]`) for an array. Text that is
    not of the type stays text, and the check says so in GitLab's words."""
    if kind == "number" and re.fullmatch(r"-?\d+", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"-?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", text):
        return float(text)
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    if kind == "array":
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return parsed if isinstance(parsed, list) else text
    return text


def _has_type(kind: str, value: Any) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, str)


def _same(value: Any, option: Any) -> bool:
    """Ruby's `==` between YAML values: 1 == 1.0, but true is no number and "1" no 1."""
    if isinstance(value, bool) or isinstance(option, bool):
        return isinstance(value, bool) and isinstance(option, bool) and value == option
    return bool(value == option)


def ruby_text(value: Any) -> str:
    """How GitLab (Ruby's `to_s`) writes a YAML value into a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
