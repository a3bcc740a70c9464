"""Which program checks a rendered file, as a value a pure renderer can hold. Pure: no I/O.

`conveyor.host.validate` runs it; the renderer only says how (`HAProxy: haproxy -c -f {file}`),
so the pairing of each renderer with its validator lives next to the renderer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FILE = "{file}"


@dataclass(frozen=True)
class Validator:
    """An external checker of one rendered file.

    `argv` holds `{file}` where the file's path goes (`("promtool", "check", "config",
    "{file}")`). `message_pattern` picks the lines of its output that explain a rejection (a
    group named `message`, when present, is the part kept); without it, or when no line
    matches, the whole output is the message. `install_hint` says how to get the program."""

    name: str
    argv: tuple[str, ...]
    message_pattern: str | None = None
    install_hint: str = "install it, or put it on PATH"

    def __post_init__(self) -> None:
        if FILE not in self.argv:
            raise ValueError(f"validator {self.name}: argv {self.argv} has no {FILE}")

    def command(self, file: Path | str, program: str | None = None) -> tuple[str, ...]:
        """The argv that checks `file`; `program` replaces argv[0] (another binary)."""
        argv = tuple(str(file) if arg == FILE else arg for arg in self.argv)
        return (program, *argv[1:]) if program else argv

    def messages(self, output: str) -> tuple[str, ...]:
        """What the validator says is wrong, one line each."""
        if self.message_pattern is not None:
            pattern = re.compile(self.message_pattern)
            found = []
            for line in output.splitlines():
                match = pattern.search(line)
                if match:
                    found.append(match["message"] if "message" in pattern.groupindex else line)
            if found:
                return tuple(found)
        text = output.strip()
        return (text,) if text else ()
