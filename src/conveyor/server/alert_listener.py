"""The agent's Alertmanager receiver: `POST /hooks/alertmanager` on 127.0.0.1, for a project
brought up with `conveyor up` alone (under `conveyor server` the same route is part of the
server's API). A small threaded HTTP server; what it does with a delivery is
`app.alerts.AlertReceiver`'s (bearer token, payload, events)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conveyor.app.alerts import HOOK_PATH, MAX_BODY, AlertReceiver
from conveyor.errors import HookRejected


class AlertListener:
    def __init__(self, receiver: AlertReceiver, port: int, host: str = "127.0.0.1") -> None:
        """Binds at once: raises OSError when the port is taken."""
        self.receiver = receiver
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="alert-listener", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{HOOK_PATH}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self.receiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != HOOK_PATH:
                    self._answer(404, {"detail": f"POST {HOOK_PATH} only"})
                    return
                length = self.headers.get("Content-Length", "")
                if not length.isdigit():
                    self._answer(411, {"detail": "a Content-Length is needed"})
                    return
                if int(length) > MAX_BODY:
                    self._answer(413, {"detail": f"the body is larger than {MAX_BODY} bytes"})
                    return
                body = self.rfile.read(int(length))
                try:
                    received = receiver.receive(self.headers.get("Authorization"), body)
                except HookRejected as e:
                    self._answer(e.status, {"detail": e.reason})
                    return
                self._answer(200, {"alerts": received.alerts, "told": received.told})

            def _answer(self, status: int, doc: dict[str, object]) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: each delivery is an event on the timeline already."""

        return Handler
