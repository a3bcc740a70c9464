"""A real `conveyor server` process over a bare repository, for the tests that stop it hard,
drift its environment and drive it with the CLI (the style of test_server_sync.py).

`ServerWorld` commits a one-service compose app, its `.gitlab-ci.yml` (shell executor) and
`conveyor.yaml`, pushes, sends signed generic webhooks with a delivery id of the test's
choosing, starts the server (recording its PID), SIGKILLs it by that PID, starts it again on
the same data directory, and reads the API and the CLI. The app's network is `internal`, its
port published on 127.0.0.1; `close` stops the server and takes the environment down.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.testing.net import free_port

SECRET = "crash-secret"

# The app answers its version; with GATE set it listens only once that file exists (a
# rollout to it waits in its probe until the test opens the gate).
SERVER = (
    "import os, time, http.server\n"
    "gate = os.environ.get('GATE')\n"
    "while gate and not os.path.exists(gate):\n"
    "    time.sleep(0.1)\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['V'].encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *a):\n"
    "        pass\n"
    "print('serving version ' + os.environ['V'], flush=True)\n"
    "http.server.ThreadingHTTPServer(('0.0.0.0', 8000), H).serve_forever()\n"
)

COMPOSE = """\
services:
  web:
    {image}
    command: ["python3", "-c", {server}]
    environment: {{V: "{version}"{gate_env}}}
    ports: ["127.0.0.1:{port}:8000"]
    stop_grace_period: 2s
    x-conveyor: {{port: 8000, probe: {{path: /, start_timeout: 10m}}}}{volumes}
networks:
  default:
    internal: true
"""

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h   # webhooks make it immediate
"""

PIPELINE = """\
test:
  script:
    - {script}
"""


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


@dataclass
class ServerWorld:
    root: Path
    image: str
    # The repository's name, so the environment's project (`<name>-staging`: its containers,
    # networks) is apart from other tests' that may run at the same time on this host. A
    # random suffix is added: another test run (another worker, another checkout) on the same
    # Docker Engine may run the same module at the same time.
    name: str
    conveyor_yaml: str = CONVEYOR
    # Build the app's image from the commit (a Dockerfile FROM `image`) instead of running
    # `image` as it is: each environment's project then names its own image.
    build: bool = False
    server_args: tuple[str, ...] = ()  # more options of `conveyor server`
    # The compose file of a version, given the app's published port and the version (instead
    # of COMPOSE's one service on an internal network: a fleet's app is reached across hosts).
    compose: Callable[[int, str], str] | None = None
    repo: Path = field(init=False)
    bare: Path = field(init=False)
    data: Path = field(init=False)
    port: int = field(init=False)  # the app's published port
    api_port: int = field(init=False)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)  # more variables for the server

    def __post_init__(self) -> None:
        self.name = f"{self.name}{uuid.uuid4().hex[:6]}"
        self.bare = self.root / f"{self.name}.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        self.repo = self.root / "clone"
        subprocess.run(
            ["git", "clone", "-q", str(self.bare), str(self.repo)], check=True, capture_output=True
        )
        git(self.repo, "checkout", "-q", "-b", "main")
        (self.repo / "conveyor.yaml").write_text(self.conveyor_yaml)
        self.data = self.root / "data"
        self.port, self.api_port = free_port(), free_port()
        # The server's index of the projects it manages (one writer) stays under the test.
        self.env.setdefault("XDG_STATE_HOME", str(self.root / "xdg"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log(self) -> Path:
        return self.root / f"server-{self.starts}.log"

    @property
    def project(self) -> str:
        return f"{self.name}-staging"

    @property
    def work(self) -> Path:
        return self.work_of("staging")

    def work_of(self, env: str) -> Path:
        return self.data / "environments" / env / self.name

    # git ---------------------------------------------------------------------------------------

    def push(
        self,
        version: str,
        script: str = "test -f compose.yaml",
        gate: Path | None = None,
        pipeline: str | None = None,
    ) -> str:
        """Commit and push version `version` of the app, its one-job pipeline running `script`
        (or the whole `.gitlab-ci.yml` given as `pipeline`); the commit's sha."""
        gate_env = volumes = ""
        if gate is not None:
            gate_env = ', GATE: "/gate/open"'
            volumes = f'\n    volumes: ["{gate}:/gate:ro"]'
        (self.repo / "compose.yaml").write_text(
            self.compose(self.port, version)
            if self.compose is not None
            else COMPOSE.format(
                image="build: ." if self.build else f"image: {self.image}",
                server=json.dumps(SERVER),
                version=version,
                port=self.port,
                gate_env=gate_env,
                volumes=volumes,
            )
        )
        (self.repo / ".gitlab-ci.yml").write_text(pipeline or PIPELINE.format(script=script))
        if self.build:
            (self.repo / "Dockerfile").write_text(f"FROM {self.image}\n")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"version {version}")
        git(self.repo, "push", "-q", "origin", "main")
        return git(self.repo, "rev-parse", "HEAD")

    def hook(self, sha: str, delivery: str, secret: str = SECRET) -> int:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        r = httpx.post(
            f"{self.url}/hooks/generic",
            content=body,
            headers={
                "X-Conveyor-Signature": f"sha256={signature}",
                "X-Conveyor-Delivery": delivery,
            },
            timeout=30,
        )
        return r.status_code

    # the server process ------------------------------------------------------------------------

    def start(self, code: str | None = None) -> None:
        """Start the server; `code`: Python run instead of `-m conveyor` (`python -c code
        server ...`: a failpoint that wraps the CLI's `main`, as the crash tests use)."""
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        launcher = ["-m", "conveyor"] if code is None else ["-c", code]
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, "server", "--source", str(self.bare),
             "--listen", f"127.0.0.1:{self.api_port}", "--data", str(self.data),
             "--executor", "shell", *self.server_args],
            cwd=self.root,
            env=os.environ | {"CONVEYOR_WEBHOOK_SECRET": SECRET} | self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_for(self._answers, "the server to answer")

    def _answers(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: nothing runs its cleanup."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self, cli: Any) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for env_dir in sorted((self.data / "environments").glob("*")):
            work = self.work_of(env_dir.name)
            if (work / "compose.yaml").exists():
                project = f"{self.name}-{env_dir.name}"
                # --force: the server (stopped above) still owns the project (one writer).
                cli("-f", str(work / "compose.yaml"), "-p", project, "down", "--force", cwd=work)

    # reading -----------------------------------------------------------------------------------

    def token(self, role: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", "token", "create", "--role", role,
             "--data", str(self.data)],
            capture_output=True, text=True, check=True, timeout=120,
        )  # fmt: skip
        return done.stdout.splitlines()[-1]

    def api(self, path: str, token: str) -> Any:
        r = httpx.get(
            f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        assert r.status_code == 200, r.text
        return r.json()

    def events(self, token: str) -> list[dict[str, Any]]:
        """Every event the server kept, oldest first (paged: the API answers 1,000 at most)."""
        found: list[dict[str, Any]] = []
        while True:
            after = f"&after={found[-1]['id']}" if found else ""
            page = self.api(f"/events?limit=1000{after}", token)
            found += page
            if len(page) < 1000:
                return found

    def serving(self, port: int | None = None) -> str | None:
        try:
            url = f"http://127.0.0.1:{port or self.port}/"
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def delivery_status(self, delivery: str) -> str | None:
        """What the server's database says of a webhook delivery (read, as the server may run)."""
        db = sqlite3.connect(f"file:{self.data / 'server.db'}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute(
                "SELECT status FROM hook_deliveries WHERE source = 'generic' AND delivery_id = ?",
                (delivery,),
            ).fetchone()
        finally:
            db.close()
        return None if row is None else str(row[0])

    def wait_for(self, pred: Any, what: str, timeout: float = 240) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"the server exited:\n{self.log.read_text()[-3000:]}")
            got = pred()
            if got:
                return got
            time.sleep(0.3)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()[-3000:]}")


def conveyor(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=os.environ | (env or {}),
    )
