"""Job scripts as process groups: streamed output, exit codes, the deadline and cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

from conveyor.host.shell import ScriptProcess, pump


def run(script: str, tmp_path: Path, timeout: float = 10.0) -> tuple[bytes, int, bool, float]:
    chunks: list[bytes] = []
    started = time.monotonic()
    process = ScriptProcess(["bash", "-c", script], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    done = process.stream(chunks.append, timeout)
    return b"".join(chunks), done.exit_code, done.timed_out, time.monotonic() - started


def test_output_and_exit_code(tmp_path: Path) -> None:
    out, code, timed_out, _ = run("pwd; echo err >&2; exit 4", tmp_path)
    assert out == f"{tmp_path}\nerr\n".encode()
    assert (code, timed_out) == (4, False)


def test_the_deadline_kills_the_whole_group(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    # A background child that would outlive its parent unless the group is killed.
    script = f"(sleep 2; touch {marker}) & echo started; sleep 30"
    out, code, timed_out, took = run(script, tmp_path, timeout=0.5)
    assert out == b"started\n"
    assert (code, timed_out) == (-1, True)
    assert took < 10
    time.sleep(2.5)
    assert not marker.exists()


def test_kill_from_another_thread_ends_the_script(tmp_path: Path) -> None:
    process = ScriptProcess(["sleep", "30"], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    threading.Timer(0.2, process.kill).start()
    done = process.stream(lambda _chunk: None, 10.0)
    assert (done.exit_code, done.timed_out) == (-9, False)


def test_pump_kills_once_at_the_deadline_and_waits_for_the_end() -> None:
    ended = threading.Event()
    killed: list[float] = []

    def output() -> Iterator[bytes]:
        yield b"working\n"
        ended.wait(5)  # the output ends only once it is killed

    got: list[bytes] = []
    assert pump(output(), got.append, 0.2, lambda: (killed.append(1.0), ended.set())) is True
    assert killed == [1.0]
    assert got == [b"working\n"]
