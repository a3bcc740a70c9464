"""Commit to live with `conveyor server`: push to a bare repository, send the signed generic
webhook, and time until the new version answers on the published port.

Set-up: a bare repository holding a one-service compose app on the prebuilt base image (no
build), a trivial `.gitlab-ci.yml` (one shell job, `test -f compose.yaml`) and `conveyor.yaml`
(one environment, `staging` on `main`, polling hourly: only the webhook makes it move); a
`conveyor server --executor shell` on loopback. The first commit is brought in at start.

Prints, per pushed commit and as the median over `--runs`:
- total: from the start of `git push` until the first HTTP answer carrying the new version;
- git push: the push itself (git's share, not Conveyor's);
- jobs: the pipeline's job durations, summed (the trivial pipeline has one job);
- health waits: the rollout's `await` steps (its probe until the new replica answers);
- Conveyor's share: total - git push - jobs - health waits (fetch, checkout, pipeline
  scheduling, release, container start, HAProxy changes, the webhook's own path).

Then `--rate` webhook deliveries per second for `--seconds` (each with its own delivery id, for
the commit already serving): how many were sent, answered 2xx, and found persisted in the
server's database, with the answers' latency (p50, p99). Last, the server's RSS once idle.

    .venv/bin/python bench/commit_to_live.py [--runs 3] [--rate 100] [--seconds 10]

Targets (issue 9): <= 10 s total for a trivial pipeline with a prebuilt image, Conveyor's share
<= 1 s; 100 webhook deliveries per second accepted with none lost; server RSS idle <= 150 MB.
This script prints the figures; it does not judge them.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
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
import urllib.request
from pathlib import Path
from typing import Any

import httpx
from common import rss_mb

from conveyor.testing.net import free_port

# The repository's name: the environment runs as project c2l<pid>-staging. Unique per run, so
# two benches on one Docker Engine (two checkouts, say) do not take each other's project.
NAME = f"c2l{os.getpid()}"
SECRET = "bench-secret"
BASE_IMAGE = "python:3.11-slim-bookworm"

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
CONVEYOR = "environments:\n  staging:\n    branch: main\n    poll_interval: 1h\n"
PIPELINE = "test:\n  script:\n    - test -f compose.yaml\n"


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


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / f"{NAME}.git"
        self.repo = root / "clone"
        self.data = root / "data"
        self.port, self.api_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.bare)], check=True)
        subprocess.run(
            ["git", "clone", "-q", str(self.bare), str(self.repo)], check=True, capture_output=True
        )
        git(self.repo, "checkout", "-q", "-b", "main")
        (self.repo / "conveyor.yaml").write_text(CONVEYOR)
        (self.repo / ".gitlab-ci.yml").write_text(PIPELINE)

    def commit(self, version: str) -> str:
        (self.repo / "compose.yaml").write_text(
            COMPOSE.format(
                image=BASE_IMAGE, server=json.dumps(SERVER), version=version, port=self.port
            )
        )
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-q", "-m", f"version {version}")
        return git(self.repo, "rev-parse", "HEAD")

    def start(self) -> None:
        log = (self.root / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "server",
                "--source",
                str(self.bare),
                "--listen",
                f"127.0.0.1:{self.api_port}",
                "--data",
                str(self.data),
                "--executor",
                "shell",
            ],
            cwd=self.root,
            env=os.environ | {"CONVEYOR_WEBHOOK_SECRET": SECRET},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait(lambda: self._get("/healthz") is not None, "the server to answer")
        token = subprocess.run(
            [
                sys.executable,
                "-m",
                "conveyor",
                "token",
                "create",
                "--role",
                "viewer",
                "--data",
                str(self.data),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[-1]
        self.headers = {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        work = self.data / "environments" / "staging" / NAME
        if work.exists():
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "conveyor",
                    "-f",
                    str(work / "compose.yaml"),
                    "-p",
                    f"{NAME}-staging",
                    "down",
                    "--force",  # the stopped server still owns the project (one writer)
                ],
                cwd=work,
                capture_output=True,
                check=False,
                timeout=300,
            )

    def _get(self, path: str) -> Any:
        try:
            r = httpx.get(self.url + path, headers=getattr(self, "headers", {}), timeout=30)
        except httpx.TransportError:
            return None
        return r.json() if r.status_code == 200 else None

    def api(self, path: str) -> Any:
        found = self._get("/api/v1" + path)
        if found is None:
            raise SystemExit(f"GET /api/v1{path} failed")
        return found

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.api(f"/events?limit=1000&after={out[-1]['id'] if out else 0}")
            out += page
            if len(page) < 1000:
                return out

    def wait(self, pred: Any, what: str, timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"the server exited; see {self.root / 'server.log'}")
            got = pred()
            if got:
                return got
            time.sleep(0.01)
        raise SystemExit(f"timed out waiting for {what}; see {self.root / 'server.log'}")

    def serving(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return None

    def hook(self, client: httpx.Client, sha: str, delivery: str) -> int:
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        r = client.post(
            f"{self.url}/hooks/generic",
            content=body,
            headers={"X-Conveyor-Signature": f"sha256={sig}", "X-Conveyor-Delivery": delivery},
        )
        return r.status_code

    # one commit, pushed and timed ----------------------------------------------------------------

    def commit_to_live(self, version: str) -> dict[str, float]:
        sha = self.commit(version)
        wall0 = time.time()  # events carry wall-clock times
        t0 = time.monotonic()
        git(self.repo, "push", "-q", "origin", "main")
        pushed = time.monotonic()
        with httpx.Client(timeout=30) as client:
            status = self.hook(client, sha, f"run-{version}")
        if status not in (200, 202):
            raise SystemExit(f"the webhook was answered {status}")
        self.wait(lambda: self.serving() == version, f"version {version} to answer", timeout=600)
        total = time.monotonic() - t0
        jobs = 0.0
        for p in self.api("/environments/staging/pipelines"):
            if p["sha"] == sha:
                jobs += sum(
                    j["duration"] or 0.0
                    for j in self.api(f"/environments/staging/pipelines/{p['id']}/jobs")
                )
        waits = 0.0
        marks: list[str] = []
        for e in self.events():
            data = e.get("data") or {}
            if e["subject"]["commit"] != sha or e["ts"] < wall0:
                continue
            if e["kind"] == "step.done" and data.get("step") == "await":
                waits += float(data.get("seconds") or 0.0)
            label = PHASES.get(e["kind"]) or (
                f"{data.get('step')} done" if e["kind"] == "step.done" else None
            )
            if label:
                marks.append(f"{label} {e['ts'] - wall0:.2f}")
        print(f"  run {version}: seconds after the push began: " + ", ".join(marks))
        push = pushed - t0
        return {
            "total": total,
            "push": push,
            "jobs": jobs,
            "waits": waits,
            "share": total - push - jobs - waits,
        }


# Where the time goes, printed per run from the server's events (seconds after the push began).
PHASES = {
    "sync.started": "sync started",
    "pipeline.started": "pipeline started",
    "pipeline.finished": "pipeline finished",
    "release.created": "release created",
    "rollout.started": "rollout started",
    "rollout.succeeded": "rollout done",
    "sync.succeeded": "sync done",
}


def flood(b: Bench, sha: str, rate: int, seconds: float) -> None:
    """`rate` deliveries a second for `seconds`, each with its own id, paced by a clock."""
    count = int(rate * seconds)
    answers: list[int] = []
    latencies: list[float] = []
    lock = threading.Lock()
    interval = 1.0 / rate
    start = time.monotonic()
    workers = 16

    def send(worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            for n in range(worker, count, workers):
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                t = time.monotonic()
                try:
                    code = b.hook(client, sha, f"flood-{n}")
                except httpx.HTTPError:
                    code = 0
                with lock:
                    answers.append(code)
                    latencies.append(time.monotonic() - t)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - start
    ok = sum(1 for c in answers if 200 <= c < 300)
    db = sqlite3.connect(f"file:{b.data / 'server.db'}?mode=ro", uri=True, timeout=30)
    persisted = db.execute(
        "SELECT count(*) FROM hook_deliveries WHERE delivery_id LIKE 'flood-%'"
    ).fetchone()[0]
    db.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(
        f"webhooks: sent {count} in {took:.1f}s ({count / took:.0f}/s), answered 2xx {ok}, "
        f"persisted {persisted}; answer latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


def pending(b: Bench) -> int:
    db = sqlite3.connect(f"file:{b.data / 'server.db'}?mode=ro", uri=True, timeout=30)
    try:
        return int(
            db.execute("SELECT count(*) FROM hook_deliveries WHERE status = 'pending'").fetchone()[
                0
            ]
        )
    finally:
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="c2l-"))
    b = Bench(root)
    try:
        b.commit("0")
        git(b.repo, "push", "-q", "origin", "main")
        b.start()
        b.wait(lambda: b.serving() == "0", "the first commit to serve", timeout=600)
        runs = []
        for i in range(1, args.runs + 1):
            r = b.commit_to_live(str(i))
            runs.append(r)
            print(
                f"run {i}: total {r['total']:.2f}s = git push {r['push']:.2f}s + jobs "
                f"{r['jobs']:.2f}s + health waits {r['waits']:.2f}s + Conveyor {r['share']:.2f}s"
            )
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"median of {len(runs)}: total {med['total']:.2f}s, Conveyor's share "
            f"{med['share']:.2f}s (jobs {med['jobs']:.2f}s, health waits {med['waits']:.2f}s, "
            f"git push {med['push']:.2f}s)"
        )
        head = git(b.repo, "rev-parse", "HEAD")
        flood(b, head, args.rate, args.seconds)
        b.wait(lambda: pending(b) == 0, "the flood's deliveries to be settled", timeout=600)
        time.sleep(5)  # the passes the flood woke are over: idle is what is measured
        assert b.proc is not None
        print(f"server RSS idle: {rss_mb(b.proc.pid):.0f} MB")
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
