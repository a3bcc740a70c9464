"""The `cli` fixture: the real `conveyor` command, in-process."""

from __future__ import annotations

import sys

import pytest

from conveyor.cli.main import main
from tests.integration.ci.cli_helpers import Cli


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    """`cli(*args)` runs `conveyor ARGS` as the console script does (its `main()`, with its
    error handling): (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["conveyor", *args])
        code: int | str | None = 0
        try:
            main()
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return (code if isinstance(code, int) else 1), out.out, out.err

    return run
