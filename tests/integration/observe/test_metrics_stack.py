"""The metrics stack of a project brought up by the real `conveyor` command: Prometheus,
Alertmanager and node exporter (Debian's) on 127.0.0.1, HAProxy's exporter and the replicas'
own /metrics scraped through file-based discovery, `conveyor metrics --json` answering from
Prometheus, targets following replicas without a restart, a killed Prometheus started again by
the agent and reported.

One module-scoped project (one Prometheus) for every test; test traffic goes to 127.0.0.1 only.
The tests run in file order: later ones change the replicas the earlier ones counted.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor.deploy.project import ProjectPaths

T = TypeVar("T")

IMAGE = "python:3.11-slim-bookworm"

# An HTTP app that counts its own request durations as a Prometheus histogram (written by hand:
# the base image has no prometheus-client). /fail answers 501: a 5xx HAProxy does not retry
# (`retry-on all-retryable-errors` retries 500, 502, 503 and 504), so each counts once.
APP = r"""
import os, threading, time, http.server
BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)
lock = threading.Lock()
counts = [0] * len(BUCKETS)
seen = {"n": 0, "sum": 0.0}
def observe(seconds):
    with lock:
        seen["n"] += 1
        seen["sum"] += seconds
        for i, le in enumerate(BUCKETS):
            if seconds <= le:
                counts[i] += 1
def exposition():
    with lock:
        lines = ["# TYPE http_request_duration_seconds histogram"]
        lines += [f'http_request_duration_seconds_bucket{{le="{le}"}} {c}'
                  for le, c in zip(BUCKETS, counts)]
        lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {seen["n"]}')
        lines.append(f'http_request_duration_seconds_sum {seen["sum"]}')
        lines.append(f'http_request_duration_seconds_count {seen["n"]}')
    return ("\n".join(lines) + "\n").encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        t0 = time.monotonic()
        if self.path == "/metrics":
            code, body = 200, exposition()
        elif self.path == "/health":
            code, body = 200, b"ok"
        else:
            code, body = (501, b"no") if self.path.startswith("/fail") else (200, b"ok")
            observe(time.monotonic() - t0)
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""

STACK = """\
services:
  web:
    image: {image}
    network_mode: host
    command: ["python3", "-c", {app}]
    deploy:
      replicas: {replicas}
    stop_grace_period: 1s
    x-conveyor:
      probe: /health
      metrics: /metrics
"""


@dataclass
class World:
    root: Path
    name: str

    @property
    def compose(self) -> Path:
        return self.root / "compose.yaml"

    @property
    def metrics_dir(self) -> Path:
        return self.root / ".conveyor" / self.name / "metrics"

    def write(self, replicas: int) -> None:
        self.compose.write_text(STACK.format(image=IMAGE, app=json.dumps(APP), replicas=replicas))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-f", str(self.compose), "-p", self.name, *args]
        env = {**os.environ, "CONVEYOR_METRICS": "1"}
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)
        if check:
            assert p.returncode == 0, f"conveyor {' '.join(args)} -> {p.returncode}\n{p.stderr}"
        return p

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.run("status", "--json").stdout))

    def component(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status()["components"] if c["name"] == name)

    @property
    def prometheus(self) -> str:
        # the port `status` shows, read from the file it reads it from (a command per poll is
        # slow on a busy machine)
        ports = json.loads((self.metrics_dir / "ports.json").read_text())
        return f"http://127.0.0.1:{ports['prometheus']}"

    def pid(self, component: str) -> int:
        return int((self.metrics_dir / f"{component}.pid").read_text().split()[0])

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.prometheus + "/-/ready", timeout=2) as answer:
                return int(answer.status) == 200
        except OSError:
            return False

    def ask(self, path: str) -> Any:
        with urllib.request.urlopen(self.prometheus + path, timeout=5) as answer:
            return json.loads(answer.read())["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        q = urllib.parse.quote(promql)
        return list(self.ask(f"/api/v1/query?query={q}")["result"])

    def replica_targets(self) -> list[dict[str, Any]]:
        targets = self.ask("/api/v1/targets?state=active")["activeTargets"]
        return [
            t
            for t in targets
            if t["labels"].get("job") == "replicas" and t["labels"].get("project") == self.name
        ]


def wait_for(pred: Callable[[], T], what: str, timeout: float = 90) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = pred()
        except (OSError, urllib.error.URLError, KeyError, StopIteration) as e:
            last = e
        else:
            if last:
                return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[World]:
    for program in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
        if subprocess.run(["which", program], capture_output=True, check=False).returncode:
            pytest.fail(f"{program} missing: scripts/install-host.sh installs it")
    w = World(tmp_path_factory.mktemp("metrics"), f"metrics-{uuid.uuid4().hex[:6]}")
    w.write(replicas=2)
    w.run("up")  # with its agent: it keeps the stack running
    try:
        yield w
    finally:
        w.run("down", check=False)


def test_up_runs_the_stack_on_loopback(world: World) -> None:
    components = {c["name"]: c for c in world.status()["components"]}
    # the agent's log collector has its line too: the store's path, not a URL
    components.pop("log store", None)
    assert set(components) == {"prometheus", "alertmanager", "node-exporter"}
    for c in components.values():
        assert c["url"].startswith("http://127.0.0.1:")
        assert c["healthy"], c
    # what Prometheus was told: the files Conveyor rendered, checked by promtool
    assert (world.metrics_dir / "prometheus" / "prometheus.yml").exists()
    targets = json.loads((world.metrics_dir / "prometheus/targets/node.json").read_text())
    assert targets[0]["targets"] == [components["node-exporter"]["url"].removeprefix("http://")]


def test_status_shows_the_agents_log_store(world: World) -> None:
    def store() -> dict[str, Any] | None:
        found = [c for c in world.status()["components"] if c["name"] == "log store"]
        return found[0] if found and found[0]["healthy"] else None

    line = wait_for(store, "the agent's collector to write the log store")
    assert line["url"].endswith("/logs.db") and line["pid"]
    assert " lines, " in line["detail"]


def test_traffic_shows_in_conveyor_metrics(world: World) -> None:
    url = next(s["url"] for s in world.status()["services"] if s["name"] == "web")
    # HAProxy must have been scraped once before the traffic, or its counters' first sample
    # already holds it and the rate over the window is 0.
    sel = f'project="{world.name}", service="web"'
    wait_for(
        lambda: world.query(f"haproxy_backend_http_requests_total{{{sel}}}"),
        "a first scrape of HAProxy's exporter",
    )
    # the agent reads HAProxy's access log for latency from its first pass on
    log_socket = ProjectPaths(world.compose, world.name).router_dir / "log.sock"
    wait_for(log_socket.exists, "the agent to read HAProxy's access log")
    wait_for(
        lambda: world.query(f"conveyor_http_request_duration_seconds_count{{{sel}}}"),
        "a first scrape of the agent's (empty) request histogram",
    )
    codes = [get(f"{url}/") for _ in range(40)] + [get(f"{url}/fail") for _ in range(10)]
    assert codes.count(200) == 40 and codes.count(501) == 10

    def scraped_all() -> bool:
        seen = world.query(f"sum(haproxy_backend_http_requests_total{{{sel}}})")
        return bool(seen) and float(seen[0]["value"][1]) >= 50

    wait_for(scraped_all, "Prometheus to scrape the 50 requests")
    wait_for(
        lambda: world.query(
            f'sum(http_request_duration_seconds_count{{{sel}, job="replicas"}}) >= 50'
        ),
        "the replicas' own histograms to be scraped",
    )
    # every request HAProxy served was timed from its access log, none twice
    timed = wait_for(
        lambda: world.query(f"sum(conveyor_http_request_duration_seconds_count{{{sel}}}) >= 50"),
        "the agent's histogram of HAProxy's access log to be scraped",
    )
    assert float(timed[0]["value"][1]) == 50

    report = json.loads(world.run("metrics", "web", "--json", "--window", "5m").stdout)

    (web,) = report["services"]
    assert web["service"] == "web"
    assert web["requests_per_second"] > 0
    # both counters are extrapolated alike over the same scrapes: the ratio is the traffic's
    assert web["error_ratio"] == pytest.approx(10 / 50, rel=0.02)
    assert web["latency"]["source"] == "haproxy-log"
    assert 0 < web["latency"]["p50"] <= web["latency"]["p95"] <= web["latency"]["p99"]
    assert web["latency"]["avg"] is not None  # HAProxy's average, alongside
    external = next(e for e in web["edges"] if e["edge"] == "external")
    assert external["requests_per_second"] > 0
    # the table form reads the same report
    table = world.run("metrics", "--window", "5m").stdout
    assert "web" in table and "20.00%" in table


def test_haproxy_series_carry_project_service_and_replica(world: World) -> None:
    sel = f'project="{world.name}", service="web"'
    replicas = {s["metric"]["replica"] for s in world.query(f"haproxy_server_status{{{sel}}}")}
    running = {r["name"] for s in world.status()["services"] for r in s["replicas"]}

    assert replicas == running
    frontends = world.query(f"haproxy_frontend_http_requests_total{{{sel}}}")
    assert {s["metric"]["edge"] for s in frontends} == {"external"}  # host networking: no address


def test_replicas_come_and_go_without_a_restart(world: World) -> None:
    pid = world.pid("prometheus")
    targets_file = world.metrics_dir / "prometheus" / "targets" / f"replicas-{world.name}.json"

    for count in (3, 1):
        world.write(replicas=count)
        world.run("deploy")
        names = {
            r["name"] for s in world.status()["services"] for r in s["replicas"] if r["running"]
        }
        listed = json.loads(targets_file.read_text())
        assert {g["labels"]["replica"] for g in listed} == names

        def seen(n: int = count) -> bool:
            up = [t for t in world.replica_targets() if t["health"] == "up"]
            return len(world.replica_targets()) == n and len(up) == n

        wait_for(seen, f"Prometheus to scrape {count} replicas")
        assert {t["labels"]["replica"] for t in world.replica_targets()} == names
    assert world.pid("prometheus") == pid  # no restart, no reload needed


def test_a_killed_prometheus_is_restarted_and_reported(world: World) -> None:
    before = world.component("prometheus")
    os.kill(before["pid"], signal.SIGKILL)  # the PID Conveyor started and recorded

    def back() -> bool:
        return world.pid("prometheus") != before["pid"] and world.ready()

    wait_for(back, "the agent to start Prometheus again")

    after = world.component("prometheus")
    assert after["healthy"] and after["pid"] not in (None, before["pid"])
    assert after["url"] == before["url"]
    db = world.root / ".conveyor" / world.name / "state.db"
    with sqlite3.connect(db, timeout=10) as con:
        rows = con.execute(
            "SELECT message FROM timeline WHERE kind = 'daemon.restarted'"
        ).fetchall()
    assert any("prometheus" in r[0] for r in rows), rows


def test_down_stops_what_only_the_project_needed(world: World) -> None:
    pids = [c["pid"] for c in world.status()["components"]]

    out = world.run("down")

    for name in ("prometheus", "alertmanager", "node-exporter"):
        assert f"{name} stopped" in out.stderr
    wait_for(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), "the daemons to exit")
    assert (world.metrics_dir / "prometheus" / "data").is_dir()  # the data stays
