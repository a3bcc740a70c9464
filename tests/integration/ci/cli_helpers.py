"""Helpers for tests that drive the `conveyor` command (see the `cli` fixture in conftest)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

Cli = Callable[..., tuple[int, str, str]]  # cli(*args) -> (exit code, stdout, stderr)


def git_repo(path: Path, files: dict[str, str], message: str = "x") -> Path:
    """A git repository on `main` with `files` in one commit."""
    path.mkdir(parents=True)
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", message], check=True)
    return path


def table_rows(table: str) -> list[list[str]]:
    """The cells of each row of a Rich table, stripped."""
    return [
        [c.strip() for c in line.strip().strip("│").split("│")]
        for line in table.splitlines()
        if line.startswith("│")
    ]
