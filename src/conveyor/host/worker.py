"""A Python module run as a child process, asked questions over a socket pair of byte messages:
for CPU work that should not share this process's interpreter lock (the log collector's
parsing).

    worker = WorkerProcess("conveyor.observe.logs.parse_worker", "conveyor-logs-parse")
    worker.start()                     # python -m <module> <fd>; it answers on fd
    answer = worker.request(b"...")    # WorkerLost when the child died (it is not restarted)
    worker.send(b"..."); worker.receive()   # the same in two halves, from two threads
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

_BUFFER = 4 * 1024 * 1024  # bytes of socket buffer asked for each way


class WorkerLost(ConveyorError):
    """The worker process ended (killed, crashed) before it answered."""


class WorkerProcess:
    """One child process running `module`, answering each message in order. `request` is one
    message out, one back; `send` and `receive` let one thread send while another receives
    (the child's answers then wait in the socket, not the child)."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._socket: socket.socket | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):
            # Room for a few batches each way (the default is about 200 KiB, one batch of
            # log frames), so a sender queues its next request instead of waiting for the
            # child to finish the one before; the kernel caps it at net.core.wmem_max.
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _BUFFER)
                end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
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
        # The connection on a descriptor of its own; the socket kept to shut it down (that
        # wakes a thread blocked receiving on it, which a close does not).
        self._process, self._socket = process, ours
        self._conn = Connection(os.dup(ours.fileno()))

    def request(self, message: bytes) -> bytes:
        self.send(message)
        return self.receive()

    def send(self, message: bytes) -> None:
        conn = self._conn
        if conn is None:
            raise WorkerLost(f"the {self.name} process is not running")
        try:
            conn.send_bytes(message)
        except OSError as e:
            raise WorkerLost(f"the {self.name} process ended ({e})") from e

    def receive(self) -> bytes:
        conn = self._conn
        if conn is None:
            raise WorkerLost(f"the {self.name} process is not running")
        try:
            return conn.recv_bytes()
        except (EOFError, OSError) as e:
            code = self._reap()
            raise WorkerLost(f"the {self.name} process ended ({code or e})") from e

    def stop(self, timeout: float = 5.0) -> None:
        """Close the socket (the child ends at its EOF); kill it, by its PID, if it does not."""
        process, self._process = self._process, None  # before the close: the receiving
        self._close()  # thread may reap it meanwhile, and this waits for it all the same
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def _reap(self) -> str:
        """The ended child's exit, said in words; the socket closed."""
        self._close()
        process = self._process
        if process is None:
            return ""
        try:
            code = process.wait(1.0)
        except subprocess.TimeoutExpired:
            process.kill()  # it broke the socket but lives on: it is of no use any more
            process.wait(1.0)
            return "its socket broke"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def _close(self) -> None:
        # Taken first: the receiving thread may close at the same time as `stop`.
        sock, self._socket = self._socket, None
        conn, self._conn = self._conn, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.close()


def serve_fd(argv: list[str], serve: Callable[[Connection], None]) -> None:
    """The child's side: `serve` the connection on the descriptor `python -m` was given."""
    conn = Connection(int(argv[1]))
    with contextlib.closing(conn):
        serve(conn)
