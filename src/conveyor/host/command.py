"""Running a program to completion on this host: argument lists, never a shell.

`run` returns how the program ended (`CommandResult`) whatever its exit code; only not being able
to run it at all (not installed, not executable) or it not finishing in time raises, as one
`CommandError` whose `problem` says which. `pipe` does the same for `producer | consumer`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import CommandError, ConveyorError, HostError


def tool_path(name: str, *, venv_first: bool = False) -> str | None:
    """Where a program is: on PATH, or beside this Python (a tool pip installed into Conveyor's
    virtualenv, whose bin directory a caller need not have on PATH); `venv_first` looks beside
    this Python first (a tool Conveyor pins as a dependency: sops, ansible-core). None when
    neither has it."""
    beside = Path(sys.executable).parent / name
    venv = str(beside) if os.access(beside, os.X_OK) and beside.is_file() else None
    if venv_first and venv is not None:
        return venv
    return shutil.which(name) or venv


DEFAULT_INSTALL_HINT = "install it, or put it on PATH"


@dataclass(frozen=True)
class CommandResult:
    """How a program ended: its exit code and what it wrote (empty when written to a file)."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    argv: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout then stderr, as a terminal would mostly show them."""
        return self.stdout + self.stderr


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    output_file: Path | None = None,
    install_hint: str = DEFAULT_INSTALL_HINT,
    stdin_file: Path | None = None,
) -> CommandResult:
    """Run `argv` to completion and return how it ended.

    `env` is added to this process's environment. `input` is written to its stdin (otherwise
    `stdin_file`'s bytes are, or stdin is /dev/null). With `output_file`, stdout and stderr go
    to that file (appended) instead of being captured: a program that leaves a daemon behind
    may keep a pipe open for ever.
    Raises CommandError when the program cannot run or does not finish within `timeout`
    seconds (it is killed then); `install_hint` says how to get a missing program."""
    args = tuple(argv)
    full_env = {**os.environ, **env} if env else None
    try:
        if stdin_file is not None:
            with stdin_file.open("rb") as source:
                fed = subprocess.run(
                    args,
                    stdin=source,
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                    cwd=cwd,
                    env=full_env,
                )
            said = [b.decode(errors="replace") for b in (fed.stdout, fed.stderr)]
            return CommandResult(fed.returncode, said[0], said[1], args)
        if output_file is None:
            done = subprocess.run(
                args,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd=cwd,
                env=full_env,
            )
            return CommandResult(done.returncode, done.stdout, done.stderr, args)
        with output_file.open("ab") as out:
            done_bytes = subprocess.run(
                args,
                input=input.encode() if input is not None else None,
                stdin=None if input is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                cwd=cwd,
                env=full_env,
            )
        return CommandResult(done_bytes.returncode, argv=args)
    except subprocess.TimeoutExpired as e:
        raise timed_out(args, timeout) from e
    except OSError as e:
        raise cannot_run(args, e, install_hint) from e


def pipe(
    producer: Sequence[str],
    consumer: Sequence[str],
    *,
    timeout: float,
    install_hint: str = DEFAULT_INSTALL_HINT,
) -> CommandResult:
    """Run `producer | consumer` (binary-safe) and return the consumer's result, or the
    producer's when it failed (its stderr prefixed with its command line). Raises CommandError
    like `run`; both are killed on a timeout."""
    first_args, second_args = tuple(producer), tuple(consumer)
    with tempfile.TemporaryFile() as producer_err:
        try:
            first = subprocess.Popen(
                first_args, stdout=subprocess.PIPE, stderr=producer_err, stdin=subprocess.DEVNULL
            )
        except OSError as e:
            raise cannot_run(first_args, e, install_hint) from e
        try:
            second = subprocess.Popen(
                second_args,
                stdin=first.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as e:
            first.kill()
            first.wait()
            raise cannot_run(second_args, e, install_hint) from e
        if first.stdout is not None:
            first.stdout.close()  # only the consumer reads now: if it dies, the producer gets EPIPE
        try:
            out, err = second.communicate(timeout=timeout)
            first.wait(timeout=30)
        except subprocess.TimeoutExpired as e:
            for proc in (first, second):
                proc.kill()
                proc.wait()
            raise timed_out(second_args, timeout) from e
        if first.returncode != 0:
            producer_err.seek(0)
            message = producer_err.read().decode(errors="replace")
            return CommandResult(
                first.returncode, stderr=f"{shlex.join(first_args)}: {message}", argv=first_args
            )
        return CommandResult(second.returncode, out, err, second_args)


def cannot_run(
    argv: tuple[str, ...], error: OSError, install_hint: str = DEFAULT_INSTALL_HINT
) -> CommandError:
    """The CommandError for a program the OS refused to start."""
    if isinstance(error, FileNotFoundError) and error.filename in (argv[0], None):
        return not_found(argv, install_hint)
    return CommandError(
        argv,
        "not runnable",
        f"cannot run {argv[0]}: {error.strerror or error}; check that it is an executable "
        "program and that the working directory exists",
    )


def not_found(argv: tuple[str, ...], install_hint: str = DEFAULT_INSTALL_HINT) -> CommandError:
    return CommandError(
        argv, "not found", f"{argv[0]} is not installed (not found on PATH): {install_hint}"
    )


def timed_out(argv: tuple[str, ...], timeout: float) -> CommandError:
    return CommandError(
        argv,
        "timed out",
        f"{shlex.join(argv)} did not finish within {timeout:g} s and was stopped; "
        "run it by hand to see where it hangs",
    )


@contextmanager
def host_errors_as(error: type[ConveyorError]) -> Iterator[None]:
    """Re-raise the HostErrors of the block as `error`, the calling adapter's own class, with
    the same message (a caller of the router catches RouterError, whatever HAProxy did)."""
    try:
        yield
    except HostError as e:
        raise error(str(e)) from e
