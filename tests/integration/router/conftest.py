"""Fixtures for the HAProxy router tests: a short run directory, the router (stopped at the end,
and killed by the PID in its pid file as a safety net) and Python HTTP backends started as
subprocesses, recorded and stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from conveyor.router.haproxy import HAProxyRouter
from conveyor.testing.net import free_port

# A replica: answers its name; /health is 200; /slow waits until the release file exists.
# Keep-alive as argv[4] says: "close" answers HTTP/1.0 and closes; "keep" keeps connections
# open; "drop" keeps a connection open after its first answer but closes it, unanswered, when
# the next request comes on it (as a server whose keep-alive timeout ends just then).
BACKEND = r"""
import os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

name, port, release, keepalive = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

class Handler(BaseHTTPRequestHandler):
    # The whole response in one write: a replica killed between a headers write and a body
    # write leaves a response half sent, which no proxy can retry (the tests kill replicas).
    wbufsize = -1
    if keepalive != "close":
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

    served = 0

    def handle_one_request(self):
        if keepalive == "drop" and self.served:
            self.rfile.readline(65537)  # a request on a kept connection...
            self.close_connection = True  # ...is left unanswered: the connection closes
            return
        self.served += 1
        super().handle_one_request()

    def do_GET(self):
        if self.path == "/slow":
            deadline = time.monotonic() + 60
            while not os.path.exists(release) and time.monotonic() < deadline:
                time.sleep(0.02)
        body = name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@dataclass
class Backend:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL: the replica dies without closing anything, like a crash."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short on purpose: HAProxy refuses unix socket paths over 97 bytes.
    path = Path(tempfile.mkdtemp(prefix="cvr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def release_file(run_dir: Path) -> Path:
    """Creating this file lets the backends' /slow requests answer."""
    return run_dir / "release"


@pytest.fixture
def router(run_dir: Path) -> Iterator[HAProxyRouter]:
    router = HAProxyRouter(run_dir, timeout=15.0)
    yield router
    router.stop()
    # Safety net: stop() removes the pid file; if it is still there, stop() did not finish.
    pid_file = run_dir / "haproxy.pid"
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().split()[0])
        # Only our HAProxy: its command line names the config in this run directory.
        if str(run_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGKILL)


KeepAlive = Literal["close", "keep", "drop"]


@pytest.fixture
def start_backend(release_file: Path) -> Iterator[Callable[..., Backend]]:
    """start(name, keepalive="close") -> a running replica (see BACKEND)."""
    started: list[Backend] = []

    def start(name: str, keepalive: KeepAlive = "close") -> Backend:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", BACKEND, name, str(port), str(release_file), keepalive],
            stdin=subprocess.DEVNULL,
        )
        backend = Backend(name, port, process)
        started.append(backend)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return backend
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"backend {name} did not listen on {port}") from None
                time.sleep(0.05)

    yield start
    release_file.touch()  # lets any /slow request still waiting finish
    for backend in started:
        backend.kill()


@pytest.fixture
def new_port() -> Callable[[], int]:
    """tests/conftest.py's free_port, for frontend ports."""
    return free_port
