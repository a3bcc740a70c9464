"""`conveyor promote --wait` and `conveyor rollback --env` against the real `conveyor server`:
staging follows `main`; production is promoted from staging (its own project, its published
port moved by an override). The CLI's exit codes and words are what a user sees.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from conveyor.testing.net import free_port
from tests.integration.gitops.server_world import ServerWorld, conveyor

PRODUCTION_PORT = free_port()

CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h
  production:
    promote_from: staging
    protected: true
    overrides:
      web:
        ports: {{"{staging}": {production}}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    root = tmp_path_factory.mktemp("cliact")
    w = ServerWorld(root, base_image, "cliact", build=True)
    (w.repo / "conveyor.yaml").write_text(
        CONVEYOR.format(staging=w.port, production=PRODUCTION_PORT)
    )
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


def cli(w: ServerWorld, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return conveyor(*args, cwd=w.root, env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": token})


def test_promote_wait_then_rollback_env(world: ServerWorld) -> None:
    w = world
    viewer, deployer = w.token("viewer"), w.token("deployer")
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve in staging")

    refused = cli(w, viewer, "promote", "production", "--from", "staging")
    assert refused.returncode == 1 and "needs the deployer role" in refused.stderr
    done = cli(w, deployer, "promote", "production", "--from", "staging", "--wait")
    assert done.returncode == 0, done.stderr
    assert "done: production: rollout" in done.stderr and "succeeded" in done.stderr
    assert w.serving(PRODUCTION_PORT) == "1"
    envs = {e["name"]: e for e in json.loads(cli(w, viewer, "env", "list", "--json").stdout)}
    assert envs["production"]["state"] == "serving"
    assert envs["production"]["commit"] == envs["staging"]["commit"]
    # a promoted environment runs its source's images: git and what runs agree
    same = cli(w, viewer, "diff", "--env", "production", "--exit-code")
    assert same.returncode == 0 and "in sync" in same.stdout, same.stdout + same.stderr
    # DORA from the server's records of production: the promotion is its one deployment
    dora = json.loads(cli(w, viewer, "dora", "--env", "production", "--json").stdout)
    assert dora["project"] == f"{w.name}-production"
    assert dora["metrics"]["deployments"] == dora["metrics"]["successful"] == 1
    assert dora["metrics"]["lead_time"]["count"] == 1  # the commit's time from the work tree

    sha = w.push("2")
    assert w.hook(sha, "cli-2") == 202
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve in staging")
    back = cli(w, deployer, "rollback", "--env", "staging")
    assert back.returncode == 0, back.stderr
    assert "rollback" in back.stderr
    assert w.serving() == "1"  # at once, not at the next poll
    assert w.serving(PRODUCTION_PORT) == "1"
    # commit -> pipeline -> release -> rollout, per commit, newest first, from the server
    views = json.loads(cli(w, viewer, "timeline", "--env", "staging", "--json").stdout)
    assert [v["commit"] for v in views][:1] == [sha]
    newest = views[0]
    assert [p["status"] for p in newest["pipelines"]] == ["success"]
    (release,) = [r for r in newest["releases"] if r["project"] == w.project]
    assert [ro["status"] for ro in release["rollouts"]] == ["succeeded"]
    assert views[1]["commit"] == envs["staging"]["commit"]  # version 1, before it
    again = cli(w, deployer, "rollback", "--env", "nowhere")
    assert again.returncode == 1 and "nowhere" in again.stderr
