"""A minimal HTTP app for benchmarks: instant /health, / answers with its version."""

import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("APP_VERSION", "1").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes; without this, Nagle + delayed ACK add 40 ms
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"ok\n" if self.path == "/health" else VERSION + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


server = ThreadingHTTPServer(
    (os.environ.get("HOST", "127.0.0.1"), int(os.environ["PORT"])), Handler
)
server.daemon_threads = True
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
