"""Time from a fault to its notification: every replica of a service killed, until a chat
webhook receives Nagios's PROBLEM through `conveyor server`'s notification channel; then the
service restored, until the webhook receives the RECOVERY.

Set-up: a bare repository holding a one-service compose app on the prebuilt base image (two
replicas, published on 127.0.0.1), a trivial `.gitlab-ci.yml`, and a `conveyor.yaml` with a
webhook channel to a small HTTP server of this script's (loopback) and `checks:` at Conveyor's
defaults (a check every 10 s, retried every 2 s, a problem after 3 failing checks) unless
`--fast` (1 s, 1 s, 2). A `conveyor server --executor shell` on loopback deploys it and runs
Nagios for the environment.

Each run: the environment is suspended (nothing heals), the replicas are killed with
`docker kill`, the clock runs until the webhook receives `check.problem` for the service's HTTP
check; then the environment is resumed (the server heals it) and the clock runs until the
webhook receives `check.recovered`. Prints each run and the medians, with where the time goes:
Nagios's own share (the PROBLEM written to its spool: check interval + retries) and the rest
(the server's heal pass forwarding it every 5 s, the channel's delivery).

    .venv/bin/python bench/fault_to_alert.py [--runs 3] [--fast]

Target (issue 10): <= 30 s from a service down to its notification. The script prints the
figures; it does not judge them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from common import ROOT  # noqa: F401 — puts src/ on sys.path

from conveyor.deploy.project import ProjectPaths
from conveyor.host.process import pid_alive, read_pid
from conveyor.testing.net import free_port

T = TypeVar("T")
NAME = "f2a"  # the repository's name: the environment runs as project f2a-staging
BASE_IMAGE = "python:3.11-slim-bookworm"
SERVER = (
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)
COMPOSE = """\
services:
  web:
    image: {image}
    command: ["python3", "-c", {server}]
    deploy: {{replicas: 2}}
    ports: ["127.0.0.1:{port}:8000"]
    stop_grace_period: 1s
    x-conveyor: {{port: 8000, probe: /}}
networks:
  default:
    internal: true
"""
CONVEYOR = """\
environments:
  staging: {{branch: main, poll_interval: 1h}}
notifications:
  webhook: {{url: "http://127.0.0.1:{port}/chat", events: [check.*]}}
{checks}"""
FAST = "checks: {interval: 1s, retry_interval: 1s, attempts: 2}\n"


def git(repo: Path, *args: str) -> str:
    env = os.environ | {
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def wait(what: str, probe: Callable[[], T | None], timeout: float = 300) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Chat:
    """The webhook: (monotonic time received, message) of each POST."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[float, dict[str, Any]]] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                chat.received.append((time.monotonic(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def first(self, event: str, text: str, after: float) -> float | None:
        for when, message in self.received:
            fields = {f["title"]: f["value"] for f in message["attachments"][0]["fields"]}
            if when >= after and fields["Event"] == event and text in message["text"]:
                return when
        return None


class Bench:
    def __init__(self, root: Path, chat: Chat, fast: bool) -> None:
        self.root, self.chat = root, chat
        self.bare, self.repo, self.data = root / f"{NAME}.git", root / "clone", root / "data"
        self.port, self.api_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        subprocess.run(
            ["git", "clone", "-q", str(self.bare), str(self.repo)], check=True, capture_output=True
        )
        git(self.repo, "checkout", "-q", "-b", "main")
        (self.repo / "conveyor.yaml").write_text(
            CONVEYOR.format(port=chat.port, checks=FAST if fast else "")
        )
        (self.repo / ".gitlab-ci.yml").write_text("test:\n  script:\n    - test -f compose.yaml\n")
        (self.repo / "compose.yaml").write_text(
            COMPOSE.format(image=BASE_IMAGE, server=json.dumps(SERVER), port=self.port)
        )
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", "app")
        git(self.repo, "push", "-q", "origin", "main")

    @property
    def work(self) -> Path:
        return self.data / "environments" / "staging" / NAME

    def conveyor(self, *args: str, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=os.environ | (env or {}),
        )
        if done.returncode != 0:
            raise SystemExit(f"conveyor {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "server", "--source", str(self.bare),
             "--listen", f"127.0.0.1:{self.api_port}", "--data", str(self.data),
             "--executor", "shell"],
            cwd=self.root,
            env=os.environ | {"CONVEYOR_CHECKS": "on", "XDG_STATE_HOME": str(self.root / "xdg")},
            stdout=(self.root / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        token = self.conveyor("token", "create", "--role", "deployer", "--data", str(self.data))
        self.env = {"CONVEYOR_SERVER": self.url, "CONVEYOR_TOKEN": token.splitlines()[-1]}
        wait(
            "the first deploy", lambda: self.checks().get(self.http_check, {}).get("state") == "OK"
        )

    @property
    def http_check(self) -> str:
        return f"web http 127.0.0.1:{self.port}"

    def checks(self) -> dict[str, Any]:
        if not (self.work / "compose.yaml").exists():
            return {}
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", "-f", str(self.work / "compose.yaml"),
             "-p", f"{NAME}-staging", "checks", "--json"],
            cwd=self.work, capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            return {}
        return {c["check"]: c for c in json.loads(done.stdout)["checks"] if c["check"]}

    def replicas(self) -> list[str]:
        return subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=io.conveyor.project={NAME}-staging",
             "--filter", "label=io.conveyor.replica"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip

    def spool(self) -> Path:
        paths = ProjectPaths((self.work / "compose.yaml").resolve(), f"{NAME}-staging")
        return paths.run_dir / "nagios" / "notify"

    def run(self) -> tuple[float, float, float]:
        """(fault -> Nagios's PROBLEM written, fault -> chat told, restore -> chat told)."""
        self.conveyor("suspend", "staging", env=self.env)
        replicas = self.replicas()
        wall, fault = time.time(), time.monotonic()
        subprocess.run(["docker", "kill", *replicas], capture_output=True, check=True)
        problem = wait(
            "the problem in the chat",
            lambda: self.chat.first("check.problem", self.http_check, fault),
        )
        nagios = self.nagios_written(wall)
        restore = time.monotonic()
        self.conveyor("resume", "staging", env=self.env)
        recovered = wait(
            "the recovery in the chat",
            lambda: self.chat.first("check.recovered", self.http_check, restore),
        )
        return nagios, problem - fault, recovered - restore

    def nagios_written(self, since: float) -> float:
        """Seconds from `since` (wall clock) until Nagios's notification command wrote the
        PROBLEM: the `check.changed` event the server recorded carries that time."""
        state = ProjectPaths((self.work / "compose.yaml").resolve(), f"{NAME}-staging").state_dir
        db = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True, timeout=30)
        try:
            rows = db.execute(
                "SELECT data FROM timeline WHERE kind = 'check.changed' AND ts >= ? ORDER BY id",
                (since,),
            ).fetchall()
        finally:
            db.close()
        for (raw,) in rows:
            data = json.loads(raw)
            if data.get("check") == self.http_check and data.get("type") == "PROBLEM":
                return float(data["written"]) - since
        return float("nan")

    def stop(self) -> None:
        nagios = read_pid(self.spool().parent / "var" / "nagios.lock")
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if (self.work / "compose.yaml").exists():
            subprocess.run(
                [sys.executable, "-m", "conveyor", "-f", str(self.work / "compose.yaml"),
                 "-p", f"{NAME}-staging", "down", "--force"],
                cwd=self.work, capture_output=True, check=False, timeout=300,
                env=os.environ | {"XDG_STATE_HOME": str(self.root / "xdg")},
            )  # fmt: skip
        if nagios is not None and pid_alive(nagios):
            os.kill(nagios, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fast", action="store_true", help="checks every 1 s, 2 attempts")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="f2a-"))
    chat = Chat()
    bench = Bench(root, chat, args.fast)
    figures: list[tuple[float, float, float]] = []
    try:
        bench.start()
        timing = "fast (1s, 1s, 2 attempts)" if args.fast else "defaults (10s, 2s, 3 attempts)"
        print(f"checks: {timing}; the server's heal pass forwards every 5 s")
        for n in range(1, args.runs + 1):
            nagios, told, recovered = bench.run()
            figures.append((nagios, told, recovered))
            print(
                f"run {n}: service down -> notified {told:.1f}s (Nagios's PROBLEM after "
                f"{nagios:.1f}s); restored -> recovery notified {recovered:.1f}s"
            )
        nag, told, rec = (statistics.median(f[i] for f in figures) for i in range(3))
        print(
            f"median of {len(figures)}: service down -> notified {told:.1f}s "
            f"(Nagios {nag:.1f}s, forwarding and delivery {told - nag:.1f}s); "
            f"restored -> recovery notified {rec:.1f}s"
        )
    finally:
        bench.stop()
        chat.server.shutdown()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
