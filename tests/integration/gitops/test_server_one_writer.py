"""One writer against the real `conveyor server` (shell executor): the server records that it
manages its environment's project; a local `deploy` on that project, by name from anywhere or
in the server's work tree, is refused and changes nothing; `rollback` goes through the API
and is pinned in git as `rollback --env` is; a stopped server still owns the project and its
next start claims it again; `--force` deploys behind the server, into its state.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gitops.server_world import ServerWorld, conveyor, git


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    root = tmp_path_factory.mktemp("onewriter")
    w = ServerWorld(root, base_image, "onewriter")  # its index under root/xdg (w.env)
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


def cli(
    w: ServerWorld, *args: str, cwd: Path | None = None, token: str = ""
) -> subprocess.CompletedProcess[str]:
    env = w.env | {"CONVEYOR_TOKEN": token, "CONVEYOR_SERVER": "http://127.0.0.1:9"}
    return conveyor(*args, cwd=cwd or w.root, env=env)


def said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join(done.stderr.split())  # Rich wraps long lines on stderr


def record(w: ServerWorld) -> dict[str, Any]:
    path = w.work / ".conveyor" / w.project / "server.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_one_writer(world: ServerWorld) -> None:
    w = world
    viewer, deployer = w.token("viewer"), w.token("deployer")
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
    first = w.api("/environments/staging", viewer)["environment"]["commit"]
    sha = w.push("2")
    assert w.hook(sha, "one-writer-2") == 202
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve")
    # version 2 serves before its rollout has retired version 1: wait for the rollout's end,
    # or the history read below as "before" changes under the test
    w.wait_for(
        lambda: w.api("/environments/staging/rollouts", viewer)[0]["status"] == "succeeded",
        "the rollout to version 2 to finish",
    )

    # The server's record names it, its environment and the project's files.
    assert w.proc is not None
    owner = record(w)
    assert (owner["project"], owner["environment"]) == (w.project, "staging")
    assert (owner["pid"], owner["server_url"]) == (w.proc.pid, w.url)
    assert owner["compose_files"] == [str(w.work / "compose.yaml")]

    # deploy by name from a directory without a compose file, and in the work tree: refused
    releases = w.api("/environments/staging/releases", viewer)
    rollouts = w.api("/environments/staging/rollouts", viewer)
    for where, args in ((w.root, ("-p", w.project, "deploy")), (w.work, ("deploy",))):
        refused = cli(w, *args, cwd=where, token=deployer)
        assert refused.returncode == 2, refused.stderr
        assert (
            f"project {w.project} is managed by the Conveyor server at {w.url} "
            "(environment staging): push to main instead"
        ) in said(refused)
    assert w.api("/environments/staging/releases", viewer) == releases
    assert w.api("/environments/staging/rollouts", viewer) == rollouts
    assert w.serving() == "2"

    # rollback goes through the API: at once, and pinned in git as `rollback --env` does
    back = cli(w, "rollback", cwd=w.work, token=deployer)
    assert back.returncode == 0, back.stderr
    assert "as `conveyor rollback --env staging` does" in said(back)
    assert w.serving() == "1"
    pin = json.loads(git(w.bare, "show", "main:.conveyor/pins/staging.json"))
    assert pin["commit"] == first
    assert w.api("/environments/staging", viewer)["pinned_commit"] == first

    # status is the server's view
    shown = cli(w, "-p", w.project, "status", token=viewer)
    assert shown.returncode == 0, shown.stderr
    assert f"pinned at {first[:12]}" in shown.stdout

    # a stopped server still owns the project; its next start claims it again
    w.proc.send_signal(signal.SIGTERM)
    assert w.proc.wait(timeout=60) == 0
    stopped = cli(w, "-p", w.project, "rollback", token=deployer)
    assert stopped.returncode == 2
    assert f"which is not running (its process {owner['pid']} is gone)" in said(stopped)
    assert "pass --force to take the project over" in said(stopped)
    w.start()
    assert record(w)["pid"] == w.proc.pid != owner["pid"]

    # --force: the clone's files (version 2) deployed into the server's project and state
    forced = cli(w, "-p", w.project, "deploy", "--force", cwd=w.repo, token=deployer)
    assert forced.returncode == 0, forced.stderr
    assert f"--force: acting on project {w.project} behind the Conveyor server" in said(forced)
    assert w.serving() == "2"
    after = w.api("/environments/staging/releases", viewer)
    assert after[0]["number"] == max(r["number"] for r in releases) + 1  # the server's history
    assert not (w.repo / ".conveyor").exists()  # no second state beside the server's
