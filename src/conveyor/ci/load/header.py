"""A CI file as GitLab reads it: one YAML document (the configuration), or two separated by
`---` whose first holds `spec:` (the inputs the file takes, the component fields it uses).

- Two documents, the first a mapping with `spec:`: a header and the configuration.
- Two documents otherwise: GitLab reads the first and ignores the second; so does Conveyor.
- More than two: refused (GitLab reads a third one only by accident of how it splits files).
- `spec:` in a single document: refused, it must be a header of its own (GitLab would take it
  for a job).

The header is checked here, once: its shape against GitLab's schema, and every input's
`default` against its `type`, `options` and `regex` with GitLab's messages (`` `name` input:
default value is not a number ``). Values given for the inputs are checked by `inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.ci.load.inputs import InputSpec, value_problems
from conveyor.ci.load.located import LMap, Loc, load_located
from conveyor.ci.load.schema import validate_part
from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.yamlpos import split_documents

_INPUT_KEYS = frozenset({"default", "description", "options", "regex", "type", "rules"})
_UNSUPPORTED = {
    "include": "spec:include (input definitions read from other files) is not supported",
}


@dataclass(frozen=True)
class Header:
    """A file's `spec:` header: its inputs in the order written, and the `component` fields
    (`name`, `sha`, `version`, `reference`) its `$[[ component.* ]]` blocks may use."""

    inputs: tuple[InputSpec, ...]
    component: tuple[str, ...]
    loc: Loc  # where `spec:` is written


@dataclass(frozen=True)
class CiDocument:
    header: Header | None
    content: Any  # the configuration: an LMap, unless the file is wrong


def read_document(text: str, file: str) -> CiDocument:
    """Parse one CI file. Raises SpecError(s) naming `file` and the line."""
    documents = split_documents(text)
    if len(documents) <= 1:
        content = load_located(text, file)
        if isinstance(content, LMap) and "spec" in content:
            raise SpecError(
                file,
                content.key_loc("spec").line,
                "spec",
                "a spec: header must be a YAML document of its own: end it with a line "
                "'---' and write the configuration after it",
            )
        return CiDocument(None, content)
    if len(documents) > 2:
        third = documents[2]
        raise SpecError(
            file,
            len(third) - len(third.lstrip("\n")) + 1,  # its padding keeps its line
            "",
            "more than two YAML documents: a file holds a spec: header, '---', and the "
            "configuration",
        )
    first = load_located(documents[0], file)
    if not (isinstance(first, LMap) and "spec" in first):
        return CiDocument(None, first)  # GitLab reads only the first document then
    return CiDocument(_header(first), load_located(documents[1], file))


def _header(doc: LMap) -> Header:
    errors = [
        SpecError(doc.key_loc(key).file, doc.key_loc(key).line, key, "unknown key in the header")
        for key in doc
        if key != "spec"
    ]
    spec = doc["spec"]
    if isinstance(spec, LMap):
        for key, message in _UNSUPPORTED.items():
            if key in spec:
                loc = spec.key_loc(key)
                errors.append(SpecError(loc.file, loc.line, f"spec.{key}", message))
        inputs = spec.get("inputs")
        if isinstance(inputs, LMap):
            for name, written, _ in inputs.located_items():
                for key in written if isinstance(written, LMap) else ():
                    if key not in _INPUT_KEYS:
                        at = written.key_loc(key)
                        errors.append(
                            SpecError(
                                at.file,
                                at.line,
                                f"spec.inputs.{name}.{key}",
                                "unknown key (an input takes default, description, options, "
                                "regex and type)",
                            )
                        )
                if isinstance(written, LMap) and "rules" in written:
                    at = written.key_loc("rules")
                    errors.append(
                        SpecError(
                            at.file,
                            at.line,
                            f"spec.inputs.{name}.rules",
                            "input rules (conditional options and defaults) are not supported",
                        )
                    )
            errors += _default_problems(inputs)
    _raise(errors)
    _raise(validate_part("spec", spec, ("spec",), doc))
    inputs = spec.get("inputs") or LMap(doc.loc)
    return Header(
        inputs=tuple(_input(name, inputs[name], inputs.key_loc(name)) for name in inputs),
        component=tuple(spec.get("component") or ()),
        loc=doc.key_loc("spec"),
    )


def _input(name: str, written: Any, loc: Loc) -> InputSpec:
    written = written if isinstance(written, dict) else {}
    options = written.get("options")
    return InputSpec(
        name=name,
        type=written.get("type") or "string",
        has_default="default" in written,
        default=written.get("default"),
        options=None if options is None else tuple(options),
        regex=written.get("regex"),
        loc=loc,
    )


def _default_problems(inputs: LMap) -> list[SpecError]:
    """GitLab checks each default like a given value, with "default" in its messages. Only
    well-formed specs are checked here; the schema reports the others."""
    errors = []
    for name, written, _ in inputs.located_items():
        if not isinstance(written, LMap) or "default" not in written:
            continue
        kind = written.get("type") or "string"
        options, regex = written.get("options"), written.get("regex")
        if kind not in ("string", "number", "boolean", "array") or not (
            options is None or isinstance(options, list)
        ):
            continue
        if regex is not None and not isinstance(regex, str):
            continue
        spec = InputSpec(name, kind, True, written["default"], _tuple(options), regex, Loc("", 0))
        loc = written.key_loc("default")
        errors += [
            SpecError(loc.file, loc.line, f"spec.inputs.{name}.default", message)
            for message in value_problems(spec, written["default"], default=True)
        ]
    return errors


def _tuple(options: Any) -> tuple[Any, ...] | None:
    return None if options is None else tuple(options)


def _raise(errors: list[SpecError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(sorted(errors, key=lambda e: (e.file, e.line or 0)))
