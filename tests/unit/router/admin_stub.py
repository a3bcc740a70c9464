"""A stand-in for an HAProxy admin socket, for the scripts that talk to one on a host
(router.remote_admin): a unix socket in a short directory (socket path limit), linked where
the script looks for it, answering each command with `answer(command)`."""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def admin_socket(link: Path, answer: Callable[[str], str]) -> Iterator[list[str]]:
    """Serve at `link` until the block ends; yields the commands received, in order."""
    short = Path(tempfile.mkdtemp(prefix="cvs-", dir="/tmp"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(short / "a.sock"))
    server.listen()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(short / "a.sock")
    got: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                command = conn.makefile().readline().strip()
                got.append(command)
                conn.sendall(answer(command).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.close()
        link.unlink(missing_ok=True)
        shutil.rmtree(short, ignore_errors=True)
