"""conveyor.host.command against real programs: results, and the one error for not running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conveyor.errors import CommandError, HostError
from conveyor.host.command import pipe, run
from conveyor.host.process import pid_alive, read_pid

PY = sys.executable


def test_a_failing_program_is_a_result_not_an_error() -> None:
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = run([PY, "-c", script], timeout=30)
    assert not result.ok
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.output == "out\nerr\n"
    assert result.argv == (PY, "-c", script)


def test_input_env_and_cwd_reach_the_program(tmp_path: Path) -> None:
    script = "import os, sys; print(sys.stdin.read().upper(), os.environ['WORD'], os.getcwd())"
    result = run([PY, "-c", script], timeout=30, input="hello", env={"WORD": "w"}, cwd=tmp_path)
    assert result.ok
    assert result.stdout.split() == ["HELLO", "w", str(tmp_path)]


def test_output_can_go_to_a_file_appended(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    log.write_text("before\n")
    script = "import sys; print('one'); print('two', file=sys.stderr)"
    result = run([PY, "-c", script], timeout=30, output_file=log)
    assert result.ok
    assert result.stdout == ""
    assert log.read_text().splitlines() == ["before", "one", "two"]


def test_a_missing_program_says_how_to_get_it() -> None:
    with pytest.raises(CommandError, match="no-such-program-x is not installed") as caught:
        run(["no-such-program-x", "--version"], timeout=30, install_hint="apt-get install x")
    assert caught.value.problem == "not found"
    assert "apt-get install x" in str(caught.value)
    assert isinstance(caught.value, HostError)


def test_a_file_that_is_not_executable_cannot_run(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(CommandError) as caught:
        run([str(script)], timeout=30)
    assert caught.value.problem == "not runnable"
    assert str(script) in str(caught.value)


def test_a_missing_working_directory_is_not_taken_for_a_missing_program(tmp_path: Path) -> None:
    with pytest.raises(CommandError) as caught:
        run([PY, "-c", "pass"], timeout=30, cwd=tmp_path / "gone")
    assert caught.value.problem == "not runnable"


def test_a_program_past_its_timeout_is_killed_and_reported(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = (
        "import os, pathlib, sys, time; "
        "pathlib.Path(sys.argv[1]).write_text(str(os.getpid())); time.sleep(600)"
    )
    with pytest.raises(CommandError, match=r"did not finish within 0\.5 s") as caught:
        run([PY, "-c", script, str(pid_file)], timeout=0.5)
    assert caught.value.problem == "timed out"
    pid = read_pid(pid_file)
    if pid is not None:  # it got as far as writing its PID before being killed
        assert not pid_alive(pid)


def test_pipe_feeds_the_producer_to_the_consumer() -> None:
    result = pipe(
        [PY, "-c", "print('a\\nb\\nc')"],
        [PY, "-c", "import sys; print(len(sys.stdin.read().split()))"],
        timeout=30,
    )
    assert result.ok
    assert result.stdout == "3\n"


def test_pipe_reports_a_failing_producer_with_its_stderr() -> None:
    result = pipe(
        [PY, "-c", "import sys; sys.exit('tar: cannot read')"],
        [PY, "-c", "import sys; sys.stdin.read()"],
        timeout=30,
    )
    assert result.returncode == 1
    assert "tar: cannot read" in result.stderr


def test_pipe_with_a_missing_consumer_is_a_command_error() -> None:
    with pytest.raises(CommandError) as caught:
        pipe([PY, "-c", "print(1)"], ["no-such-consumer-x"], timeout=30)
    assert caught.value.problem == "not found"
