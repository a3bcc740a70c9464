"""Alerts for real: Debian's Prometheus evaluates the rendered rule files over a fake target's
series, Debian's Alertmanager routes what fires (the rendered receiver side) to Conveyor's
receiver (the agent's loopback listener, bearer token from a file), each start and end becomes
an event on a project's timeline, and the notification dispatcher tells a chat webhook.

One module-scoped stack: Prometheus and Alertmanager started by the fixture from minimal
rendered configurations (the metrics work's own prometheus.yml is not used here), recorded by
PID and stopped by PID. The fake target is a small HTTP server in this process serving
HAProxy-named series with the labels docs/metrics.md gives them. Waits are wait-untils with a
guard, never timing assertions. ServiceDown's `for` is 2 s here (15 s by default)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from conveyor.app.alerts import AlertReceiver, list_alerts, refresh_rules, token_file
from conveyor.gitops.notify import build_dispatcher
from conveyor.host.process import Daemon, DaemonSpec
from conveyor.host.validate import validate
from conveyor.model.events import Event, Subject
from conveyor.model.notifications import NotificationsSpec, WebhookSpec
from conveyor.model.slo import ServiceSLO
from conveyor.render import alertmanager_routes as am
from conveyor.render import prometheus_rules as rules
from conveyor.server.alert_listener import AlertListener
from conveyor.store.db import Store
from conveyor.store.timeline import Timeline
from conveyor.testing.net import free_port
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
class Target:
    """The fake HAProxy exporter: web's backend, its replicas up and its responses."""

    active: int = 2
    ok_per_scrape: int = 80
    errors_per_scrape: int = 0
    ok: int = 0
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def scrape(self) -> bytes:
        with self.lock:
            self.ok += self.ok_per_scrape
            self.errors += self.errors_per_scrape
            be = 'proxy="be_web",service="web"'
            lines = [
                "# TYPE haproxy_backend_active_servers gauge",
                f"haproxy_backend_active_servers{{{be}}} {self.active}",
                "# TYPE haproxy_backend_http_requests_total counter",
                f"haproxy_backend_http_requests_total{{{be}}} {self.ok + self.errors}",
                "# TYPE haproxy_backend_http_responses_total counter",
                f'haproxy_backend_http_responses_total{{{be},code="2xx"}} {self.ok}',
                f'haproxy_backend_http_responses_total{{{be},code="5xx"}} {self.errors}',
            ]
        return ("\n".join(lines) + "\n").encode()


def _serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return server, thread


@dataclass
class Stack:
    root: Path
    target: Target
    prometheus: str
    alertmanager: str
    rules_dir: Path
    store: Store
    events: list[Event]
    chat: Receiver


def wait_for(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + GUARD
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"not within {GUARD:g} s: {what}")
        time.sleep(0.2)


def _daemon(root: Path, name: str, argv: tuple[str, ...], ready_url: str) -> Daemon:
    def ready() -> bool:
        try:
            return requests.get(ready_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    return Daemon(
        DaemonSpec(
            name=name,
            argv=argv,
            pid_file=root / f"{name}.pid",
            log_file=root / f"{name}.log",
            ready=ready,
            readiness="answering /-/ready",
            markers=(argv[1],),
        )
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("alerts")
    target = Target()

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = target.scrape()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

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

    exporter, exporter_thread = _serve(Exporter)
    chat_server, chat_thread = _serve(Chat)
    chat.url = f"http://127.0.0.1:{chat_server.server_address[1]}/hook"

    # The project's timeline: events recorded in its store, told to the chat webhook.
    store = Store.open(root / "state")
    dispatcher = build_dispatcher(NotificationsSpec(webhook=WebhookSpec(url=chat.url)), {})
    seen: list[Event] = []
    timeline = Timeline(
        Subject(project="shop", environment="shop"),
        store.events,
        "agent",
        [dispatcher, seen.append],
    )
    token = token_file(root / "state", {})
    listener = AlertListener(AlertReceiver(token, timeline.emit), free_port())

    prom_port, am_port = free_port(), free_port()
    prom_url, am_url = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    rules_dir = root / "prometheus" / "rules"
    # Only the shared files at first: the SLO file arrives by reload (test 1).
    refresh_rules(rules_dir, [], None, SETTINGS)
    prom_yml = root / "prometheus" / "prometheus.yml"
    prom_yml.write_text(
        f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{rules_dir}/*.yml"]
alerting: {{alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]}}
scrape_configs:
  - job_name: haproxy
    static_configs:
      - targets: ["127.0.0.1:{exporter.server_address[1]}"]
        labels: {{project: shop, environment: shop}}
"""
    )
    am_yml = root / "alertmanager" / "alertmanager.yml"
    am_yml.parent.mkdir()
    hook = am.ConveyorHook(listener.url, str(token))
    timing = am.Timing(group_wait="1s", group_interval="1s")
    am_yml.write_text(am.render(hook, timing=timing))
    validate(am.VALIDATOR, am_yml)

    alertmanager = _daemon(
        root,
        "alertmanager",
        (
            "prometheus-alertmanager",
            f"--config.file={am_yml}",
            f"--storage.path={root / 'alertmanager' / 'data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ),
        f"{am_url}/-/ready",
    )
    prometheus = _daemon(
        root,
        "prometheus",
        (
            "prometheus",
            f"--config.file={prom_yml}",
            f"--storage.tsdb.path={root / 'prometheus' / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--web.enable-lifecycle",
        ),
        f"{prom_url}/-/ready",
    )
    try:
        alertmanager.ensure()
        prometheus.ensure()
        yield Stack(root, target, prom_url, am_url, rules_dir, store, seen, chat)
    finally:
        prometheus.stop()
        alertmanager.stop()
        listener.close()
        dispatcher.close(timeout=5)
        store.close()
        for server, thread in ((exporter, exporter_thread), (chat_server, chat_thread)):
            server.shutdown()
            server.server_close()
            thread.join()


def _rule_groups(url: str) -> set[str]:
    data = requests.get(f"{url}/api/v1/rules", timeout=5).json()["data"]
    return {g["name"] for g in data["groups"]}


def _chat_titles(stack: Stack) -> list[str]:
    """The first line of each message, the title in Slack's bold."""
    return [str(p["json"]["text"]).split("\n")[0].strip("*") for p in list(stack.chat.posts)]


def test_a_new_slo_reaches_prometheus_by_reload(stack: Stack) -> None:
    assert _rule_groups(stack.prometheus) == {"conveyor-red", "conveyor-services", "conveyor-host"}

    done = refresh_rules(
        stack.rules_dir, [rules.SLOTarget("shop", "shop", "web", SLO)], stack.prometheus, SETTINGS
    )

    assert done.sync.written == ["conveyor-slo-shop.yml"] and done.reloaded
    assert "conveyor-slo-shop" in _rule_groups(stack.prometheus)


def test_alerts_fire_are_told_once_and_resolve(stack: Stack) -> None:
    # 20 % of web's responses fail: its 99.9 % availability budget burns > 14.4x
    with stack.target.lock:
        stack.target.errors_per_scrape = 20
    wait_for(
        "the fast burn-rate page is told in the chat",
        lambda: "shop: ErrorBudgetBurn (web) firing" in _chat_titles(stack),
    )

    # every replica of web gone: a page, and the burn it explains is inhibited
    with stack.target.lock:
        stack.target.active = 0
    wait_for(
        "ServiceDown is told in the chat",
        lambda: "shop: ServiceDown (web) firing" in _chat_titles(stack),
    )
    firing = list_alerts(stack.alertmanager, stack.store.events)
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
    with stack.target.lock:
        stack.target.active = 2
        stack.target.errors_per_scrape = 0
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
    recorded = stack.store.events.recent(["alert.firing", "alert.resolved"], 0)
    assert {e.kind for e in recorded} == {"alert.firing", "alert.resolved"}
    assert all(e.subject.service == "web" for e in recorded)
    assert _chat_titles(stack).count("shop: ServiceDown (web) firing") == 1

    after = list_alerts(stack.alertmanager, stack.store.events)
    resolved = [a for a in after.alerts if a.name == "ServiceDown"]
    assert [(a.state, a.service) for a in resolved] == [("resolved", "web")]
    assert resolved[0].ended is not None and resolved[0].ended >= resolved[0].since
