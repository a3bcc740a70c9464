"""Real servers on loopback for the notification senders: an HTTP receiver for webhooks, an
SMTP server (aiosmtpd, in process; with STARTTLS and a login when asked) and the fake GitLab
API. Each runs in this process's threads and is stopped when its test ends."""

from __future__ import annotations

import json
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from conveyor.testing.fake_gitlab import FakeGitLab, serve
from conveyor.testing.net import free_port

SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Receiver:
    """Records each POST; answers the next status of `answers` (then 200)."""

    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = rec.answers.pop(0) if rec.answers else 200
            rec.posts.append(
                {"path": self.path, "json": json.loads(body), "type": self.headers["Content-Type"]}
            )
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            if code == 200:
                rec.received.set()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/services/T000/B000/s3cr3t"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join()


@dataclass
class Mailbox:
    """What the SMTP server accepted; `reply` replaces its answer to DATA (e.g. a 4xx)."""

    port: int
    messages: list[Envelope] = field(default_factory=list)
    reply: str | None = None
    received: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.reply is not None:
            return self.reply
        self.messages.append(envelope)
        self.received.set()
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (openssl)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return Certificate(cert, key)


USER, PASSWORD = "conveyor", "mail-secret"


@pytest.fixture
def smtp_tls(certificate: Certificate) -> Iterator[Mailbox]:
    """STARTTLS required, and a login (only over TLS) with USER and PASSWORD."""
    box = Mailbox(port=free_port())
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certificate.cert, certificate.key)

    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield box
    controller.stop()


TOKEN = "glpat-test-token"


@pytest.fixture
def gitlab_api() -> Iterator[FakeGitLab]:
    api = FakeGitLab(token=TOKEN)
    api.add_project(42, "group/app", SHA)
    with serve(api) as running:
        yield running
