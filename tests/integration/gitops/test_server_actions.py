"""Promotion with gates, approvals, rollback recorded in git, and diff, through the real
`conveyor server` process and its HTTP API: a bare repository holding a one-service compose
app, a `.gitlab-ci.yml` (shell executor) and a `conveyor.yaml` with two environments,
`staging` (branch main) and `production` (promoted from staging, behind an approval; its
published port moved by an override).

The tests run in order on one server: promotion refused without an approval (409 naming the
gate), approved then promoted (production serves the staging commit); a push reaches staging
only; `rollback` of staging serves the previous version at once and pushes a pin commit to main
in the bare repository, which the next pass honours; while staging is suspended a push that
deletes the pin shows up in `diff`; on resume it is deployed.

The app's network is `internal`, its ports are published on 127.0.0.1; the fixture records the
server's PID, stops it with SIGTERM, and takes both environments down by their project names
(`<repository>-staging`, `<repository>-production`, the repository named uniquely per run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import sqlite3
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
from tests.integration.gitops.server_world import conveyor, git

SECRET = "actions-secret"
PIN = ".conveyor/pins/staging.json"

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
    stop_grace_period: 1s
    x-conveyor: {{port: 8000, probe: /}}
networks:
  default:
    internal: true
"""

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h   # webhooks make it immediate
  production:
    promote_from: staging
    protected: true
    gates:
      soak: 0s
      approval: true
    overrides:
      web:
        ports:
          "{staging}": {production}
"""

PIPELINE = """\
test:
  script:
    - test -f compose.yaml
"""


@dataclass
class World:
    repo: Path  # a clone the test commits in and pushes from
    bare: Path
    data: Path
    url: str
    staging_port: int
    production_port: int
    image: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str = ""

    def commit(self, version: str, *, remove_pin: bool = False) -> str:
        if remove_pin:  # the pin commit the server pushed comes first
            git(self.repo, "pull", "-q", "--ff-only", "origin", "main")
            git(self.repo, "rm", "-q", PIN)
        (self.repo / "compose.yaml").write_text(
            COMPOSE.format(
                image=self.image,
                server=json.dumps(SERVER),
                version=version,
                port=self.staging_port,
            )
        )
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"version {version}")
        git(self.repo, "push", "-q", "origin", "main")
        return git(self.repo, "rev-parse", "HEAD")

    def hook(self, sha: str) -> str:
        """A signed generic delivery; returns its id."""
        delivery = f"d-{sha[:12]}-{time.monotonic_ns()}"
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        r = httpx.post(
            f"{self.url}/hooks/generic",
            content=body,
            headers={
                "X-Conveyor-Signature": f"sha256={signature}",
                "X-Conveyor-Delivery": delivery,
            },
            timeout=10,
        )
        assert r.status_code == 202, r.text
        return delivery

    def delivery_done(self, delivery: str) -> bool:
        """The server marks a delivery done after the fetch-and-sync pass that covered it."""
        with sqlite3.connect(self.data / "server.db") as db:
            row = db.execute(
                "SELECT status FROM hook_deliveries WHERE delivery_id = ?", (delivery,)
            ).fetchone()
        return row is not None and row[0] == "done"

    def serving(self, port: int) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def get(self, path: str) -> Any:
        r = httpx.get(
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        return r.json()

    def act(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        # Actions run the rollout before answering.
        return httpx.post(
            f"{self.url}/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=300,
        )

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

    def env(self, name: str) -> dict[str, Any]:
        return dict(self.get(f"/environments/{name}"))

    def commit_of(self, name: str) -> str | None:
        """The commit serving once the sync that brought it in has finished."""
        summary = self.env(name)["environment"]
        return summary["commit"] if summary["state"] == "serving" else None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[World]:
    root = tmp_path_factory.mktemp("gitops-actions")
    # The projects are named after the repository (<name>-staging): a name of its own keeps
    # them apart from other test runs on the same Docker Engine.
    name = f"acts{uuid.uuid4().hex[:8]}"
    bare = root / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo = root / "clone"
    subprocess.run(["git", "clone", "-q", str(bare), str(repo)], check=True, capture_output=True)
    git(repo, "checkout", "-q", "-b", "main")
    staging_port, production_port = free_port(), free_port()
    (repo / "conveyor.yaml").write_text(
        CONVEYOR.format(staging=staging_port, production=production_port)
    )
    (repo / ".gitlab-ci.yml").write_text(PIPELINE)
    data, log, port = root / "data", root / "server.log", free_port()
    w = World(repo, bare, data, f"http://127.0.0.1:{port}", staging_port, production_port,
              base_image, None, log)  # type: ignore[arg-type]  # fmt: skip
    w.commit("1")
    made = conveyor("token", "create", "--role", "deployer", "--data", str(data), cwd=root)
    assert made.returncode == 0, made.stderr
    w.token = made.stdout.splitlines()[-1]
    w.proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "server", "--source", str(bare),
         "--listen", f"127.0.0.1:{port}", "--data", str(data), "--executor", "shell"],
        cwd=root,
        # XDG_STATE_HOME: the index of the projects it manages (one writer) stays here.
        env=os.environ | {"CONVEYOR_WEBHOOK_SECRET": SECRET, "XDG_STATE_HOME": str(root / "xdg")},
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
        for env in ("staging", "production"):
            work = data / "environments" / env / name
            if (work / "compose.yaml").exists():
                project = f"{name}-{env}"  # still the stopped server's: --force (one writer)
                conveyor(
                    "-f", str(work / "compose.yaml"), "-p", project, "down", "--force", cwd=work
                )
        shutil.rmtree(data, ignore_errors=True)


def test_promotion_is_refused_until_its_gates_hold(world: World) -> None:
    world.wait_for(lambda: world.serving(world.staging_port) == "1", "version 1 in staging")
    assert world.env("production")["environment"]["state"] == "empty"
    # only along promote_from
    wrong = world.act("/environments/staging/promote", {"from": "production"})
    assert wrong.status_code == 409 and "not promoted into" in wrong.json()["detail"]
    refused = world.act("/environments/production/promote", {"from": "staging"})
    assert refused.status_code == 409, refused.text
    detail = refused.json()["detail"]
    assert "approval: nobody approved release 1 of staging" in detail
    assert "soak" not in detail and "pipeline_passed" not in detail  # those gates hold
    assert world.serving(world.production_port) is None


def test_an_approved_release_is_promoted_with_its_commit(world: World) -> None:
    staging = world.env("staging")["environment"]
    assert world.act("/environments/production/approve", {"release": 99}).status_code == 404
    approved = world.act("/environments/production/approve", {"release": staging["release"]})
    assert approved.status_code == 200, approved.text
    assert world.env("production")["approvals"] == [staging["release"]]
    promoted = world.act("/environments/production/promote", {"from": "staging"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["release"] == 1  # production's own first release
    assert world.serving(world.production_port) == "1"
    production = world.env("production")
    assert production["environment"]["commit"] == staging["commit"]
    assert production["environment"]["state"] == "serving"
    kinds = [e["kind"] for e in world.get("/events?limit=1000")]
    assert "promotion.succeeded" in kinds


def test_a_push_reaches_staging_only(world: World) -> None:
    sha = world.commit("2")
    world.hook(sha)
    world.wait_for(lambda: world.commit_of("staging") == sha, "staging to report version 2")
    assert world.serving(world.staging_port) == "2"
    assert world.serving(world.production_port) == "1"
    diff = world.get("/environments/staging/diff")
    assert diff["in_sync"] is True and diff["services"] == []
    assert diff["desired_commit"] == diff["running_commit"] == sha


def test_rollback_serves_the_previous_release_and_pins_it_in_git(world: World) -> None:
    first = world.get("/environments/staging/releases")[-1]
    head_before = git(world.bare, "rev-parse", "main")
    unknown = world.act("/environments/staging/rollback", {"to_release": 99})
    assert unknown.status_code == 404 and "no release 99" in unknown.json()["detail"]
    serving = world.act("/environments/staging/rollback", {"to_release": first["number"] + 1})
    assert serving.status_code == 409 and "is the one serving" in serving.json()["detail"]
    assert git(world.bare, "rev-parse", "main") == head_before  # nothing pinned for those
    rolled = world.act("/environments/staging/rollback")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["release"] == first["number"]
    assert world.serving(world.staging_port) == "1"  # at once: no waiting for a poll
    # git records it: a pin commit on main, on top of what was there
    head = git(world.bare, "rev-parse", "main")
    assert git(world.bare, "rev-parse", "main~1") == head_before
    pin = json.loads(git(world.bare, "show", f"main:{PIN}"))
    assert pin["commit"] == first["commit"] and pin["release"] == first["number"]
    assert pin["by"] == "deployer-1"
    # the next pass (a webhook for the pin commit) keeps the rollback
    delivery = world.hook(head)
    world.wait_for(lambda: world.delivery_done(delivery), "the pass after the rollback")
    assert world.serving(world.staging_port) == "1"
    staging = world.env("staging")
    assert staging["pinned_commit"] == first["commit"]
    assert staging["desired_commit"] == first["commit"]
    assert staging["environment"]["state"] == "serving"
    # production has one release: nothing earlier to roll back to
    nothing = world.act("/environments/production/rollback")
    assert nothing.status_code == 409 and "no previous release" in nothing.json()["detail"]


def test_a_push_deleting_the_pin_shows_in_diff_then_moves_on(world: World) -> None:
    assert world.act("/environments/staging/suspend").status_code == 200
    sha = world.commit("3", remove_pin=True)
    delivery = world.hook(sha)
    world.wait_for(lambda: world.delivery_done(delivery), "the pass that sees version 3")
    assert world.serving(world.staging_port) == "1"  # suspended: nothing deployed
    diff = world.get("/environments/staging/diff")
    assert diff["desired_commit"] == sha and diff["in_sync"] is False
    (web,) = diff["services"]
    assert web["service"] == "web" and "spec: environment" in web["differences"]
    assert world.act("/environments/staging/resume").status_code == 200
    world.wait_for(lambda: world.commit_of("staging") == sha, "staging to report version 3")
    assert world.serving(world.staging_port) == "3"
    assert world.env("staging")["pinned_commit"] is None
