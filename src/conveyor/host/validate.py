"""Running a rendered file's validator (`haproxy -c`, `promtool check config`, `amtool
check-config`, `nagios4 -v`, `cfn-lint`, `kubectl kustomize`…) and reading its verdict.

`check` returns the verdict whatever it is; `validate` raises ValidationFailed on a rejection.
Both raise CommandError when the validator cannot run at all (not installed, timed out).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ValidationFailed
from conveyor.host.command import run, tool_path
from conveyor.render.validator import Validator


@dataclass(frozen=True)
class Validation:
    """A validator's verdict on one file: its exit code, its explaining lines, its output."""

    validator: str
    file: Path
    returncode: int
    messages: tuple[str, ...]
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def check(
    validator: Validator,
    file: Path,
    *,
    program: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Validation:
    """Run `validator` on `file` (with `program` instead of its own binary, when given)."""
    if program is None:  # on PATH or in Conveyor's virtualenv (None: `run` says it is missing)
        program = tool_path(validator.argv[0])
    result = run(
        validator.command(file, program),
        timeout=timeout,
        cwd=cwd,
        env=env,
        install_hint=validator.install_hint,
    )
    output = result.output
    messages = () if result.ok else validator.messages(output)
    return Validation(validator.name, file, result.returncode, messages, output)


def validate(
    validator: Validator,
    file: Path,
    *,
    program: str | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Validation:
    """`check`, raising ValidationFailed (with the validator's messages) on a rejection."""
    verdict = check(validator, file, program=program, timeout=timeout, cwd=cwd, env=env)
    if not verdict.ok:
        said = "\n".join(verdict.messages) or f"exit code {verdict.returncode}, no output"
        raise ValidationFailed(
            f"{verdict.validator} rejected {file} (the file is kept, so the line numbers it "
            f"cites can be read):\n{said}",
            verdict.messages,
        )
    return verdict
