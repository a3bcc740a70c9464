"""Fault tests of the infrastructure checks (issue 10, items 8-9) on the real dockerd, HAProxy
and Nagios, driven through the `conveyor` command as a user would:

- `conveyor up` starts Nagios with checks derived from the stack (the published HTTP frontend,
  the service addresses on the project network, a TCP service, HAProxy backends, the host);
- every replica of `web` killed with the agent stopped (nothing heals): its HTTP checks go
  CRITICAL and Nagios notifies; the agent, started again, heals, forwards the problem and
  then the recovery as `check.changed` events (which the server's channels send);
- `conveyor checks downtime` puts a service's checks in a downtime;
- Nagios killed: the agent starts it again and reports it (`checks.restarted`);
- `conveyor up --no-checks` stops Nagios and starts the agent without checks; `up` brings
  them back; `conveyor down` stops Nagios.

One project and one Nagios for the module; every process is stopped by its PID. Every network
is `internal`; test traffic goes to 127.0.0.1 and to the project's own service addresses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from conveyor.deploy.project import ProjectPaths
from conveyor.gitops.notify import notification
from conveyor.host.process import pid_alive, read_pid
from conveyor.model.events import Event, Subject
from conveyor.testing.net import free_port

IMAGE = "python:3.11-slim-bookworm"
T = TypeVar("T")

SERVER = (
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "http.server.ThreadingHTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H)"
    ".serve_forever()\n"
)
TCP_SERVER = (
    "import os, socketserver\n"
    "class H(socketserver.StreamRequestHandler):\n"
    "    def handle(self):\n"
    "        self.wfile.write(b'hi\\n')\n"
    "socketserver.ThreadingTCPServer((os.environ['HOST'], int(os.environ['PORT'])), H)"
    ".serve_forever()\n"
)
STACK = """\
services:
  web:
    image: {image}
    command: ["python3", "-c", {server}]
    deploy:
      replicas: 2
    stop_grace_period: 1s
    ports: ["127.0.0.1:{port}:8000"]
    x-conveyor: {{port: 8000, probe: /}}
  db:
    image: {image}
    command: ["python3", "-c", {tcp_server}]
    stop_grace_period: 1s
    expose: [5432]
networks:
  default:
    internal: true
"""

# Fast checks: a problem is confirmed by two failing checks one second apart.
ENV = {
    "CONVEYOR_CHECKS": "on",
    "CONVEYOR_CHECK_INTERVAL": "1s",
    "CONVEYOR_CHECK_RETRY_INTERVAL": "1s",
    "CONVEYOR_CHECK_ATTEMPTS": "2",
}


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class World:
    dir: Path
    project: str
    port: int

    @property
    def compose(self) -> Path:
        return self.dir / "compose.yaml"

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.compose, self.project)

    def conveyor(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-f", str(self.compose), "-p", self.project]
        proc = subprocess.run(
            [*cmd, *args],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, **ENV},
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def checks(self) -> dict[str, dict[str, Any]]:
        view = json.loads(self.conveyor("checks", "--json").stdout)
        return {c["check"]: c for c in view["checks"] if c["check"] is not None}

    def nagios_pid(self) -> int | None:
        pid = read_pid(self.paths.run_dir / "nagios" / "var" / "nagios.lock")
        return pid if pid is not None and pid_alive(pid) else None

    def agent_pid(self) -> int | None:
        pid = read_pid(self.paths.agent_pid_file)
        return pid if pid is not None and pid_alive(pid) else None

    def stop_agent(self) -> None:
        pid = self.agent_pid()
        assert pid is not None, "the agent should run"
        os.kill(pid, signal.SIGTERM)
        wait_for("the agent to stop", lambda: self.agent_pid() is None)

    def replicas(self, service: str) -> list[str]:
        out = subprocess.run(
            [
                "docker",
                "ps",
                "-q",
                "--filter",
                f"label=io.conveyor.project={self.project}",
                "--filter",
                f"label=io.conveyor.service={service}",
                "--filter",
                "label=io.conveyor.replica",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split()

    def events(self, kind: str, after: int = 0) -> list[Event]:
        db = self.paths.state_dir / "state.db"
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            rows = conn.execute(
                "SELECT id, ts, kind, level, message, service, data FROM timeline "
                "WHERE kind = ? AND id > ? ORDER BY id",
                (kind, after),
            ).fetchall()
        return [
            Event(
                id=r[0],
                ts=r[1],
                kind=r[2],
                level=r[3],
                message=r[4],
                subject=Subject(project=self.project, service=r[5]),
                data=json.loads(r[6] or "{}"),
            )
            for r in rows
        ]

    def last_event_id(self) -> int:
        db = self.paths.state_dir / "state.db"
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM timeline").fetchone()[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[World]:
    w = World(
        dir=tmp_path_factory.mktemp("checks"),
        project=f"chk-{uuid.uuid4().hex[:6]}",
        port=free_port(),
    )
    w.compose.write_text(
        STACK.format(
            image=IMAGE,
            server=json.dumps(SERVER),
            tcp_server=json.dumps(TCP_SERVER),
            port=w.port,
        )
    )
    try:
        w.conveyor("up")
        yield w
    finally:
        nagios, agent = w.nagios_pid(), w.agent_pid()
        w.conveyor("down", check=False)  # stops the agent and Nagios by their PIDs
        for pid in (agent, nagios):
            if pid is not None and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_up_checks_what_the_stack_serves(world: World) -> None:
    assert world.nagios_pid() is not None
    checks = wait_for(
        "every check of web and db to pass",
        lambda: (
            c
            if (c := world.checks())
            and all(v["state"] == "OK" for v in c.values() if v["service"] in ("web", "db"))
            else None
        ),
    )
    web = {n: c for n, c in checks.items() if c["service"] == "web"}
    kinds = sorted(c["kind"] for c in web.values())
    # the published port (here the stable frontend too), the service address, the backend
    assert kinds == ["haproxy", "http", "http"], web
    assert f"web http 127.0.0.1:{world.port}" in web
    (address,) = [n for n in web if n.startswith("web address http ")]
    assert address.endswith(":8000")
    db = {n: c["kind"] for n, c in checks.items() if c["service"] == "db"}
    assert sorted(db.values()) == ["haproxy", "tcp", "tcp"]
    assert any(n.startswith("db address tcp ") and n.endswith(":5432") for n in db)
    assert {"docker", "load", "memory", "disk /"} <= set(checks)
    assert checks["docker"]["state"] == "OK", checks["docker"]["output"]
    status = json.loads(world.conveyor("status", "--json").stdout)
    assert status["checks"]["running"] and status["checks"]["pid"] == world.nagios_pid()
    assert "checks: Nagios running" in world.conveyor("status").stdout


def test_a_service_down_is_notified_and_so_is_its_recovery(world: World) -> None:
    web_http = f"web http 127.0.0.1:{world.port}"
    since = world.last_event_id()
    world.stop_agent()  # nothing heals: the outage lasts
    spool = world.paths.run_dir / "nagios" / "notify"
    fault = time.time()
    subprocess.run(["docker", "kill", *world.replicas("web")], capture_output=True, check=True)

    def problem() -> dict[str, Any] | None:
        for f in sorted(spool.glob("*.json")):
            record: dict[str, Any] = json.loads(f.read_text())
            if record["check"] == web_http and record["type"] == "PROBLEM":
                return record
        return None

    record = wait_for("Nagios to notify the problem", problem)
    assert record["state"] == "CRITICAL" and record["service"] == "web"
    print(f"\nweb down -> Nagios notified in {record['written'] - fault:.1f}s")
    critical = world.checks()[web_http]
    assert (critical["state"], critical["state_type"]) == ("CRITICAL", "hard")

    world.conveyor("up")  # heals web and starts the agent again, which forwards

    def recovered() -> list[Event] | None:
        mine = [e for e in world.events("check.changed", since) if e.data["check"] == web_http]
        return mine if any(e.data["type"] == "RECOVERY" for e in mine) else None

    mine = wait_for("the recovery to be forwarded", recovered)
    assert [e.data["type"] for e in mine] == ["PROBLEM", "RECOVERY"]
    assert mine[0].subject.service == "web" and mine[0].level == "error"
    # what the server's channels would send for them
    sent = [notification(e) for e in mine]
    assert [(n.topic, n.state) for n in sent if n is not None] == [
        ("check.problem", "failed"),
        ("check.recovered", "success"),
    ]
    assert not list(spool.glob("*.json"))  # forwarded, then removed
    assert world.checks()[web_http]["state"] == "OK"


def test_a_downtime_is_scheduled_for_a_service(world: World) -> None:
    out = world.conveyor("checks", "downtime", "web", "--for", "1h", "--comment", "upgrade")
    assert "downtime until" in out.stdout and "(sent;" not in out.stdout
    view = json.loads(world.conveyor("checks", "--json").stdout)
    web = [c for c in view["checks"] if c["service"] == "web"]
    assert web and all(c["in_downtime"] for c in web)
    assert not any(c["in_downtime"] for c in view["checks"] if c["service"] == "db")
    assert {d["comment"] for d in view["downtimes"]} == {"upgrade"}
    missing = world.conveyor("checks", "downtime", "nosuch", check=False)
    assert missing.returncode == 1
    assert "no check, service or host named 'nosuch'" in missing.stderr


def test_nagios_killed_is_restarted_by_the_agent_and_reported(world: World) -> None:
    pid = world.nagios_pid()
    assert pid is not None and world.agent_pid() is not None
    since = world.last_event_id()
    os.kill(pid, signal.SIGKILL)
    restarted = wait_for("checks.restarted", lambda: world.events("checks.restarted", since))
    assert f"Nagios (PID {pid}) was not running" in restarted[0].message
    new = wait_for("the new Nagios", world.nagios_pid)
    assert new != pid
    told = notification(restarted[0])
    assert told is not None and told.topic == "checks.restarted"
    assert "memory" in wait_for("checks after the restart", world.checks)


def agent_args(world: World) -> list[str]:
    pid = world.agent_pid()
    assert pid is not None
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]


def test_no_checks_turns_them_off_and_down_stops_nagios(world: World) -> None:
    pid = world.nagios_pid()
    assert pid is not None
    world.conveyor("up", "--no-checks")
    assert not pid_alive(pid)
    assert "--no-checks" in agent_args(world)  # the agent was started again without checks
    status = json.loads(world.conveyor("status", "--json").stdout)
    assert status["checks"]["enabled"] is False and status["checks"]["running"] is False
    assert "checks: Nagios off" in world.conveyor("status").stdout
    world.conveyor("up")  # on again: Nagios, and an agent that keeps it
    assert world.nagios_pid() is not None
    assert "--no-checks" not in agent_args(world)
    pid = world.nagios_pid()
    assert pid is not None
    out = world.conveyor("down")
    assert "Nagios stopped" in out.stderr
    assert not pid_alive(pid)
    view = json.loads(world.conveyor("checks", "--json").stdout)
    assert not view["nagios"]["running"] and not view["nagios"]["enabled"]
