"""Where the CLI writes: results on stdout (`console`), progress and errors on stderr (`err`),
and machine-readable JSON, never wrapped or coloured by Rich."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from conveyor.errors import ConveyorError

# Piped output keeps whole lines: Rich would otherwise wrap at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def fail(e: ConveyorError) -> typer.Exit:
    """Print a Conveyor error as one line (no traceback); the caller exits with the result."""
    err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()
