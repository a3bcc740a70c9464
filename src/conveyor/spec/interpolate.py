"""Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}`, and `$$` for a literal `$`.

As in Compose, only values are interpolated (never keys), defaults may nest (`${A:-${B}}`),
an unset variable without a default becomes the empty string, and a `$` that starts none of
the forms above is an error rather than being passed through silently.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.yamlpos import Document, YamlPath, dotted

Lookup = Callable[[str], str | None]

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")
# Operators after a braced name; two-character ones first so ":-" wins over "-".
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")


class InterpolationError(ValueError):
    """A malformed `${...}` or a required variable that is unset."""


def substitute(text: str, lookup: Lookup) -> str:
    """Interpolate one string. Raises InterpolationError with a one-line message."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        dollar = text.find("$", pos)
        if dollar < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:dollar])
        nxt = text[dollar + 1 : dollar + 2]
        if nxt == "$":
            out.append("$")
            pos = dollar + 2
        elif nxt == "{":
            value, pos = _braced(text, dollar + 2, lookup)
            out.append(value)
        else:
            match = _NAME.match(text, dollar + 1)
            if match is None:
                raise InterpolationError(
                    f"invalid interpolation format in {text!r} (write '$$' for a literal '$')"
                )
            out.append(lookup(match.group()) or "")
            pos = match.end()
    return "".join(out)


def _braced(text: str, start: int, lookup: Lookup) -> tuple[str, int]:
    """Evaluate `${...}` whose name starts at `start`; return the value and the end index."""
    end = _closing_brace(text, start)
    match = _NAME.match(text, start)
    if match is None:
        raise InterpolationError(f"invalid interpolation format in {text!r}")
    name = match.group()
    rest = text[match.end() : end]
    value = lookup(name)
    if not rest:
        return value or "", end + 1
    operator = next((op for op in _OPERATORS if rest.startswith(op)), None)
    if operator is None:
        raise InterpolationError(f"invalid interpolation format in {text!r}")
    word = rest[len(operator) :]
    # The colon forms treat an empty value like an unset one, as in POSIX shells.
    missing = value is None or (operator.startswith(":") and value == "")
    kind = operator[-1]
    if kind == "-":
        result = substitute(word, lookup) if missing else value or ""
    elif kind == "+":
        result = "" if missing else substitute(word, lookup)
    else:  # "?"
        if missing:
            reason = substitute(word, lookup)
            detail = f": {reason}" if reason else ""
            raise InterpolationError(f"required variable {name} is missing a value{detail}")
        result = value or ""
    return result, end + 1


def _closing_brace(text: str, start: int) -> int:
    depth = 0
    pos = start
    while pos < len(text):
        if text.startswith("$$", pos):
            pos += 2
            continue
        if text.startswith("${", pos):
            depth += 1
            pos += 2
            continue
        if text[pos] == "}":
            if depth == 0:
                return pos
            depth -= 1
        pos += 1
    raise InterpolationError(f"unclosed '${{' in {text!r}")


def interpolate(doc: Document, environ: Mapping[str, str], file: str) -> Document:
    """Interpolate every string value of `doc`; all failures are reported together."""
    errors: list[SpecError] = []

    def walk(value: Any, path: YamlPath) -> Any:
        if isinstance(value, dict):
            return {key: walk(item, (*path, key)) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "$" in value:
            try:
                return substitute(value, environ.get)
            except InterpolationError as exc:
                errors.append(SpecError(file, doc.line(path), dotted(path), str(exc)))
        return value

    data = walk(doc.data, ())
    errors = _once(errors)
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise SpecErrors(errors)
    return dataclasses.replace(doc, data=data)


def _once(errors: list[SpecError]) -> list[SpecError]:
    """A variable missing everywhere it is used is one thing to set: report it at its first
    use, naming the other lines."""
    by_message: dict[str, list[SpecError]] = {}
    for error in errors:
        by_message.setdefault(error.message, []).append(error)
    out: list[SpecError] = []
    for same in by_message.values():
        first = same[0]
        lines = sorted({e.line for e in same[1:] if e.line is not None and e.line != first.line})
        if not lines:
            out.append(first)
            continue
        listed = ", ".join(map(str, lines))
        also = f"also used on line{'s' if len(lines) > 1 else ''} {listed}"
        out.append(SpecError(first.file, first.line, first.field, f"{first.message} ({also})"))
    return out
