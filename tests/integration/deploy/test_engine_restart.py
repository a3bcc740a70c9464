"""A restart of the Docker Engine under load loses no request: dockerd runs with live-restore
(its replicas keep running), HAProxy keeps serving them, and the agent replaces nothing while
the engine is away and re-observes once it is back.

The test starts a dockerd of its own (own data root, exec root, socket and PID file; no bridge,
no iptables) and restarts that one, never the machine's shared daemon. North-south load goes to
the published port on 127.0.0.1; east-west load runs in a container of the project calling
`web:8000` by name. Every network is internal.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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

SERVER = (
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def do_GET(self):\n"
    "        body = os.environ['CONVEYOR_REPLICA'].encode()\n"
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

# East-west load: a new connection per request to web:8000 (a name lookup each time) until
# /out/stop exists; then the counts go to /out/result.json.
CALLER = (
    "import json, os, time, urllib.request\n"
    "ok = failed = 0\n"
    "errors = {}\n"
    "while not os.path.exists('/out/stop'):\n"
    "    try:\n"
    "        urllib.request.urlopen('http://web:8000/', timeout=5).read()\n"
    "        ok += 1\n"
    "    except Exception as e:\n"
    "        failed += 1\n"
    "        errors[repr(e)[:80]] = errors.get(repr(e)[:80], 0) + 1\n"
    "    time.sleep(0.01)\n"
    "json.dump({'ok': ok, 'failed': failed, 'errors': errors}, open('/out/result.tmp', 'w'))\n"
    "os.replace('/out/result.tmp', '/out/result.json')\n"
    "time.sleep(3600)\n"
)

STACK = """\
services:
  web:
    image: {image}
    command: ["python3", "-c", {server}]
    deploy:
      replicas: 2
    stop_grace_period: 2s
    ports: ["127.0.0.1:{port}:8000"]
    x-conveyor: {{port: 8000, probe: /}}
  caller:
    image: {image}
    command: ["python3", "-c", {caller}]
    depends_on:
      web: {{condition: service_healthy}}
    volumes: ["./out:/out"]
    stop_signal: SIGKILL
networks:
  default:
    internal: true
"""


@dataclass
class Dockerd:
    """A dockerd of the test's own, restarted and stopped by its PID."""

    root: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    def argv(self) -> list[str]:
        return [
            "dockerd",
            "--data-root", str(self.root / "data"),
            "--exec-root", str(self.root / "exec"),
            "-H", self.socket,
            "--pidfile", str(self.root / "dockerd.pid"),
            "--bridge=none", "--iptables=false", "--ip-masq=false",
            # Its own config file, as `conveyor bootstrap` writes it: the host's
            # /etc/docker/daemon.json may set live-restore too, and dockerd refuses a
            # directive given both as a flag and in the file.
            "--config-file", str(self.config_file()),
        ]  # fmt: skip

    def config_file(self) -> Path:
        path = self.root / "daemon.json"
        path.write_text('{"live-restore": true}\n')
        return path

    def docker(self, *args: str, check: bool = True) -> str:
        return subprocess.run(
            ["docker", "-H", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        ).stdout

    def answers(self) -> bool:
        probe = ["docker", "-H", self.socket, "info"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    def start(self) -> None:
        with (self.root / "dockerd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while not self.answers():
            assert self.proc.poll() is None, (self.root / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the test's dockerd did not answer"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self.proc = None

    def containerd_pid(self) -> int | None:
        try:
            return int((self.root / "exec" / "containerd" / "containerd.pid").read_text())
        except (OSError, ValueError):
            return None


@pytest.fixture
def dockerd2(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Dockerd]:
    # a short root: the socket path and HAProxy's namespace links stay well within limits
    d = Dockerd(Path(f"/tmp/cvd-{uuid.uuid4().hex[:6]}"))
    d.root.mkdir()
    try:
        d.start()
        saved = subprocess.Popen(["docker", "save", base_image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", d.socket, "load", "-q"], stdin=saved.stdout, check=True, timeout=300
        )
        saved.wait(timeout=60)
        yield d
    finally:
        if d.answers():
            left = d.docker("ps", "-aq", check=False).split()
            if left:
                d.docker("rm", "-f", *left, check=False)
        d.stop()
        containerd = d.containerd_pid()
        if containerd is not None:  # with live-restore it may outlive dockerd
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd, signal.SIGTERM)
        # dockerd binds its data root onto itself and may leave that mount behind
        data = d.root / "data"
        if f" {data} " in Path("/proc/self/mounts").read_text():
            subprocess.run(["umount", str(data)], capture_output=True, check=False)
        if str(d.root) not in Path("/proc/self/mounts").read_text():
            shutil.rmtree(d.root, ignore_errors=True)  # never deleted through a mount


def test_dockerd_restart_under_load_loses_no_request(dockerd2: Dockerd, tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "out").mkdir()
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        STACK.format(image=IMAGE, server=json.dumps(SERVER), caller=json.dumps(CALLER), port=port)
    )
    project = f"restart-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DOCKER_HOST": dockerd2.socket}

    def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-f", str(compose), "-p", project, *args]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=300, env=env, check=False
        )

    def history() -> dict[str, Any]:
        return json.loads(conveyor("history", "--json").stdout)

    up = conveyor("up")  # with the agent: it must not replace anything while dockerd is away
    try:
        assert up.returncode == 0, up.stderr
        before = sorted(dockerd2.docker("ps", "-q", "--no-trunc").split())
        with LoadGenerator(port, "/", workers=4, max_seconds=120) as load:
            time.sleep(2)
            dockerd2.stop()
            assert not dockerd2.answers()
            time.sleep(2)  # the engine stays away a while; HAProxy keeps serving
            dockerd2.start()
            time.sleep(4)  # the agent re-observes and settles
            (tmp_path / "out" / "stop").touch()
            deadline = time.monotonic() + 30
            while not (tmp_path / "out" / "result.json").exists():
                assert time.monotonic() < deadline, "the caller did not report"
                time.sleep(0.2)
        north_south = load.result
        east_west = json.loads((tmp_path / "out" / "result.json").read_text())

        assert north_south.failures == 0, (north_south.summary(), north_south.errors)
        assert north_south.requests > 100, north_south.summary()
        assert east_west["failed"] == 0 and east_west["ok"] > 100, east_west
        # the same containers ran throughout: none was replaced
        assert sorted(dockerd2.docker("ps", "-q", "--no-trunc").split()) == before
        assert [r for r in history()["rollouts"] if r["kind"] == "heal"] == []
        agent_log = (tmp_path / ".conveyor" / project / "agent.log").read_text()
        assert "engine.away" in agent_log and "engine.back" in agent_log, agent_log[-3000:]
    finally:
        down = conveyor("down")
        assert down.returncode == 0, down.stderr
