"""observe.checks.nagios against the real Nagios 4 (Debian's nagios4): started from rendered
objects, its status read back, reloaded when the checks change, a configuration it rejects
left unloaded, a downtime through its command file, notifications through the spool, and a
restart after it was killed. One Nagios for the module, stopped by its PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest

from conveyor.errors import ChecksError
from conveyor.host.process import pid_alive
from conveyor.model.checks import Check, ChecksSettings, CheckStatus, NagiosObjects
from conveyor.observe.checks.commands import schedule_downtime
from conveyor.observe.checks.nagios import Nagios, default_layout
from conveyor.testing.net import free_port

pytestmark = pytest.mark.skipif(shutil.which("nagios4") is None, reason="nagios4 not installed")

T = TypeVar("T")
FAST = ChecksSettings(interval=1, retry_interval=1, attempts=2, disk_paths=("/",))


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class App:
    """An HTTP server on loopback that can be stopped and started again on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    a = App()
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope="module")
def nagios() -> Iterator[Nagios]:
    # Under /tmp with the usual modes: Nagios runs as the nagios user, which must reach it.
    base = Path(tempfile.mkdtemp(prefix="cvn-", dir="/tmp"))
    base.chmod(0o755)
    n = Nagios(default_layout(base / "nagios"))
    yield n
    pid = n.recorded_pid()
    n.stop()
    if pid is not None and pid_alive(pid):  # stop() failed: still only our PID
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


def objects(app: App, *extra: Check, settings: ChecksSettings = FAST) -> NagiosObjects:
    web = Check(
        name=f"web http 127.0.0.1:{app.port}",
        kind="http",
        service="web",
        address="127.0.0.1",
        port=app.port,
        path="/health",
    )
    return NagiosObjects(
        host="box",
        checks=(web, Check(name="memory", kind="memory"), *extra),
        settings=settings,
    )


def status_of(n: Nagios, check: str) -> CheckStatus | None:
    status = n.status()
    found = [s for s in status.statuses if s.check == check] if status else []
    return found[0] if found and found[0].state != "PENDING" else None


def test_nagios_runs_the_checks_and_its_state_is_read_back(nagios: Nagios, app: App) -> None:
    assert nagios.ensure(objects(app)) == "started"
    pid = nagios.pid()
    assert pid is not None
    web = wait_for("the web check", lambda: status_of(nagios, f"web http 127.0.0.1:{app.port}"))
    assert (web.state, web.service, web.kind) == ("OK", "web", "http")
    health = nagios.health()
    assert health.running and health.pid == pid and not health.stale
    assert health.checks == 2
    assert nagios.ensure(objects(app)) == "unchanged"
    assert nagios.pid() == pid


def test_a_changed_set_of_checks_is_validated_then_reloaded(nagios: Nagios, app: App) -> None:
    pid = nagios.pid()
    assert nagios.ensure(objects(app, Check(name="load", kind="load"))) == "reloaded"
    assert nagios.pid() == pid  # SIGHUP: the same process re-reads its files
    wait_for("the new load check", lambda: status_of(nagios, "load"))


def test_a_configuration_nagios_rejects_is_not_loaded(nagios: Nagios, app: App) -> None:
    pid = nagios.pid()
    loaded = nagios.layout.objects_file.read_text()
    bad = FAST.model_copy(update={"attempts": 0})  # Nagios wants max_check_attempts >= 1
    with pytest.raises(ChecksError, match="Nagios rejected the configuration") as caught:
        nagios.ensure(objects(app, settings=bad))
    assert "max_check_attempts" in str(caught.value)
    assert nagios.layout.objects_file.read_text() == loaded  # the running set is kept
    assert (nagios.layout.etc / "objects.cfg.new").exists()  # the candidate, for its lines
    assert nagios.pid() == pid


def test_a_problem_and_its_recovery_are_notified_through_the_spool(
    nagios: Nagios, app: App
) -> None:
    for old in nagios.spooled():
        nagios.done(old)
    name = f"web http 127.0.0.1:{app.port}"
    app.stop()
    problem = wait_for(
        "a PROBLEM notification",
        lambda: [s for s in nagios.spooled() if s.notification and s.notification.check == name],
    )[0]
    assert problem.notification is not None
    assert (problem.notification.type, problem.notification.state) == ("PROBLEM", "CRITICAL")
    assert problem.notification.service == "web" and problem.notification.news
    nagios.done(problem)
    assert not problem.file.exists()
    app.start()
    recovery = wait_for(
        "a RECOVERY notification",
        lambda: [
            s
            for s in nagios.spooled()
            if s.notification and s.notification.check == name and s.notification.type == "RECOVERY"
        ],
    )[0]
    assert recovery.notification is not None and recovery.notification.state == "OK"
    nagios.done(recovery)


def test_a_downtime_holds_the_problem_notification_back(nagios: Nagios, app: App) -> None:
    name = f"web http 127.0.0.1:{app.port}"
    now = time.time()
    nagios.command(schedule_downtime("box", name, now, now + 3600, "test", "planned"))
    wait_for("the downtime", lambda: (s := status_of(nagios, name)) is not None and s.in_downtime)
    status = nagios.status()
    assert status is not None
    (downtime,) = [d for d in status.downtimes if d.check == name]
    assert (downtime.author, downtime.comment, downtime.in_effect) == ("test", "planned", True)
    app.stop()
    try:

        def failed() -> bool:
            s = status_of(nagios, name)
            return s is not None and (s.state, s.state_type) == ("CRITICAL", "hard")

        wait_for("the check to fail", failed)
        types = [
            s.notification.type
            for s in nagios.spooled()
            if s.notification and s.notification.check == name
        ]
        assert "DOWNTIMESTART" in types
        assert "PROBLEM" not in types  # Nagios held it back
    finally:
        app.start()
        for old in nagios.spooled():
            nagios.done(old)


@pytest.fixture
def tls_port(tmp_path: Path) -> Iterator[int]:
    """A TLS server on loopback whose self-signed certificate expires in 3 days (openssl)."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1024)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_a_certificate_near_its_end_is_critical(nagios: Nagios, app: App, tls_port: int) -> None:
    name = f"tls certificate 127.0.0.1:{tls_port}"
    cert = Check(name=name, kind="certificate", service="tls", address="127.0.0.1", port=tls_port)
    assert nagios.ensure(objects(app, Check(name="load", kind="load"), cert)) == "reloaded"
    status = wait_for("the certificate check", lambda: status_of(nagios, name))
    assert status.state == "CRITICAL"  # 3 days left; critical under 7 (warning under 30)
    assert "expires in 2 day" in status.output or "expires in 3 day" in status.output, status.output


def test_nagios_killed_is_started_again(nagios: Nagios, app: App) -> None:
    pid = nagios.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for("Nagios to die", lambda: not nagios.running())
    assert nagios.recorded_pid() == pid
    assert nagios.ensure(objects(app, Check(name="load", kind="load"))) == "started"
    assert nagios.pid() not in (None, pid)
    wait_for("checks after the restart", lambda: status_of(nagios, "memory"))
    assert nagios.stop()
    assert not nagios.running()
    with pytest.raises(ChecksError, match="does not read its command file"):
        nagios.command("SCHEDULE_FORCED_SVC_CHECK;box;memory;0")
