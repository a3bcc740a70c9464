"""The GitOps server runs Nagios for its environment and tells its notification channels
(issue 10, items 8-9), against the real `conveyor server`, dockerd, HAProxy and Nagios:

- with healing suspended (`conveyor suspend`: the server's agent role stops), every replica
  of `web` killed: its checks go CRITICAL and the webhook channel receives the problem;
  resumed, the server heals and the webhook receives the recovery;
- Nagios killed: the server starts it again and the webhook is told.

The webhook is a small HTTP server of the test's on loopback; one server, one Nagios for the
module, each stopped by its PID (the environment goes down with `conveyor down --force`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conveyor.deploy.project import ProjectPaths
from conveyor.host.process import pid_alive, read_pid
from conveyor.testing.net import free_port
from tests.integration.gitops.server_world import ServerWorld, conveyor

CONVEYOR_YAML = """\
environments:
  staging:
    branch: main
    poll_interval: 1h
notifications:
  webhook:
    url: http://127.0.0.1:{port}/chat
    events: [check.*, checks.*]
checks:
  interval: 1s
  retry_interval: 1s
  attempts: 2
"""


class Chat:
    """A Slack-style incoming webhook on loopback: keeps every message posted to it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[dict[str, Any]] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                chat.messages.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[str, str]]:
        """(event, first line) of each message, from its Event field and its text."""
        out = []
        for m in self.messages:
            fields = {f["title"]: f["value"] for f in m["attachments"][0]["fields"]}
            out.append((fields["Event"], m["text"].splitlines()[0]))
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def chat() -> Iterator[Chat]:
    c = Chat()
    yield c
    c.close()


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, chat: Chat
) -> Iterator[ServerWorld]:
    w = ServerWorld(
        tmp_path_factory.mktemp("checks-server"),
        base_image,
        f"chk{uuid.uuid4().hex[:5]}",
        conveyor_yaml=CONVEYOR_YAML.format(port=chat.port),
        env={"CONVEYOR_CHECKS": "on"},  # the test suite turns checks off by default
    )
    w.push("1")
    w.start()
    try:
        w.wait_for(lambda: w.serving() == "1", "the first deploy")
        yield w
    finally:
        nagios = nagios_pid(w)
        w.close(conveyor)  # stops the server, then `down --force` stops Nagios by its PID
        if nagios is not None and pid_alive(nagios):
            os.kill(nagios, signal.SIGKILL)


def paths(w: ServerWorld) -> ProjectPaths:
    return ProjectPaths((w.work / "compose.yaml").resolve(), w.project)


def nagios_pid(w: ServerWorld) -> int | None:
    pid = read_pid(paths(w).run_dir / "nagios" / "var" / "nagios.lock")
    return pid if pid is not None and pid_alive(pid) else None


def checks(w: ServerWorld) -> dict[str, dict[str, Any]]:
    done = conveyor(
        "-f", str(w.work / "compose.yaml"), "-p", w.project, "checks", "--json", cwd=w.work
    )
    assert done.returncode == 0, done.stderr
    return {c["check"]: c for c in json.loads(done.stdout)["checks"] if c["check"]}


def act(w: ServerWorld, token: str, *args: str) -> None:
    done = conveyor(*args, cwd=w.root, env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": token})
    assert done.returncode == 0, done.stderr


def test_a_service_down_reaches_the_channels_and_so_does_its_recovery(
    world: ServerWorld, chat: Chat
) -> None:
    w = world
    web_http = f"web http 127.0.0.1:{w.port}"
    w.wait_for(
        lambda: (c := checks(w)).get(web_http, {}).get("state") == "OK" and c,
        "Nagios to check the environment",
    )
    deployer = w.token("deployer")
    act(w, deployer, "suspend", "staging")  # nothing heals while suspended
    replicas = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=io.conveyor.project={w.project}",
         "--filter", "label=io.conveyor.replica"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert replicas
    fault = time.monotonic()
    subprocess.run(["docker", "kill", *replicas], capture_output=True, check=True)
    problem = w.wait_for(
        lambda: [
            e for e in chat.events() if e == ("check.problem", f"*staging: {web_http} is CRITICAL*")
        ],
        "the problem in the chat",
    )
    print(f"\nweb down -> the chat was told in {time.monotonic() - fault:.1f}s")
    assert problem
    assert checks(w)[web_http]["state"] == "CRITICAL"
    act(w, deployer, "resume", "staging")
    w.wait_for(
        lambda: ("check.recovered", f"*staging: {web_http} is OK again*") in chat.events(),
        "the recovery in the chat",
    )
    assert w.serving() == "1"
    told = [e for e in chat.events() if web_http in e[1]]
    assert [e[0] for e in told] == ["check.problem", "check.recovered"]  # once each


def test_nagios_killed_is_restarted_by_the_server_and_the_chat_told(
    world: ServerWorld, chat: Chat
) -> None:
    pid = nagios_pid(world)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    world.wait_for(
        lambda: any(e[0] == "checks.restarted" for e in chat.events()), "the restart in the chat"
    )
    new = world.wait_for(lambda: nagios_pid(world), "a new Nagios")
    assert new != pid
