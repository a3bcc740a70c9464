"""The server's Alertmanager routes: `POST /hooks/alertmanager` (bearer token, events told
once) and `GET /api/v1/alerts` (viewer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conveyor.app.access import create_token, open_server_db
from conveyor.app.alerts import AlertReceiver
from conveyor.errors import AlertsError
from conveyor.model.alerts import AlertsView, AlertView
from conveyor.model.events import EventKind, Level
from conveyor.server.api import create_app
from tests.unit.server.conftest import SECRET, TestClient, make_backend

TOKEN = "alert-token"


def body(status: str = "firing") -> bytes:
    alert = {
        "status": status,
        "labels": {"alertname": "ServiceDown", "severity": "page", "service": "web"},
        "annotations": {"summary": "web is down"},
        "startsAt": "2026-12-06T10:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "abc",
    }
    return json.dumps({"version": "4", "status": status, "alerts": [alert]}).encode()


class Told:
    def __init__(self) -> None:
        self.kinds: list[EventKind] = []

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
        self.kinds.append(kind)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, Told, str]:
    backend, _, _ = make_backend()
    db = open_server_db(tmp_path)
    viewer = create_token(db, "viewer", "v").token
    told = Told()

    def view(window: float) -> AlertsView:
        if window > 7200:
            raise AlertsError("Alertmanager does not answer at http://127.0.0.1:1")
        one = AlertView(name="ServiceDown", state="firing", summary="web is down", since=1.0)
        return AlertsView(alertmanager="http://am", alerts=[one], resolved_since=window)

    app = create_app(
        backend, db, hook_secret=SECRET, alerts=AlertReceiver(TOKEN, told), alerts_view=view
    )
    return TestClient(app), told, viewer


def test_alertmanager_deliveries_need_the_bearer_token(setup: tuple[TestClient, Told, str]) -> None:
    client, told, _ = setup
    auth = {"Authorization": f"Bearer {TOKEN}"}

    refused = client.post(
        "/hooks/alertmanager", content=body(), headers={"Authorization": "Bearer x"}
    )
    first = client.post("/hooks/alertmanager", content=body(), headers=auth)
    repeat = client.post("/hooks/alertmanager", content=body(), headers=auth)
    bad = client.post("/hooks/alertmanager", content=b"{}", headers=auth)

    assert refused.status_code == 401
    assert first.status_code == 200 and first.json() == {
        "alerts": 1,
        "told": ["alert.firing ServiceDown"],
    }
    assert repeat.json()["told"] == []
    assert bad.status_code == 400
    assert told.kinds == ["alert.firing"]


def test_without_a_receiver_the_route_is_404(tmp_path: Path) -> None:
    backend, _, _ = make_backend()
    client = TestClient(create_app(backend, open_server_db(tmp_path), hook_secret=SECRET))
    r = client.post("/hooks/alertmanager", content=body(), headers={"Authorization": "Bearer x"})
    assert r.status_code == 404
    assert client.get("/api/v1/alerts").status_code == 401  # a token first, as every API route


def test_alerts_are_read_with_a_viewer_token(setup: tuple[TestClient, Told, str]) -> None:
    client, _, viewer = setup
    auth = {"Authorization": f"Bearer {viewer}"}

    r = client.get("/api/v1/alerts", params={"window": 600}, headers=auth)
    down = client.get("/api/v1/alerts", params={"window": 86400}, headers=auth)

    assert r.status_code == 200
    assert AlertsView.model_validate(r.json()).alerts[0].name == "ServiceDown"
    assert r.json()["resolved_since"] == 600
    assert client.get("/api/v1/alerts").status_code == 401
    assert down.status_code == 503 and "does not answer" in down.json()["detail"]
