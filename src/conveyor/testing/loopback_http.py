"""A small HTTP server on 127.0.0.1 for the fakes of servers that cannot run here (the log
shipping destinations): it can be stopped and started again on the same port, which is how a
test makes a destination go down and come back.

The fake gives a `handle(method, path, headers, body) -> Reply` function; a Reply with
`status=None` closes the connection without an answer (the request was processed, its answer
lost: what a proxy timeout or a crash after the write looks like to a client).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    status: int | None  # None: close the connection without answering
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


Handle = Callable[[str, str, dict[str, str], bytes], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # come back on the same port right after a stop


class LoopbackHttp:
    def __init__(self, handle: Handle, name: str) -> None:
        self._handle = handle
        self._name = name
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (on the port of the last start, if there was one)."""
        if self._server is not None:
            return
        server = _Server(("127.0.0.1", self.port), _handler(self._handle))
        self.port = int(server.server_address[1])
        self._server = server
        # A short poll interval: stop() returns within it.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until the next start."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None


def _handler(handle: Handle) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients of these servers expect

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = handle(method, self.path, headers, body)
            if reply.status is None:
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.body:
                self.wfile.write(reply.body)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def log_message(self, format: str, *args: Any) -> None:  # quiet under pytest
            return

    return Handler
