"""A Python function run in a child process, asked questions over a pipe of byte messages: for
CPU work that should not share this process's interpreter lock (the log collector's parsing).

    worker = WorkerProcess(serve, "conveyor-logs-parse")   # serve(conn) answers each message
    worker.start()
    answer = worker.request(b"...")    # WorkerLost when the child died (it is not restarted)
    worker.stop()

The child is forked from multiprocessing's fork server, not from this process: this process
runs threads and holds files (the log store, its lock file, engine connections) that a plain
fork would copy into the child half-locked or keep open after this process is gone. The child
ends when its pipe closes (this process stopped it, or died).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
from collections.abc import Callable

from conveyor.errors import ConveyorError

Serve = Callable[[multiprocessing.connection.Connection], None]

_CONTEXT = multiprocessing.get_context("forkserver")


class WorkerLost(ConveyorError):
    """The worker process ended (killed, crashed) before it answered."""


class WorkerProcess:
    """One child process running `serve(conn)`; `request` is one message out, one back (the
    caller serializes requests)."""

    def __init__(self, serve: Serve, name: str) -> None:
        self.serve = serve
        self.name = name
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: multiprocessing.connection.Connection | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> None:
        """Start the child (the first start also starts the fork server: about a second)."""
        ours, theirs = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(target=self.serve, args=(theirs,), name=self.name, daemon=True)
        try:
            process.start()
        except OSError as e:
            ours.close()
            theirs.close()
            raise ConveyorError(f"cannot start the {self.name} process: {e}") from e
        theirs.close()  # the child's end: only the child holds it, so its death reads as EOF
        self._process, self._conn = process, ours

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
        """Close the pipe (the child ends at its EOF); kill it, by its PID, if it does not."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process = self._process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join(timeout)
        self._process = None

    def _reap(self) -> str:
        """The ended child's exit, said in words; the pipe closed."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process = self._process
        if process is None:
            return ""
        process.join(1.0)
        code = process.exitcode
        if code is None:
            process.kill()  # it broke the pipe but lives on: it is of no use any more
            process.join(1.0)
            return "its pipe broke"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"
