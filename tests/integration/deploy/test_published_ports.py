"""Published ports as Compose writes them, on the real dockerd and HAProxy: several per service,
short and long syntax, a range, the host IP honoured (127.0.0.1 here), each through HAProxy to
every replica; and UDP, which HAProxy cannot carry, published by Docker from the one replica.

Test traffic goes to 127.0.0.1 only. The UDP service also sits on a network that is not
internal, because Docker publishes nothing of a container that is only on internal ones; it
only answers what it receives.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor.testing.net import free_port

IMAGE = "python:3.11-slim-bookworm"

# Answers on four ports with "<port> <replica>".
MULTI = (
    "import os, threading, http.server\n"
    "def serve(port):\n"
    "    class H(http.server.BaseHTTPRequestHandler):\n"
    "        def do_GET(self):\n"
    "            body = f\"{port} {os.environ['CONVEYOR_REPLICA']}\".encode()\n"
    "            self.send_response(200)\n"
    "            self.send_header('Content-Length', str(len(body)))\n"
    "            self.end_headers()\n"
    "            self.wfile.write(body)\n"
    "        def log_message(self, *a):\n"
    "            pass\n"
    "    http.server.ThreadingHTTPServer((os.environ['HOST'], port), H).serve_forever()\n"
    "for p in (8001, 9000, 9001):\n"
    "    threading.Thread(target=serve, args=(p,), daemon=True).start()\n"
    "serve(8000)\n"
)

UDP_ECHO = (
    "import os, socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('0.0.0.0', 5353))\n"
    "while True:\n"
    "    data, peer = s.recvfrom(512)\n"
    "    s.sendto(os.environ['V'].encode() + b' ' + data, peer)\n"
)

STACK = """\
services:
  multi:
    image: {image}
    command: ["python3", "-c", {multi}]
    deploy:
      replicas: 2
    stop_grace_period: 1s
    ports:
      - "127.0.0.1:{p1}:8000"
      - target: 8001
        published: "{p2}"
        host_ip: 127.0.0.1
        app_protocol: http
      - "127.0.0.1:{p3}-{p4}:9000-9001"
    x-conveyor: {{port: 8000, probe: /}}
  echo:
    image: {image}
    command: ["python3", "-c", {echo}]
    environment: {{V: "{version}"}}
    stop_grace_period: 1s
    ports: ["127.0.0.1:{u}:5353/udp"]
    networks: [default, edge]
networks:
  default:
    internal: true
  edge: {{}}
"""


def free_pair() -> tuple[int, int]:
    """Two consecutive free ports (a published range)."""
    for _ in range(200):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p, p + 1
    raise AssertionError("no two consecutive free ports")


def udp_ask(port: int, message: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(message, ("127.0.0.1", port))
        return s.recvfrom(512)[0]


@dataclass
class Published:
    root: Path
    name: str
    ports: dict[str, int]

    @property
    def compose(self) -> Path:
        return self.root / "compose.yaml"

    def write(self, version: str) -> None:
        self.compose.write_text(
            STACK.format(
                image=IMAGE,
                multi=json.dumps(MULTI),
                echo=json.dumps(UDP_ECHO),
                version=version,
                **self.ports,
            )
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-f", str(self.compose), "-p", self.name, *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert p.returncode == 0, f"conveyor {' '.join(args)} -> {p.returncode}\n{p.stderr}"
        return p


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[Published]:
    p3, p4 = free_pair()
    ports = {"p1": free_port(), "p2": free_port(), "p3": p3, "p4": p4, "u": free_port()}
    p = Published(tmp_path_factory.mktemp("ports"), f"ports-{uuid.uuid4().hex[:6]}", ports)
    p.write("1")
    p.run("up", "--no-agent")
    try:
        yield p
    finally:
        p.run("down")


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
        return str(resp.read().decode())


def test_every_published_port_reaches_its_target_on_every_replica(published: Published) -> None:
    ports = published.ports
    for host_port, target in ((ports["p1"], 8000), (ports["p2"], 8001), (ports["p3"], 9000)):
        answers = {get(host_port) for _ in range(8)}
        assert {a.split()[0] for a in answers} == {str(target)}, answers
        assert len({a.split()[1] for a in answers}) == 2, answers  # both replicas
    assert get(ports["p4"]).split()[0] == "9001"


def test_udp_is_published_by_docker_from_the_one_replica(published: Published) -> None:
    assert udp_ask(published.ports["u"], b"ping") == b"1 ping"


def test_a_udp_service_is_replaced_stop_first(published: Published) -> None:
    published.write("2")
    plan = json.loads(published.run("plan", "--json").stdout)
    kinds = [(s["kind"], s["service"]) for s in plan["steps"] if s["service"] == "echo"]
    # the new replica cannot hold the host's UDP port beside the old one
    assert kinds[:2] == [("stop", "echo"), ("start", "echo")], kinds
    assert any("stop-first with one replica" in n for n in plan["notes"]), plan["notes"]
    published.run("deploy")
    assert udp_ask(published.ports["u"], b"again") == b"2 again"
