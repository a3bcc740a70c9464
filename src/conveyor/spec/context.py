"""What the model builder and the semantic checks share: the document, where it lives, and
the list of problems found so far (reported together at the end, sorted by line)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from conveyor.errors import SpecError, SpecErrors
from conveyor.spec.yamlpos import Document, SpecWarning, YamlPath, dotted

T = TypeVar("T")


@dataclass
class Context:
    doc: Document
    file: str  # the compose file as the caller named it: that is how messages show it
    base: Path  # absolute directory of the compose file; relative paths start here
    environ: Mapping[str, str]  # process environment over .env: fills value-less variables
    errors: list[SpecError] = field(default_factory=list)
    # Services left out because none of their profiles is active: name -> its profiles.
    disabled: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # What is accepted but not done as the file says: `conveyor plan` lists them.
    warnings: list[SpecWarning] = field(default_factory=list)

    def warn(self, path: YamlPath, message: str) -> None:
        file, line = self.where(path)
        self.warnings.append(SpecWarning(file, line, dotted(path), message))

    def error(self, path: YamlPath, message: str, about: YamlPath | None = None) -> None:
        """Record a problem at the line of `path`; `about` names the field when it differs."""
        name = dotted(path if about is None else about)
        file, line = self.where(path)
        self.errors.append(SpecError(file, line, name, message))

    def where(self, path: YamlPath) -> tuple[str, int]:
        """The file (several may be merged) and line `path` was written at."""
        file, line = self.doc.where(path)
        return file or self.file, line

    def convert(self, path: YamlPath, convert: Callable[[Any], T], value: Any, default: T) -> T:
        """`convert(value)`, or `default` after recording the ValueError's message."""
        try:
            return convert(value)
        except ValueError as exc:
            self.error(path, str(exc))
            return default

    def optional(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: YamlPath,
        convert: Callable[[Any], T],
        default: T,
    ) -> T:
        """`raw[key]` converted, or `default` when the key is absent or empty."""
        value = raw.get(key)
        if value is None:
            return default
        return self.convert((*path, key), convert, value, default)

    def resolve(self, written: str) -> Path:
        """A host path from the file, absolute (relative ones start at the compose file;
        `~` is the HOME of the environment the files are read with)."""
        home = self.environ.get("HOME")
        if home and (written == "~" or written.startswith("~/")):
            written = home + written[1:]
        return Path(os.path.normpath(self.base / os.path.expanduser(written)))

    def shown(self, written: str) -> str:
        return shown(self.file, written)


def shown(compose_file: str, written: str) -> str:
    """A file the compose file refers to, as messages show it: next to the compose file as
    the caller named it, so messages stay short and do not depend on the machine."""
    if os.path.isabs(written) or written.startswith("~"):
        return written
    return os.path.normpath(os.path.join(os.path.dirname(compose_file), written))


def raise_errors(errors: list[SpecError]) -> None:
    """Raise nothing, the one error, or all of them sorted by line (one per line written)."""
    errors = collapse(errors)
    if not errors:
        return
    if len(errors) == 1:
        raise errors[0]
    ordered = sorted(errors, key=lambda e: (e.line or 0, e.field, e.message))
    raise SpecErrors(ordered)


_Problem = TypeVar("_Problem", SpecError, SpecWarning)


def collapse(problems: list[_Problem]) -> list[_Problem]:
    """One problem per place it is written: a value in a YAML anchor (or a `<<` merge) that
    several services use is one thing to fix, so it is one line naming them all."""
    groups: dict[tuple[str, int | None, str], list[_Problem]] = {}
    for problem in problems:
        groups.setdefault((problem.file, problem.line, problem.message), []).append(problem)
    out: list[_Problem] = []
    for group in groups.values():
        fields = list(dict.fromkeys(p.field for p in group))
        first = group[0]
        if len(fields) == 1:
            out.append(first)
            continue
        others = fields[1:]
        also = ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else others[0]
        message = f"{first.message} (also {also}, written on this line)"
        out.append(type(first)(first.file, first.line, first.field, message))
    return out
