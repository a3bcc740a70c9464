"""Scripts as host processes: each in its own process group, output streamed as it comes, a
deadline, and a kill that takes the whole group (a script's background children go with it).

`pump` is the deadline-bound copy of an output stream, shared with anything else whose output
arrives in chunks (a job container's attached stream).
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

Output = Callable[[bytes], None]
READ_SIZE = 65536
KILLED_GRACE = 5.0  # seconds to wait for the end of the output once the deadline killed it


@dataclass(frozen=True)
class Finished:
    exit_code: int  # -1 when the deadline killed it
    timed_out: bool = False


class ScriptProcess:
    """A command started in a new session (its own process group), stdin closed, stderr merged
    into stdout."""

    def __init__(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self._proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The script's PID, which is also its process group's id."""
        return self._proc.pid

    def kill(self) -> None:
        """SIGKILL the whole process group; one that is gone already is fine. Safe to call
        from another thread."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)

    def stream(self, out: Output, timeout: float) -> Finished:
        """Copy the output to `out` until the process ends; past `timeout` seconds kill it."""
        stdout = self._proc.stdout
        assert isinstance(stdout, io.BufferedReader)  # stdout=PIPE, default buffering
        chunks = iter(lambda: stdout.read1(READ_SIZE), b"")
        timed_out = pump(chunks, out, timeout, self.kill)
        code = self._proc.wait()
        return Finished(exit_code=-1 if timed_out else code, timed_out=timed_out)


def pump(chunks: Iterable[bytes], out: Output, timeout: float, kill: Callable[[], None]) -> bool:
    """Copy `chunks` to `out` until they end; past `timeout` seconds call `kill` once and give
    the output `KILLED_GRACE` seconds more to end. True if the deadline was reached."""
    found: queue.Queue[bytes | None] = queue.Queue()

    def reader() -> None:
        for chunk in chunks:
            found.put(chunk)
        found.put(None)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        left = deadline - time.monotonic()
        try:
            chunk = found.get(timeout=max(0.05, left) if not killed else KILLED_GRACE)
        except queue.Empty:
            if killed:
                return True
            if time.monotonic() >= deadline:
                kill()
                killed = True
            continue
        if chunk is None:
            return killed
        out(chunk)
