"""The agent's Alertmanager listener on 127.0.0.1: the route, the token, the answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from conveyor.app.alerts import AlertReceiver, agent_listener
from conveyor.app.project import Project
from conveyor.model.events import EventKind, Level
from conveyor.server.alert_listener import AlertListener
from conveyor.testing.net import free_port

TOKEN = "t0ken"


def body() -> bytes:
    alert = {
        "status": "firing",
        "labels": {"alertname": "HostDiskAlmostFull", "severity": "page", "mountpoint": "/"},
        "annotations": {"summary": "/ is almost full"},
        "startsAt": "2026-12-06T10:00:00Z",
        "fingerprint": "d1",
    }
    return json.dumps({"version": "4", "alerts": [alert]}).encode()


class Told:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(
        self,
        kind: EventKind,
        message: str,
        level: Level = "info",
        data: dict[str, Any] | None = None,
        *,
        environment: str | None = None,
        service: str | None = None,
    ) -> None:
        self.messages.append(f"{kind}: {message}")


@pytest.fixture
def listener() -> Iterator[tuple[AlertListener, Told]]:
    told = Told()
    started = AlertListener(AlertReceiver(TOKEN, told), free_port())
    yield started, told
    started.close()


def test_a_delivery_to_the_hook_path_is_told(listener: tuple[AlertListener, Told]) -> None:
    server, told = listener
    auth = {"Authorization": f"Bearer {TOKEN}"}

    ok = requests.post(server.url, data=body(), headers=auth, timeout=5)
    wrong = requests.post(
        server.url, data=body(), headers={"Authorization": "Bearer no"}, timeout=5
    )
    elsewhere = requests.post(server.url + "x", data=body(), headers=auth, timeout=5)

    assert ok.status_code == 200 and ok.json()["told"] == ["alert.firing HostDiskAlmostFull"]
    assert wrong.status_code == 401
    assert elsewhere.status_code == 404
    assert told.messages == ["alert.firing: / is almost full"]
    assert server.url.startswith("http://127.0.0.1:")


def test_a_port_taken_meanwhile_is_replaced_by_another(tmp_path: Path) -> None:
    """The agent's kept port was bound by something else while the agent was away."""
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: nginx:1.27\n")
    project = Project.open(None, "shop", {}, tmp_path)
    taken = AlertListener(AlertReceiver(TOKEN, Told()), free_port())
    state = project.paths().state_dir
    (state / "alerts").mkdir(parents=True)
    (state / "alerts" / "receiver.json").write_text(json.dumps({"port": taken.port}))

    # what agent_listener touches of the engine: its timeline
    engine = SimpleNamespace(timeline=SimpleNamespace(emit=Told()))
    try:
        mine = agent_listener(project, engine, AlertListener)  # type: ignore[arg-type]
        assert mine is not None
        assert mine.port != taken.port
        assert json.loads((state / "alerts" / "receiver.json").read_text())["port"] == mine.port
        mine.close()
    finally:
        taken.close()
