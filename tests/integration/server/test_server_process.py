"""The real `conveyor server` process on a free loopback port: health, a token made by
`conveyor token create`, a webhook delivery over HTTP, and a clean stop on SIGTERM (exit 0),
also while an event stream is open. The fixture records the PID and stops exactly it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conveyor.app.access import open_server_db
from conveyor.testing.net import free_port

SECRET = "integration-secret"


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    url: str
    data: Path
    log: Path

    def stop(self) -> int:
        """SIGTERM, then the exit code (bounded wait, so a hang fails instead of blocking)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def conveyor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    port = free_port()
    data = tmp_path / "data"
    log = tmp_path / "server.log"
    env = os.environ | {"CONVEYOR_WEBHOOK_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "server", "--source", str(tmp_path),
         "--listen", f"127.0.0.1:{port}", "--data", str(data)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    running = Running(proc, f"http://127.0.0.1:{port}", data, log)
    try:
        with httpx.Client(trust_env=False) as client:
            for _ in range(300):  # bounded: until it answers, or it exited
                if proc.poll() is not None:
                    pytest.fail(f"conveyor server exited {proc.returncode}:\n{log.read_text()}")
                try:
                    if client.get(f"{running.url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                pytest.fail(f"conveyor server did not answer:\n{log.read_text()}")
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_health_and_a_token_from_the_cli_then_a_clean_stop(server: Running) -> None:
    made = conveyor(
        "token", "create", "--role", "viewer", "--data", str(server.data), cwd=server.data.parent
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/api/v1/environments").status_code == 401
        ok = client.get("/api/v1/environments", headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.json()) == (200, [])  # the placeholder backend: none yet
        assert "/api/v1/events/stream" in client.get("/api/v1/openapi.json").json()["paths"]
    assert server.stop() == 0, server.log.read_text()
    assert "conveyor server stopped" in server.log.read_text()


def test_a_webhook_delivery_is_persisted_by_the_running_server(server: Running) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "a" * 40, "object_kind": "push"})
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as client:
        wrong = client.post("/hooks/gitlab", content=body, headers={"X-Gitlab-Token": "nope"})
        right = client.post(
            "/hooks/gitlab",
            content=body,
            headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "e-1"},
        )
        again = client.post(
            "/hooks/gitlab",
            content=body,
            headers={"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "e-1"},
        )
    assert (wrong.status_code, right.status_code, again.status_code) == (401, 202, 200)
    assert server.stop() == 0
    sdb = open_server_db(server.data)
    (stored,) = sdb.deliveries.with_status("pending")  # no controller yet: it waits for one
    assert (stored.source, stored.delivery_id, stored.after_sha) == ("gitlab", "e-1", "a" * 40)


def test_sigterm_with_an_event_stream_open_still_exits_0(server: Running) -> None:
    made = conveyor(
        "token", "create", "--role", "viewer", "--data", str(server.data), cwd=server.data.parent
    )
    token = made.stdout.splitlines()[-1]
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=server.url, trust_env=False, timeout=30) as client,
        client.stream("GET", "/api/v1/events/stream", headers=headers) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"  # the stream is open
        assert server.stop() == 0, server.log.read_text()
        rest = list(lines)  # the server ended the stream as it stopped
    # what came before the end is keep-alives or whole events (the controller reports that
    # this source is not a repository)
    fields = ("", ": keepalive")
    assert all(line in fields or line.startswith(("id: ", "data: ", "event: ")) for line in rest)


def test_the_server_refuses_to_start_on_a_port_in_use(server: Running, tmp_path: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    other = conveyor(
        "server", "--source", ".", "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path / "d2"),
        cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 1
    assert f"could not start on 127.0.0.1:{port}" in other.stderr


def test_an_alertmanager_delivery_becomes_a_recorded_event(server: Running) -> None:
    """POST /hooks/alertmanager with the token of `<data>/alerts/token` (what the server's
    Alertmanager is given): the alert's start is an event of the server's timeline."""
    token = (server.data / "alerts" / "token").read_text().strip()
    alert = {
        "status": "firing",
        "labels": {"alertname": "ServiceDown", "severity": "page", "environment": "production",
                   "service": "web", "project": "app-production"},
        "annotations": {"summary": "web (production) is down: no replica is in rotation"},
        "startsAt": "2026-12-06T10:00:00Z",
        "fingerprint": "f00d",
    }  # fmt: skip
    body = json.dumps({"version": "4", "status": "firing", "alerts": [alert]})
    with httpx.Client(base_url=server.url, trust_env=False, timeout=10) as client:
        refused = client.post("/hooks/alertmanager", content=body)
        told = client.post(
            "/hooks/alertmanager", content=body, headers={"Authorization": f"Bearer {token}"}
        )
    assert (refused.status_code, told.status_code) == (401, 200)
    assert told.json()["told"] == ["alert.firing ServiceDown"]
    assert server.stop() == 0
    sdb = open_server_db(server.data)
    (event,) = [e for e in sdb.events.after(None, 1000) if e.kind == "alert.firing"]
    assert (event.subject.environment, event.subject.service, event.level) == (
        "production",
        "web",
        "error",
    )
    assert event.message == "web (production) is down: no replica is in rotation"
