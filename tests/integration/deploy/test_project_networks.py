"""Project networks on the real dockerd and HAProxy: two replicas of `web` both listening on
port 8000 (each in its own namespace), and a `caller` container reaching `web:8000` by name
through web's service address, where HAProxy balances over web's replicas; `db`, a TCP service
(a line protocol on 5432, like a database's), reached by name in HAProxy's TCP mode, drained
during a rollout until its sessions end.

Every network of the test is `internal` (no way out of the machine); test traffic goes to
127.0.0.1 (the published port) and, from the caller, to the containers the test created.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.load import LoadGenerator
from conveyor.testing.net import free_port

IMAGE = "python:3.11-slim-bookworm"

# A replica answers with its own name: the caller sees which replica served it.
SERVER = (
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        body = (os.environ['CONVEYOR_REPLICA'] + ' ' + os.environ['V']).encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "s = http.server.ThreadingHTTPServer((os.environ['HOST'], int(os.environ['PORT'])), H)\n"
    "s.daemon_threads = True\n"
    "s.serve_forever()\n"
)

# A TCP service: every line it reads is answered with the replica's name and version.
TCP_SERVER = (
    "import asyncio, os\n"
    "NAME = (os.environ['CONVEYOR_REPLICA'] + ' ' + os.environ['V'] + '\\n').encode()\n"
    "async def serve(r, w):\n"
    "    try:\n"
    "        while await r.readline():\n"
    "            w.write(NAME)\n"
    "            await w.drain()\n"
    "    except ConnectionError:\n"
    "        pass\n"
    "    w.close()\n"
    "async def main():\n"
    "    s = await asyncio.start_server(serve, os.environ['HOST'], int(os.environ['PORT']))\n"
    "    await s.serve_forever()\n"
    "asyncio.run(main())\n"
)

STACK = """\
services:
  web:
    image: {image}
    command: ["python3", "-c", {server}]
    environment: {{V: "{version}"}}
    deploy:
      replicas: 2
    stop_grace_period: 2s
    networks:
      default:
        aliases: [www]
    ports: ["127.0.0.1:{port}:8000"]
    x-conveyor: {{port: 8000, probe: /}}
  db:
    image: {image}
    command: ["python3", "-c", {tcp_server}]
    environment: {{V: "{version}"}}
    deploy:
      replicas: 2
    # a drain waits for sessions to end, up to this
    stop_grace_period: 60s
    expose: [5432]
  caller:
    image: {image}
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
networks:
  default:
    internal: true
"""

# Run inside the caller: GET each URL `n` times, print the bodies as JSON.
CALL = (
    "import json, sys, urllib.request\n"
    "bodies = [urllib.request.urlopen(u, timeout=5).read().decode()\n"
    "          for u in sys.argv[2:] for _ in range(int(sys.argv[1]))]\n"
    "print(json.dumps(bodies))\n"
)


# Run inside the caller: one line over each of `n` new connections to db:5432.
TCP_CALL = (
    "import json, socket, sys\n"
    "out = []\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    with socket.create_connection(('db', 5432), timeout=5) as s:\n"
    "        s.sendall(b'hi\\n')\n"
    "        out.append(s.makefile().readline().strip())\n"
    "print(json.dumps(out))\n"
)

# Run inside the caller: one session held open, a line every 0.2 s, until /tmp/release exists.
# Prints the first answer at once, then a JSON summary.
HOLD = (
    "import json, os, socket, sys, time\n"
    "s = socket.create_connection(('db', 5432), timeout=5)\n"
    "f = s.makefile()\n"
    "answers, failures = [], 0\n"
    "while True:\n"
    "    try:\n"
    "        s.sendall(b'ping\\n')\n"
    "        line = f.readline().strip()\n"
    "        if not line:\n"
    "            raise ConnectionError('closed')\n"
    "        answers.append(line)\n"
    "    except OSError:\n"
    "        failures += 1\n"
    "        break\n"
    "    if len(answers) == 1:\n"
    "        print(line, flush=True)\n"
    "    if os.path.exists('/tmp/release'):\n"
    "        break\n"
    "    time.sleep(0.2)\n"
    "s.close()\n"
    "print(json.dumps({'answers': sorted(set(answers)), 'failures': failures}), flush=True)\n"
)

# Run inside the caller: a new connection per request to db:5432 until /tmp/stop-load exists.
TCP_LOAD = (
    "import json, os, socket\n"
    "ok = failed = 0\n"
    "errors = {}\n"
    "while not os.path.exists('/tmp/stop-load'):\n"
    "    try:\n"
    "        with socket.create_connection(('db', 5432), timeout=5) as s:\n"
    "            s.sendall(b'hi\\n')\n"
    "            if not s.makefile().readline():\n"
    "                raise ConnectionError('closed before answering')\n"
    "        ok += 1\n"
    "    except OSError as e:\n"
    "        failed += 1\n"
    "        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1\n"
    "print(json.dumps({'ok': ok, 'failed': failed, 'errors': errors}), flush=True)\n"
)


@dataclass
class Project:
    root: Path
    name: str
    port: int

    @property
    def compose(self) -> Path:
        return self.root / "compose.yaml"

    def write(self, version: str) -> None:
        self.compose.write_text(
            STACK.format(
                image=IMAGE,
                server=json.dumps(SERVER),
                tcp_server=json.dumps(TCP_SERVER),
                version=version,
                port=self.port,
            )
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-f", str(self.compose), "-p", self.name, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"conveyor {' '.join(args)} -> {p.returncode}\n{p.stderr}")
        return p

    def status(self) -> dict[str, Any]:
        return json.loads(self.run("status", "--json").stdout)

    @property
    def caller(self) -> str:
        return f"{self.name}-caller-1-1"

    def in_caller(self, script: str, *args: str) -> str:
        return subprocess.run(
            ["docker", "exec", self.caller, "python3", "-c", script, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout

    def spawn_in_caller(self, script: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["docker", "exec", self.caller, "python3", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def journal(self) -> list[tuple[int, dict[str, Any], str, str | None]]:
        """(rollout, step, status, detail) of every journaled step."""
        db = self.root / ".conveyor" / self.name / "state.db"
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute(
                "SELECT rollout_id, step, status, detail FROM journal ORDER BY rollout_id, seq"
            ).fetchall()
        return [(int(r), json.loads(step), str(st), d) for r, step, st, d in rows]

    def call(self, n: int, *urls: str) -> list[str]:
        """GET each URL n times from inside the caller's replica."""
        out = subprocess.run(
            ["docker", "exec", f"{self.name}-caller-1-1", "python3", "-c", CALL, str(n), *urls],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return list(json.loads(out))


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def docker_json(*args: str) -> Any:
    return json.loads(docker(*args))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("net"), f"net-{uuid.uuid4().hex[:6]}", free_port())
    p.write("1")
    try:
        p.run("up", "--no-agent")
        yield p
    finally:
        down = p.run("down", check=False)
        left = docker("ps", "-aq", "--filter", f"label=io.conveyor.project={p.name}").split()
        if left:
            docker("rm", "-f", *left)
        nets = docker("network", "ls", "-q", "--filter", f"label=io.conveyor.project={p.name}")
        if nets.split():
            docker("network", "rm", *nets.split())
        assert down.returncode == 0, down.stderr
        assert not left, f"containers left after down: {left}"
        assert not nets.split(), "networks left after down"


def test_two_replicas_on_one_port_answer_the_caller_by_name(project: Project) -> None:
    st = project.status()
    web = next(s for s in st["services"] if s["name"] == "web")
    replicas = {r["name"]: r for r in web["replicas"]}
    assert len(replicas) == 2
    # both listen on 8000, each at its own address on the project network
    assert {r["port"] for r in replicas.values()} == {8000}
    assert len({r["address"] for r in replicas.values()}) == 2

    bodies = project.call(6, "http://web:8000/", "http://www:8000/")
    # the name and the alias reach HAProxy, which alternates between the two replicas
    assert {b.split()[0] for b in bodies} == set(replicas), bodies


def test_the_name_resolves_to_the_service_address_not_a_replica(project: Project) -> None:
    address = docker_json("inspect", f"{project.name}-web-address")[0]
    networks = address["NetworkSettings"]["Networks"]
    (network,) = networks
    assert network == f"{project.name}_default"
    assert {"web", "www"} <= set(networks[network]["Aliases"])
    resolved = subprocess.run(
        [
            "docker",
            "exec",
            f"{project.name}-caller-1-1",
            "python3",
            "-c",
            "import socket; print(socket.gethostbyname('web'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert resolved == networks[network]["IPAddress"]


def test_network_is_conveyors_internal_bridge_from_the_pool(project: Project) -> None:
    (net,) = docker_json("network", "inspect", f"{project.name}_default")
    assert net["Driver"] == "bridge" and net["Internal"] is True
    assert net["Labels"]["io.conveyor.project"] == project.name
    (config,) = net["IPAM"]["Config"]
    assert config["Subnet"].startswith("10.213.")


def test_published_port_on_loopback_balances_too(project: Project) -> None:
    res = LoadGenerator(
        project.port, "/", workers=2, max_requests=40, keep_bodies=True
    ).run_to_bound()
    assert res.failures == 0, (res.summary(), res.errors)
    assert len({b.split()[0] for b in res.bodies}) == 2, res.bodies


def test_rolling_update_serves_the_caller_throughout(project: Project) -> None:
    project.write("2")
    out = project.run("deploy")
    assert "service address" not in out.stderr  # the address stays: no new namespace
    bodies = project.call(4, "http://web:8000/")
    assert {b.split()[1] for b in bodies} == {"2"}, bodies
    project.write("1")
    project.run("deploy")


def test_killed_service_address_is_replaced_and_haproxy_rebound(project: Project) -> None:
    before = docker_json("inspect", f"{project.name}-web-address")[0]["Id"]
    docker("kill", f"{project.name}-web-address")
    out = project.run("deploy")  # the next command re-observes and repairs
    assert "web: start service address (not running)" in out.stderr, out.stderr
    after = docker_json("inspect", f"{project.name}-web-address")[0]["Id"]
    assert after != before
    bodies = project.call(4, "http://web:8000/")
    assert len(bodies) == 4


def test_tcp_service_by_name_in_tcp_mode(project: Project) -> None:
    answers = json.loads(project.in_caller(TCP_CALL, "8"))
    names = {a.split()[0] for a in answers}
    assert len(names) == 2 and all(n.startswith("db-") for n in names), answers
    st = project.status()
    db = next(s for s in st["services"] if s["name"] == "db")
    assert {r["port"] for r in db["replicas"]} == {5432}
    # its stable frontend on loopback speaks TCP, web's HTTP
    assert db["url"].startswith("tcp://127.0.0.1:"), db["url"]
    web = next(s for s in st["services"] if s["name"] == "web")
    assert web["url"] == f"http://127.0.0.1:{project.port}", web["url"]


def test_tcp_rollout_under_load_waits_for_a_held_session(project: Project) -> None:
    """New connections all the while and one long session: none fails. The drain of the
    session's replica ends because the session ended, not because its grace period ran out."""
    project.in_caller(
        "import pathlib; [pathlib.Path(p).unlink(missing_ok=True) "
        "for p in ('/tmp/release', '/tmp/stop-load')]"
    )
    holder = project.spawn_in_caller(HOLD)
    assert holder.stdout is not None
    held = holder.stdout.readline().split()[0]
    assert held.startswith("db-"), held
    load = project.spawn_in_caller(TCP_LOAD)
    before = {rid for rid, *_ in project.journal()}
    project.write("3")
    deploy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor",
            "-f",
            str(project.compose),
            "-p",
            project.name,
            "deploy",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # wait until the rollout drains the held session's replica, then let the session end
        deadline = time.monotonic() + 120
        while True:
            steps = [(s, st) for rid, s, st, _ in project.journal() if rid not in before]
            if any(s["kind"] == "drain" and s["replica"] == held for s, _ in steps):
                break
            assert deploy.poll() is None, deploy.communicate()
            assert time.monotonic() < deadline, steps
            time.sleep(0.1)
        time.sleep(1)  # the session keeps being answered while its replica drains
        project.in_caller("open('/tmp/release', 'w').close()")
        _, err = deploy.communicate(timeout=180)
        assert deploy.returncode == 0, err
    finally:
        project.in_caller("open('/tmp/stop-load', 'w').close()")
        if deploy.poll() is None:
            deploy.kill()
    summary = json.loads(holder.communicate(timeout=30)[0].splitlines()[-1])
    assert summary == {"answers": [f"{held} 1"], "failures": 0}, summary
    counts = json.loads(load.communicate(timeout=30)[0])
    assert counts["ok"] > 20 and counts["failed"] == 0, counts
    drains = [
        (st, detail)
        for rid, s, st, detail in project.journal()
        if rid not in before and s["kind"] == "drain" and s["replica"] == held
    ]
    assert drains == [("done", "no sessions left")], drains
    assert {a.split()[1] for a in json.loads(project.in_caller(TCP_CALL, "4"))} == {"3"}
    project.write("1")
    project.run("deploy")
