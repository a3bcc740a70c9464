"""Dashboard page load times: the overview and an environment's page of a real `conveyor
server` (the set-up of bench/commit_to_live.py: one environment serving a one-service app
deployed by a real pipeline, shell executor) with 1,000 pipelines stored in the environment's
state database (written directly, three finished jobs each), plus a second commit deployed
so there are releases and rollouts to list.

Signs in through the sign-in form like a browser, then requests each page `--requests` times
one after the other and prints, per page, the time to the first byte (the response's status
line and headers: the page is rendered whole before it is sent, so this is the server's time)
and to the full HTML, as p50 / p95 / max, with the page's size; then the API routes that read
what the pages show (where the time goes).

    .venv/bin/python bench/dashboard_pages.py [--requests 30] [--pipelines 1000]

Also the pipelines pages (the list's first and 15th page, a pipeline's graph, a job's page,
a commit's timeline: pipeline_pages).
Then `--log-lines` (1,000,000) lines are written into the environment's log store (the file the
server's collector fills, through observe.logs.store, as one replica's output over the last
12 hours, a tenth of them errors, each with fields) and the observing pages are timed: the
logs page (no filter, a word, a level, a field), a line's page (fields and neighbours), the
services list and a service's page, alerts, delivery.

Target (issue 11): pages load in <= 300 ms on this machine. This script prints the figures; it
does not judge them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from commit_to_live import NAME, Bench, git

from conveyor.ci.run.prepare import ci_store
from conveyor.model.logs import LogLabels
from conveyor.observe.logs.retention import Retention
from conveyor.observe.logs.store import LOGS_DB, LogStore, Row

WORDS = ["order", "cart", "payment", "checkout", "user", "session", "cache", "timeout", "retry"]


def fill_pipelines(work_tree: Path, count: int, sha: str) -> None:
    """`count` finished pipelines with three jobs each, in the environment's state database
    (the server reads the same file: WAL allows it while the server runs)."""
    store = ci_store(work_tree)
    try:
        with store.db.tx() as c:
            now = time.time() - count * 60
            for i in range(count):
                started = now + i * 60
                cur = c.execute(
                    "INSERT INTO pipelines (ref, sha, source, status, started_at, finished_at, "
                    "file, executor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ("main", sha, "push", "success" if i % 7 else "failed", started,
                     started + 42.0, ".gitlab-ci.yml", "shell"),
                )  # fmt: skip
                pid = cur.lastrowid
                for stage, name in (("lint", "lint"), ("test", "unit"), ("build", "image")):
                    c.execute(
                        "INSERT INTO jobs (pipeline_id, name, stage, status, when_, "
                        "allow_failure, attempt) VALUES (?, ?, ?, 'success', 'on_success', 0, 1)",
                        (pid, name, stage),
                    )
    finally:
        store.close()


def fill_logs(data: Path, project: str, count: int) -> tuple[Path, int]:
    """`count` lines of one (made-up) replica of `web` in the environment's log store, over
    the last 12 hours; returns the store and the id of a line in the middle."""
    found = [p for p in data.rglob(LOGS_DB) if project in str(p)] or list(data.rglob(LOGS_DB))
    if not found:
        raise SystemExit(f"no {LOGS_DB} under {data}: is log collection on?")
    path = found[0]
    store = LogStore.open(path, Retention(max_bytes=1 << 40, max_age=30 * 86400.0))
    rng = random.Random(7)
    source = store.source(
        LogLabels(
            project=project,
            environment="staging",
            service="web",
            replica="web-bench-1",
            release=2,
            container="benchcontainer0",
            stream="stdout",
        )
    )
    end = time.time_ns()
    span = 12 * 3600 * 10**9
    batch: list[Row] = []
    middle = 0
    for i in range(count):
        ts = end - span + span * i // count
        words = " ".join(rng.choice(WORDS) for _ in range(5))
        fields = json.dumps({"request_id": f"r{i}", "status": "500" if i % 10 == 0 else "200"})
        batch.append((source, ts, 4 if i % 10 == 0 else 2, f"{words} n={i}", fields))
        if len(batch) == 20_000:
            last = store.write(batch)
            batch = []
            if not middle and i >= count // 2:
                middle = last
    if batch:
        store.write(batch)
    store.close()
    return path, middle


def sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/signin")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if found is None:
        raise SystemExit(f"no sign-in form: {form.status_code} {form.text[:200]}")
    r = client.post("/signin", data={"token": token, "csrf_token": found.group(1)})
    if r.status_code != 303:
        raise SystemExit(f"sign-in answered {r.status_code}")


def measure(client: httpx.Client, path: str, n: int) -> tuple[list[float], list[float], int]:
    first, full, size = [], [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        with client.stream("GET", path) as r:
            t1 = time.perf_counter()
            body = r.read()
            t2 = time.perf_counter()
        if r.status_code != 200:
            raise SystemExit(f"GET {path} answered {r.status_code}")
        first.append((t1 - t0) * 1000)
        full.append((t2 - t0) * 1000)
        size = len(body)
    return first, full, size


def pipeline_pages(b: Bench, sha: str, first: str) -> dict[str, str]:
    """The pipelines pages over the 1,000 stored pipelines: the list's first page and one
    deep in it, a stored pipeline's graph, the real pipeline's job page (its log) and the
    timeline of the commit every stored pipeline ran for (the worst case: 1,000 pipelines
    and 3,000 jobs on one commit's timeline, of which the page shows the newest 10) and of
    the first commit (one pipeline, one release, one rollout: the usual case)."""
    listed = b.api("/environments/staging/pipelines")
    newest = listed[0]["id"]
    real = 2  # the pipelines the server ran (versions 1 and 2) were the first two
    jobs = b.api(f"/environments/staging/pipelines/{real}/jobs")
    base = "/environments/staging"
    return {
        "pipelines list (page 1)": f"{base}/pipelines",
        "pipelines list (page 15)": f"{base}/pipelines?before={newest - 14 * 50}",
        "pipeline (graph)": f"{base}/pipelines/{newest}",
        "pipeline (live fragment)": f"/fragments{base}/pipelines/{newest}",
        "job page (log)": f"{base}/pipelines/{real}/jobs/{jobs[0]['id']}",
        "commit timeline (1,000 pl.)": f"{base}/commits/{sha}",
        "commit timeline (1 pl.)": f"{base}/commits/{first}",
    }


def figures(ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"p50 {statistics.median(ordered):6.1f}  p95 {p95:6.1f}  max {ordered[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--log-lines", type=int, default=1_000_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dashbench-"))
    b = Bench(root)
    try:
        first = b.commit("1")
        git(b.repo, "push", "-q", "origin", "main")
        b.start()
        b.wait(lambda: b.serving() == "1", "version 1 to answer", timeout=600)
        with httpx.Client(timeout=30) as hooks:
            sha = b.commit("2")
            git(b.repo, "push", "-q", "origin", "main")
            b.hook(hooks, sha, "bench-2")
        b.wait(lambda: b.serving() == "2", "version 2 to answer", timeout=600)
        work = b.data / "environments" / "staging" / NAME
        fill_pipelines(work, args.pipelines, sha)
        token = subprocess.run(
            [sys.executable, "-m", "conveyor", "token", "create", "--role", "deployer",
             "--data", str(b.data)],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()[-1]  # fmt: skip
        stored = len(b.api("/environments/staging/pipelines"))
        print(f"{args.pipelines} pipelines stored (+2 real); the API lists the newest {stored}")
        with httpx.Client(base_url=b.url, timeout=30) as client:
            sign_in(client, token)
            pages = {
                "overview": "/",
                "overview (live fragment)": "/fragments/overview",
                "environment staging": "/environments/staging",
                "environment (live fragment)": "/fragments/environments/staging",
                **pipeline_pages(b, sha, first),
            }
            for label, path in pages.items():
                measure(client, path, 2)  # warm: templates compiled, connections open
                first, full, size = measure(client, path, args.requests)
                print(f"{label:28} first byte {figures(first)} | full HTML {figures(full)}"
                      f" | {size / 1024:.0f} KiB")  # fmt: skip
            project = b.api("/environments/staging")["status"]["project"]
            t0 = time.perf_counter()
            store, middle = fill_logs(b.data, project, args.log_lines)
            print(
                f"{args.log_lines} log lines written into {store} in "
                f"{time.perf_counter() - t0:.0f} s ({store.stat().st_size / 1e6:.0f} MB)"
            )
            observing = {
                "logs (no filter)": "/environments/staging/logs",
                "logs text=checkout": "/environments/staging/logs?text=checkout",
                "logs level=error": "/environments/staging/logs?level=error",
                "logs field status=500": "/environments/staging/logs?field=status%3D500",
                "logs text+field+since": "/environments/staging/logs?text=timeout&field=status%3D500&since=6h",
                "log line (neighbours)": f"/environments/staging/logs/lines/{middle}",
                "services": "/services",
                "service web": "/environments/staging/services/web",
                "alerts": "/alerts",
                "delivery": "/delivery",
            }
            for label, path in observing.items():
                measure(client, path, 2)
                first, full, size = measure(client, path, args.requests)
                print(f"{label:28} first byte {figures(first)} | full HTML {figures(full)}"
                      f" | {size / 1024:.0f} KiB")  # fmt: skip
            # what the pages are made of: the API routes over the same backend calls
            auth = {"Authorization": f"Bearer {token}"}
            api = httpx.Client(base_url=b.url + "/api/v1", timeout=30, headers=auth)
            for path in ("/environments", "/environments/staging", "/environments/staging/diff",
                         "/environments/staging/pipelines", "/environments/staging/rollouts",
                         "/environments/staging/releases"):  # fmt: skip
                measure(api, path, 1)
                _, full, _ = measure(api, path, args.requests)
                print(f"  API {path:34} {figures(full)}")
            api.close()
    finally:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
