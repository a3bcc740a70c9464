"""Where the CLI writes: results on stdout (`console`), progress and errors on stderr (`err`),
and machine-readable JSON, never wrapped or coloured by Rich.

Rich reads `[...]` as markup: every string that comes from a user, a file, a job or an error
(job names like `build: [x, y]`, paths, log lines, messages) goes through `esc` inside markup,
or is printed as a `Text`, which is never parsed."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

# Piped output keeps whole lines: Rich would otherwise wrap at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def esc(value: object) -> str:
    """`value` as text to put inside Rich markup: its brackets stay brackets."""
    return escape(str(value))


def text_of(e: BaseException) -> str:
    """An exception's message; one whose `__str__` fails still gets a description."""
    try:
        return str(e)
    except Exception:  # a broken __str__ must not hide the error being reported
        return f"<{type(e).__name__} whose message cannot be shown>"


def print_error(label: str, message: str, hint: str = "") -> None:
    """`label message` on stderr: the label in bold red, the message (and the dimmed `hint`
    line) as plain text, never markup. Must not fail, as the last thing the CLI does: when
    Rich cannot print, the same words go to stderr unstyled, and when even that fails there
    is nowhere left to say anything."""
    try:
        line = Text.assemble((label, "bold red"), " ", message) if message else Text(label)
        if not message:
            line.stylize("bold red")
        err.print(line, highlight=False, soft_wrap=True)
        if hint:
            err.print(Text(hint, style="dim"), highlight=False, soft_wrap=True)
    except Exception:
        with contextlib.suppress(Exception):
            sys.stderr.write(" ".join(filter(None, (label, message))) + "\n")
            if hint:
                sys.stderr.write(hint + "\n")
            sys.stderr.flush()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
