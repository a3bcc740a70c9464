"""`conveyor` imports a command's module only when that command runs: `--help`, `--version`
and shell completion stay fast, and every lazily registered command still resolves."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import LAZY, ORDER, app

runner = CliRunner()


def test_starting_the_cli_imports_no_use_case_module() -> None:
    probe = (
        "import sys; import conveyor.cli.main; "
        "print(' '.join(m for m in sys.modules if m.startswith(('conveyor.app.', "
        "'conveyor.deploy', 'conveyor.ci', 'conveyor.observe', 'conveyor.runtime'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # constants only (the server's address variables), nothing that loads the engine
    assert done.stdout.split() == ["conveyor.app.server_address"]


@pytest.mark.parametrize("name", sorted(LAZY))
def test_every_lazy_command_resolves_to_its_real_help(name: str) -> None:
    result = runner.invoke(app, [name, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"Usage: conveyor {name}" in result.output
    # the real command's options or subcommands, not the placeholder's (only --help)
    assert result.output.count("--") > 1 or "─ Commands ─" in result.output
    # completion is the root command's business, as before commands were lazy
    assert "--install-completion" not in result.output


def test_the_help_lists_every_command_once_under_its_heading() -> None:
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in ORDER:
        assert f" {name} " in result.output
    assert "Run on this machine" in result.output
    assert "Deliver through a server" in result.output


def test_a_mistyped_lazy_command_gets_a_suggestion() -> None:
    result = runner.invoke(app, ["promot"], terminal_width=200)
    assert result.exit_code == 2
    assert "Did you mean 'promote'" in result.output
