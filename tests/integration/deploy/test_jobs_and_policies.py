"""Smaller stacks on the real dockerd and HAProxy: run-to-completion services and update
policies, with the base image and no build."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.testing.net import free_port

WEB = """
  web:
    image: python:3.11-slim-bookworm
    command: ["sh", "-c", "exec python3 -m http.server $$PORT --bind $$HOST"]
    environment: {{V: "{version}"}}
    deploy:
      replicas: 2
      update_config: {{order: {order}, parallelism: 1}}
    stop_grace_period: 1s
    x-conveyor: {{probe: /, public_port: {port}}}
"""


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"t-{uuid.uuid4().hex[:6]}"
        self.port = free_port()

    def write(self, body: str) -> None:
        # project networks, internal: nothing of these stacks needs a way out
        internal = "\nnetworks:\n  default:\n    internal: true\n"
        (self.root / "compose.yaml").write_text("services:" + body + internal)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [
            sys.executable,
            "-m",
            "conveyor",
            "-f",
            str(self.root / "compose.yaml"),
            "-p",
            self.name,
            *args,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if check and p.returncode != 0:
            raise AssertionError(f"{args} -> {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


def dependent_web(port: int) -> str:
    return WEB.format(version="1", order="start-first", port=port).replace(
        "    deploy:",
        "    depends_on: {migrate: {condition: service_completed_successfully}}\n    deploy:",
    )


@pytest.fixture
def project(tmp_path: Path, base_image: str) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    p.run("down", check=False)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.conveyor.project={p.name}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)


def test_migration_job_runs_to_completion_before_its_dependent(project: Project) -> None:
    migrate = """
  migrate:
    image: python:3.11-slim-bookworm
    command: ["python3", "-c", "print('schema ready')"]
"""
    web = WEB.format(version="1", order="start-first", port=project.port).replace(
        "    deploy:",
        "    depends_on: {migrate: {condition: service_completed_successfully}}\n    deploy:",
    )
    project.write(migrate + web)
    project.run("up", "--no-agent")
    st = project.json("status")
    mig = next(s for s in st["services"] if s["name"] == "migrate")
    assert [(r["running"], r["exit_code"]) for r in mig["replicas"]] == [(False, 0)]
    assert "schema ready" in project.run("logs", "migrate").stdout
    # nothing changed: the job is not run again
    assert "nothing to deploy" in project.run("deploy").stderr


def test_failing_migration_fails_the_deploy_and_keeps_the_release(project: Project) -> None:
    ok = """
  migrate:
    image: python:3.11-slim-bookworm
    command: ["python3", "-c", "print('v1')"]
"""
    web = dependent_web(project.port)
    project.write(ok + web)
    project.run("up", "--no-agent")
    project.write(ok.replace("print('v1')", "raise SystemExit(3)") + web)
    out = project.run("deploy", check=False)
    assert out.returncode == 1
    assert "exited with code 3" in out.stderr
    assert project.json("status")["release"] == 1


def test_stop_first_update_replaces_replicas_one_at_a_time(project: Project) -> None:
    project.write(WEB.format(version="1", order="stop-first", port=project.port))
    project.run("up", "--no-agent")
    project.write(WEB.format(version="2", order="stop-first", port=project.port))
    plan = project.json("plan")
    kinds = [s["kind"] for s in plan["steps"]]
    # each old replica leaves before its replacement starts
    assert kinds[:6] == ["drain", "unroute", "stop", "start", "await", "route"]
    project.run("deploy")
    web = next(s for s in project.json("status")["services"] if s["name"] == "web")
    assert len(web["replicas"]) == 2 and all(r["current"] for r in web["replicas"])


def test_timeline_of_deploys_outside_git(project: Project) -> None:
    """No commit to follow: the timeline tells the newest release (or the one asked for) and
    its rollouts, with the events recorded about it."""
    project.write(WEB.format(version="1", order="start-first", port=project.port))
    project.run("up", "--no-agent")
    project.write(WEB.format(version="2", order="start-first", port=project.port))
    project.run("deploy")
    tl = project.json("timeline", "--events")
    assert tl["commit"] is None and tl["pipelines"] == [] and tl["subject"] == "release 2"
    [rel] = tl["releases"]
    assert [(r["kind"], r["from_release"], r["status"]) for r in rel["rollouts"]] == [
        ("deploy", 1, "succeeded")
    ]
    kinds = [e["kind"] for e in tl["events"]]
    assert kinds[0] == "release.created" and kinds[-1] == "rollout.succeeded", kinds
    assert {e["subject"]["rollout"] for e in tl["events"][1:]} == {rel["rollouts"][0]["id"]}
    first = project.json("timeline", "--release", "1")
    assert [(r["kind"], r["status"]) for r in first["releases"][0]["rollouts"]] == [
        ("up", "succeeded")
    ]
    unknown = project.run("timeline", "no-such-ref", check=False)
    assert unknown.returncode == 1 and "no-such-ref: not a commit" in unknown.stderr
