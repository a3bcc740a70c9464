"""`conveyor alerts`: from an Alertmanager answering API v2 (a small HTTP server here speaking
its documented JSON), the table and the --json form; resolved ones from the project's
timeline; no Alertmanager known is an error that says what to do."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from conveyor.cli.alerts import alerts_table
from conveyor.cli.main import main
from conveyor.model.alerts import AlertsView, AlertView
from conveyor.model.events import Subject
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline

NOW = time.time()


def api_alert(name: str, state: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {"summary": f"{name} on {labels.get('service', '?')}"},
        "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 300)),
        "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 300)),
        "updatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW)),
        "fingerprint": name,
        "receivers": [{"name": "conveyor"}],
        "status": {
            "state": state,
            "silencedBy": [],
            "inhibitedBy": ["x"] if state == "suppressed" else [],
        },
    }


@pytest.fixture
def alertmanager() -> Iterator[str]:
    answer = [
        api_alert("ServiceDown", "active", severity="page", service="web", environment="shop"),
        api_alert("ErrorBudgetBurn", "suppressed", severity="page", service="web"),
    ]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(answer if self.path.startswith("/api/v2/alerts") else {}).encode()
            self.send_response(200 if self.path.startswith("/api/v2/alerts") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def run(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["conveyor", *args])
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0)


def test_json_lists_firing_then_resolved(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    alertmanager: str,
) -> None:
    (tmp_path / "compose.yaml").write_text("name: shop\nservices:\n  web:\n    image: web\n")
    monkeypatch.chdir(tmp_path)
    store = Store.open(tmp_path / ".conveyor" / "shop")
    labels = {"alertname": "HostDiskAlmostFull", "severity": "page", "mountpoint": "/"}
    Timeline(Subject(project="shop"), store.events, "agent", []).emit(
        "alert.resolved",
        "/ is almost full",
        data={"alertname": "HostDiskAlmostFull", "labels": labels, "starts_at": NOW - 900},
    )
    store.close()

    code = run(monkeypatch, "alerts", "--json", "--alertmanager", alertmanager)

    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["version"], out["alertmanager"]) == (1, alertmanager)
    # firing by start (then name), then resolved, newest first
    assert [(a["name"], a["state"]) for a in out["alerts"]] == [
        ("ErrorBudgetBurn", "suppressed"),
        ("ServiceDown", "firing"),
        ("HostDiskAlmostFull", "resolved"),
    ]
    down = out["alerts"][1]
    assert (down["service"], down["environment"], down["severity"]) == ("web", "shop", "page")
    assert down["summary"] == "ServiceDown on web" and down["labels"]["alertname"] == "ServiceDown"
    assert abs(down["since"] - (NOW - 300)) < 1


def test_no_alertmanager_known_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "compose.yaml").write_text("name: shop\nservices:\n  web:\n    image: web\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONVEYOR_ALERTMANAGER_URL", raising=False)
    monkeypatch.delenv("CONVEYOR_ALERTMANAGER_PORT", raising=False)

    assert run(monkeypatch, "alerts") == 1
    assert "no Alertmanager known" in capsys.readouterr().err


def test_the_table() -> None:
    view = AlertsView(
        alertmanager="http://127.0.0.1:19101",
        alerts=[
            AlertView(name="ServiceDown", state="firing", severity="page", environment="production",
                      service="web", summary="web is [b]down", since=NOW - 125),
            AlertView(name="HostDiskAlmostFull", state="resolved", summary="/ is almost full",
                      since=NOW - 900, ended=NOW - 300, labels={"instance": "127.0.0.1:19102"}),
        ],
    )  # fmt: skip
    console = Console(width=200, record=True, file=None)
    with console.capture() as cap:
        console.print(alerts_table(view, now=NOW))
    out = cap.get()
    assert "production/web" in out and "web is [b]down" in out  # text, not markup
    assert "(2m 5s ago)" in out and "(for 10m)" in out
    assert "127.0.0.1:19102" in out
