"""Alerts for real: Debian's Prometheus evaluates the rendered rule files over a fake target's
series, Debian's Alertmanager routes what fires (the rendered receiver side) to Conveyor's
receiver (the agent's loopback listener, bearer token from a file), each start and end becomes
an event on a project's timeline, and the notification dispatcher tells a chat webhook.

One module-scoped stack (conveyor.testing.alert_stack): Prometheus and Alertmanager started
from minimal rendered configurations (the metrics work's own prometheus.yml is not used here),
recorded by PID and stopped by PID. The fake target is a small HTTP server in this process serving
HAProxy-named series with the labels docs/metrics.md gives them. Waits are wait-untils with a
guard, never timing assertions. ServiceDown's `for` is 2 s here (10 s by default)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests

from conveyor.app.alerts import list_alerts, refresh_rules
from conveyor.gitops.notify import build_dispatcher
from conveyor.model.events import Event
from conveyor.model.notifications import NotificationsSpec, WebhookSpec
from conveyor.model.slo import ServiceSLO
from conveyor.render import alertmanager_routes as am
from conveyor.render import prometheus_rules as rules
from conveyor.testing.alert_stack import AlertStack, alert_stack, serve_http
from tests.integration.notify.conftest import Receiver

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
        reason="Debian's prometheus and prometheus-alertmanager are not installed",
    ),
]

GUARD = 90.0  # seconds any one wait may take before the test gives up (a guard, not a figure)
SLO = ServiceSLO(availability=0.999)
SETTINGS = rules.AlertSettings(down_for="2s")


@dataclass
class Stack:
    alerts: AlertStack
    events: list[Event]
    chat: Receiver

    @property
    def prometheus(self) -> str:
        return self.alerts.prometheus

    @property
    def alertmanager(self) -> str:
        return self.alerts.alertmanager


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + GUARD
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {GUARD:g} s: {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    chat = Receiver()

    class Chat(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            chat.posts.append({"path": self.path, "json": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    seen: list[Event] = []
    with serve_http(Chat) as chat_port:
        chat.url = f"http://127.0.0.1:{chat_port}/hook"
        # the project's timeline tells the chat webhook, as the server's channels do
        dispatcher = build_dispatcher(NotificationsSpec(webhook=WebhookSpec(url=chat.url)), {})
        timing = am.Timing(group_wait="1s", group_interval="1s")
        root = tmp_path_factory.mktemp("alerts")
        try:
            # Only the shared rule files at first: the SLO file arrives by reload (test 1).
            with alert_stack(
                root, [dispatcher, seen.append], settings=SETTINGS, timing=timing
            ) as alerts:
                yield Stack(alerts, seen, chat)
        finally:
            dispatcher.close(timeout=5)


def _rule_groups(url: str) -> set[str]:
    data = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]
    return {g["name"] for g in data["groups"]}


def _chat_titles(stack: Stack) -> list[str]:
    """The first line of each message, the title in Slack's bold."""
    return [str(p["json"]["text"]).split("\n")[0].strip("*") for p in list(stack.chat.posts)]


def test_a_new_slo_reaches_prometheus_by_reload(stack: Stack) -> None:
    shared = {"conveyor-red", "conveyor-services", "conveyor-host", "conveyor-backups"}
    assert _rule_groups(stack.prometheus) == shared

    done = refresh_rules(
        stack.alerts.rules_dir,
        [rules.SLOTarget("shop", "shop", "web", SLO)],
        stack.prometheus,
        SETTINGS,
    )

    assert done.sync.written == ["conveyor-slo-shop.yml"] and done.reloaded
    assert "conveyor-slo-shop" in _rule_groups(stack.prometheus)


def test_alerts_fire_are_told_once_and_resolve(stack: Stack) -> None:
    # 20 % of web's responses fail: its 99.9 % availability budget burns > 14.4x
    with stack.alerts.target.lock:
        stack.alerts.target.errors_per_scrape = 20
    wait_for(
        "the fast burn-rate page is told in the chat",
        lambda: "shop: ErrorBudgetBurn (web) firing" in _chat_titles(stack),
    )

    # every replica of web gone: a page, and the burn it explains is inhibited
    with stack.alerts.target.lock:
        stack.alerts.target.active = 0
    wait_for(
        "ServiceDown is told in the chat",
        lambda: "shop: ServiceDown (web) firing" in _chat_titles(stack),
    )
    firing = list_alerts(stack.alertmanager, stack.alerts.store.events)
    by_name = {(a.name, a.labels.get("burn_rate")): a for a in firing.alerts}
    down = by_name[("ServiceDown", None)]
    assert (down.state, down.severity, down.service, down.environment) == (
        "firing",
        "page",
        "web",
        "shop",
    )
    assert down.summary == "web (shop) is down: no replica is in rotation"
    assert wait_for(
        "the burn is inhibited by ServiceDown",
        lambda: (
            {
                a.state
                for a in list_alerts(stack.alertmanager, None).alerts
                if a.name == "ErrorBudgetBurn" and a.labels.get("burn_rate") == "14.4"
            }
            == {"suppressed"}
        ),
    )

    # back: two replicas, no more errors
    with stack.alerts.target.lock:
        stack.alerts.target.active = 2
        stack.alerts.target.errors_per_scrape = 0
    wait_for(
        "ServiceDown's end is told in the chat",
        lambda: "shop: ServiceDown (web) resolved" in _chat_titles(stack),
    )

    kinds = [(e.kind, e.data.get("alertname"), e.level) for e in stack.events]
    downs = [k for k in kinds if k[1] == "ServiceDown"]
    assert downs == [
        ("alert.firing", "ServiceDown", "error"),
        ("alert.resolved", "ServiceDown", "info"),
    ]
    recorded = stack.alerts.store.events.recent(["alert.firing", "alert.resolved"], 0)
    assert {e.kind for e in recorded} == {"alert.firing", "alert.resolved"}
    assert all(e.subject.service == "web" for e in recorded)
    assert _chat_titles(stack).count("shop: ServiceDown (web) firing") == 1

    after = list_alerts(stack.alertmanager, stack.alerts.store.events)
    resolved = [a for a in after.alerts if a.name == "ServiceDown"]
    assert [(a.state, a.service) for a in resolved] == [("resolved", "web")]
    assert resolved[0].ended is not None and resolved[0].ended >= resolved[0].since
