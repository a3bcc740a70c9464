"""A Python module run as a child process, asked questions over a socket pair of byte messages:
for CPU work that should not share this process's interpreter lock (the log collector's
parsing).

    worker = WorkerProcess("conveyor.observe.logs.parse_worker", "conveyor-logs-parse")
    worker.start()                     # python -m <module> <fd>; it answers on fd
    answer = worker.request(b"...")    # WorkerLost when the child died (it is not restarted)
    worker.stop()

The child is a fresh interpreter (`python -m`), not a fork of this process: this process runs
threads and holds files (the log store, its lock file, engine connections) that a fork would
copy into the child half-locked or keep open after this process is gone; multiprocessing's
fork server and spawn would run this process's main script again in the child. The module's
`__main__` block calls `serve_fd`. The child ends at the end of its socket (this process
stopped it, or died).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection

from conveyor.errors import ConveyorError


class WorkerLost(ConveyorError):
    """The worker process ended (killed, crashed) before it answered."""


class WorkerProcess:
    """One child process running `module`; `request` is one message out, one back (the caller
    serializes requests)."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        # The child imports what this process imports, from where this process found it.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", self.module, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        except OSError as e:
            ours.close()
            raise ConveyorError(f"cannot start the {self.name} process: {e}") from e
        finally:
            theirs.close()  # only the child holds its end, so its death reads as EOF here
        self._process, self._conn = process, Connection(ours.detach())

    def request(self, message: bytes) -> bytes:
        conn = self._conn
        if conn is None:
            raise WorkerLost(f"the {self.name} process is not running")
        try:
            conn.send_bytes(message)
            return conn.recv_bytes()
        except (EOFError, OSError) as e:
            code = self._reap()
            raise WorkerLost(f"the {self.name} process ended ({code or e})") from e

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket (the child ends at its EOF); kill it, by its PID, if it does not."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def _reap(self) -> str:
        """The ended child's exit, said in words; the socket closed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process, self._process = self._process, None
        if process is None:
            return ""
        try:
            code = process.wait(1.0)
        except subprocess.TimeoutExpired:
            process.kill()  # it broke the socket but lives on: it is of no use any more
            process.wait(1.0)
            return "its socket broke"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


def serve_fd(argv: list[str], serve: Callable[[Connection], None]) -> None:
    """The child's side: `serve` the connection on the descriptor `python -m` was given."""
    conn = Connection(int(argv[1]))
    with contextlib.closing(conn):
        serve(conn)
