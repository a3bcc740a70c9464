"""A real Prometheus and Alertmanager on loopback over a fake HAProxy exporter, delivering to
Conveyor's alert receiver: what the alerts integration test and bench/alert_delay.py run.

Prometheus and Alertmanager are Debian's programs, started as supervised daemons
(`host.process`: PID files, stopped by PID) from minimal configurations written here (the
metrics work's prometheus.yml is not used): one `haproxy` scrape job over the fake exporter,
labelled `project`/`environment` as docs/metrics.md says, the rule files
`render.prometheus_rules` renders, and `render.alertmanager_routes`' receiver side pointing at
an `AlertListener` whose events go to `subscribers` (and a store's timeline)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from conveyor.app.alerts import AlertReceiver, refresh_rules, token_file
from conveyor.host.process import Daemon, DaemonSpec
from conveyor.host.validate import validate
from conveyor.model.events import Subject
from conveyor.render import alertmanager_routes as am
from conveyor.render import prometheus_rules as rules
from conveyor.server.alert_listener import AlertListener
from conveyor.store.db import Store
from conveyor.store.timeline import Subscriber, Timeline
from conveyor.testing.net import free_port


@dataclass
class FakeHAProxy:
    """web's backend as HAProxy's exporter shows it: replicas up, responses by class. Each
    scrape adds `ok_per_scrape` and `errors_per_scrape` to the counters."""

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


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """`handler` on 127.0.0.1 in this process's threads; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _exporter(target: FakeHAProxy) -> type[BaseHTTPRequestHandler]:
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

    return Exporter


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


@dataclass
class AlertStack:
    root: Path
    target: FakeHAProxy
    prometheus: str
    alertmanager: str
    rules_dir: Path
    store: Store
    timeline: Timeline


@contextmanager
def alert_stack(
    root: Path,
    subscribers: Sequence[Subscriber] = (),
    *,
    interval: str = "1s",
    settings: rules.AlertSettings | None = None,
    timing: am.Timing | None = None,
    targets: Sequence[rules.SLOTarget] = (),
) -> Iterator[AlertStack]:
    """The stack under `root`; `interval` is Prometheus's scrape and evaluation interval."""
    target = FakeHAProxy()
    store = Store.open(root / "state")
    timeline = Timeline(Subject(project="shop", environment="shop"), store.events, "agent", [])
    for fn in subscribers:
        timeline.subscribe(fn)
    token = token_file(root / "state", {})
    listener = AlertListener(AlertReceiver(token, timeline.emit), free_port())
    prom_port, am_port = free_port(), free_port()
    prom_url, am_url = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}"
    rules_dir = root / "prometheus" / "rules"
    refresh_rules(rules_dir, targets, None, settings)
    daemons: list[Daemon] = []
    try:
        with serve_http(_exporter(target)) as exporter_port:
            prom_yml = root / "prometheus" / "prometheus.yml"
            prom_yml.write_text(
                f"global: {{scrape_interval: {interval}, evaluation_interval: {interval}}}\n"
                f'rule_files: ["{rules_dir}/*.yml"]\n'
                "alerting: {alertmanagers: [{static_configs: "
                f'[{{targets: ["127.0.0.1:{am_port}"]}}]}}]}}\n'
                "scrape_configs:\n"
                "  - job_name: haproxy\n"
                f'    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"], '
                "labels: {project: shop, environment: shop}}]\n"
            )
            am_yml = root / "alertmanager" / "alertmanager.yml"
            am_yml.parent.mkdir(parents=True, exist_ok=True)
            am_yml.write_text(
                am.render(am.ConveyorHook(listener.url, str(token)), timing=timing or am.Timing())
            )
            validate(am.VALIDATOR, am_yml)
            daemons = [
                _daemon(
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
                ),
                _daemon(
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
                ),
            ]
            for daemon in daemons:
                daemon.ensure()
            yield AlertStack(root, target, prom_url, am_url, rules_dir, store, timeline)
    finally:
        for daemon in reversed(daemons):
            daemon.stop()
        listener.close()
        store.close()
