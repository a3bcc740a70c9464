"""`conveyor dora` over a real project's records: a tiny stack in a git checkout brought up,
deployed, and deployed broken (rolled back) by the real `conveyor` on dockerd and HAProxy."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.net import free_port

WEB = """\
services:
  web:
    image: python:3.11-slim-bookworm
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind $$HOST"]
    environment: {{V: "{version}"}}
    stop_grace_period: 1s
    x-conveyor: {{probe: {{path: {probe}, start_timeout: 3s}}, public_port: {port}}}
"""


class Checkout:
    """A git work tree holding compose.yaml; each version is a commit with a known time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"d-{uuid.uuid4().hex[:6]}"
        self.port = free_port()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.name", "Jane Doe")
        self.git("config", "user.email", "jane@example.com")
        self.git("config", "commit.gpgSign", "false")

    def git(self, *args: str, when: int | None = None) -> str:
        env = dict(os.environ)
        if when is not None:
            env |= {"GIT_AUTHOR_DATE": f"@{when}", "GIT_COMMITTER_DATE": f"@{when}"}
        done = subprocess.run(
            ["git", *args], cwd=self.root, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def commit(self, version: str, when: int, probe: str = "/") -> str:
        (self.root / "compose.yaml").write_text(
            WEB.format(version=version, probe=probe, port=self.port)
        )
        self.git("add", "compose.yaml")
        self.git("commit", "-q", "-m", f"v{version}", when=when)
        return self.git("rev-parse", "HEAD")

    def conveyor(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "conveyor", "-p", self.name, *args]
        p = subprocess.run(
            cmd, cwd=self.root, capture_output=True, text=True, timeout=300, check=False
        )
        if check and p.returncode != 0:
            raise AssertionError(f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def rollouts(self) -> dict[int, dict[str, Any]]:
        db = self.root / ".conveyor" / self.name / "state.db"
        with sqlite3.connect(db) as c:
            c.row_factory = sqlite3.Row
            return {r["id"]: dict(r) for r in c.execute("SELECT * FROM rollouts")}


@pytest.fixture
def checkout(
    tmp_path: Path, base_image: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Checkout]:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    c = Checkout(tmp_path)
    yield c
    c.conveyor("down", check=False)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.conveyor.project={c.name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)


def test_dora_over_up_deploy_and_a_rolled_back_deploy(checkout: Checkout) -> None:
    start = int(time.time()) - 3600
    checkout.commit("1", when=start)
    checkout.conveyor("up", "--no-agent")
    checkout.commit("2", when=start + 600)
    checkout.conveyor("deploy")
    checkout.commit("3", when=start + 1200, probe="/no-such-page")  # fails its probe
    broken = checkout.conveyor("deploy", check=False)
    assert broken.returncode == 1 and "rolled back" in broken.stderr

    report = json.loads(checkout.conveyor("dora", "--json").stdout)
    m = report["metrics"]
    assert (report["project"], report["since"]) == (checkout.name, "30d")
    assert (m["deployments"], m["successful"], m["failed"]) == (3, 2, 1)
    assert m["change_failure_rate"] == pytest.approx(1 / 3)
    assert m["commit_times"] == {"git": 2, "release": 0}
    rows = checkout.rollouts()
    up, deploy, bad = m["records"]
    assert (up["outcome"], deploy["outcome"], bad["outcome"]) == (
        "succeeded",
        "succeeded",
        "rolled_back",
    )
    assert up["lead_time"] == pytest.approx(rows[up["rollout"]]["finished_at"] - start)
    assert deploy["lead_time"] == pytest.approx(
        rows[deploy["rollout"]]["finished_at"] - start - 600
    )
    fix = rows[bad["restored_by"]]
    assert fix["kind"] == "rollback" and fix["status"] == "succeeded"
    assert bad["time_to_restore"] == pytest.approx(fix["finished_at"] - bad["started_at"])
    assert m["time_to_restore"]["count"] == 1 and m["unrestored"] == 0
    assert m["per_day"] == pytest.approx(2 / 30)

    table = checkout.conveyor("dora", "--since", "2w").stdout
    assert (
        "change failure rate" in table and "33%" in table and "1 of 3 deployments failed" in table
    )
    unknown = checkout.conveyor("dora", "--env", "nope", check=False)
    assert unknown.returncode == 1 and "no environment 'nope'" in unknown.stderr
