"""git push → pipeline → release → rollout, by the real `conveyor server` process: a bare
repository holding a one-service compose app, its `.gitlab-ci.yml` (shell executor) and
`conveyor.yaml`. The server brings `staging` to `main` at start; a push followed by a signed
generic webhook brings the new commit in; a push whose pipeline fails is not deployed and the
previous release keeps serving; a wrong webhook secret gets 401.

The app's network is `internal`, its port published on 127.0.0.1; the fixture records the
server's PID, stops it with SIGTERM, and takes the environment down by its project name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.testing.net import free_port

SECRET = "sync-secret"

SERVER = (
    "import os, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['V'].encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)

COMPOSE = """\
services:
  web:
    image: {image}
    command: ["python3", "-c", {server}]
    environment: {{V: "{version}"}}
    ports: ["127.0.0.1:{port}:8000"]
    stop_grace_period: 2s
    x-conveyor: {{port: 8000, probe: /}}
networks:
  default:
    internal: true
"""

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h   # the webhook makes it immediate
"""

PIPELINE = """\
test:
  script:
    - {script}
"""


@dataclass
class World:
    repo: Path  # a clone the test commits in and pushes from
    bare: Path
    data: Path
    url: str
    port: int  # the app's published port
    image: str
    proc: subprocess.Popen[bytes]
    log: Path

    def push(self, version: str, script: str = "test -f compose.yaml") -> str:
        (self.repo / "compose.yaml").write_text(
            COMPOSE.format(
                image=self.image, server=json.dumps(SERVER), version=version, port=self.port
            )
        )
        (self.repo / ".gitlab-ci.yml").write_text(PIPELINE.format(script=script))
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"version {version}")
        git(self.repo, "push", "-q", "origin", "main")
        return git(self.repo, "rev-parse", "HEAD")

    def hook(self, sha: str, secret: str = SECRET) -> int:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        r = httpx.post(
            f"{self.url}/hooks/generic",
            content=body,
            headers={"X-Conveyor-Signature": f"sha256={signature}"},
            timeout=10,
        )
        return r.status_code

    def serving(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def api(self, path: str, token: str) -> Any:
        r = httpx.get(
            f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        assert r.status_code == 200, r.text
        return r.json()

    def wait_for(self, pred: Any, what: str, timeout: float = 180) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the server exited:\n{self.log.read_text()[-3000:]}")
            got = pred()
            if got:
                return got
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")


def git(repo: Path, *args: str) -> str:
    env = os.environ | {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


def conveyor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gitops")
    name = f"app{uuid.uuid4().hex[:6]}"  # the project is <name>-staging: unique per run
    bare = root / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = root / "clone"
    subprocess.run(["git", "clone", "-q", str(bare), str(repo)], check=True, capture_output=True)
    git(repo, "checkout", "-q", "-b", "main")
    (repo / "conveyor.yaml").write_text(CONVEYOR)
    data, log, port = root / "data", root / "server.log", free_port()
    w = World(repo, bare, data, "", free_port(), base_image, None, log)  # type: ignore[arg-type]
    w.push("1")
    w.url = f"http://127.0.0.1:{port}"
    w.proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "server", "--source", str(bare),
         "--listen", f"127.0.0.1:{port}", "--data", str(data), "--executor", "shell"],
        cwd=root,
        env=os.environ | {"CONVEYOR_WEBHOOK_SECRET": SECRET},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        yield w
    finally:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
            try:
                w.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        work = data / "environments" / "staging" / name
        if work.exists():
            conveyor("-f", str(work / "compose.yaml"), "-p", f"{name}-staging", "down", cwd=work)
        shutil.rmtree(data, ignore_errors=True)


def test_the_server_brings_staging_to_main_at_start(world: World) -> None:
    world.wait_for(lambda: world.serving() == "1", "version 1 to serve")


def test_a_push_and_its_webhook_bring_the_new_commit_in(world: World) -> None:
    world.wait_for(lambda: world.serving() == "1", "version 1 to serve")
    sha = world.push("2")
    assert world.hook(sha, secret="wrong") == 401
    assert world.hook(sha) in (200, 202)
    world.wait_for(lambda: world.serving() == "2", "version 2 to serve")


def test_a_failed_pipeline_is_not_deployed_and_the_release_keeps_serving(world: World) -> None:
    world.wait_for(lambda: world.serving() == "2", "version 2 to serve")
    token = conveyor(
        "token", "create", "--role", "viewer", "--data", str(world.data), cwd=world.repo
    ).stdout.splitlines()[-1]
    sha = world.push("3", script="exit 1")
    assert world.hook(sha) in (200, 202)

    def failed() -> bool:
        envs = world.api("/environments", token)
        return any(e["name"] == "staging" and e["state"] == "failed" for e in envs)

    world.wait_for(failed, "staging to report the failed commit")
    assert world.serving() == "2"
    (staging,) = world.api("/environments", token)
    assert staging["commit"] != sha
    assert staging["release"] == 2
