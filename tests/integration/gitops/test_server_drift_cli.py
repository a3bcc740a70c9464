"""Drift (issue 9, item 4) and the CLI through the API (`conveyor env`, `diff`, `suspend`,
`resume`), against the real `conveyor server` process.

Changes made behind Conveyor's back — a replica's container removed, one stopped, an HAProxy
server put in maintenance — are corrected by the server's heal pass and reported as
`drift.corrected` events naming the environment and what was corrected. A suspended
environment is not corrected (two sync passes, each followed by a heal pass, go by) until it is
resumed. The CLI reads and acts with tokens of the right roles, and a viewer is told which role
acting needs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.deploy.project import ProjectPaths
from conveyor.router.haproxy import HAProxyRouter
from tests.integration.gitops.server_world import ServerWorld, conveyor


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    w = ServerWorld(tmp_path_factory.mktemp("drift"), base_image, "drifty")
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


@pytest.fixture(scope="module")
def tokens(world: ServerWorld) -> dict[str, str]:
    return {role: world.token(role) for role in ("viewer", "deployer")}


def cli(w: ServerWorld, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return conveyor(*args, cwd=w.root, env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": token})


def cli_json(w: ServerWorld, token: str, *args: str) -> Any:
    done = cli(w, token, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def replica(w: ServerWorld, token: str) -> dict[str, Any]:
    detail = cli_json(w, token, "env", "status", "staging")
    (web,) = detail["status"]["services"]
    (only,) = web["replicas"]
    return dict(only)


def in_rotation(w: ServerWorld, token: str) -> bool:
    """One replica, serving from HAProxy (before the first sync there is none)."""
    detail = cli_json(w, token, "env", "status", "staging")
    replicas = [r for s in (detail["status"] or {}).get("services", []) for r in s["replicas"]]
    return len(replicas) == 1 and replicas[0]["router"] == "ready"


def drift_events(w: ServerWorld, token: str, after: int) -> list[dict[str, Any]]:
    return [
        e
        for e in w.api(f"/events?after={after}&limit=1000", token)
        if e["kind"] == "drift.corrected"
    ]


def last_event(w: ServerWorld, token: str) -> int:
    events = w.events(token)
    return int(events[-1]["id"]) if events else 0


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


def test_the_cli_lists_and_shows_the_environment(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
    envs = cli_json(w, tokens["viewer"], "env", "list")
    assert [(e["name"], e["state"], e["branch"]) for e in envs] == [("staging", "serving", "main")]
    listed = cli(w, tokens["viewer"], "env", "list")
    assert listed.returncode == 0 and "staging" in listed.stdout and "serving" in listed.stdout
    diff = cli_json(w, tokens["viewer"], "diff", "--env", "staging")
    assert diff["in_sync"] is True and diff["running_commit"] == envs[0]["commit"]
    assert replica(w, tokens["viewer"])["router"] == "ready"
    refused = cli(w, tokens["viewer"], "suspend", "staging")
    assert refused.returncode == 1 and "needs the deployer role" in refused.stderr
    missing = cli(w, tokens["viewer"], "env", "status", "production")
    assert missing.returncode == 1 and "no environment 'production'" in missing.stderr


@pytest.mark.parametrize("change", ["removed", "stopped", "haproxy maint"])
def test_drift_is_corrected_and_reported(
    world: ServerWorld, tokens: dict[str, str], change: str
) -> None:
    w, viewer = world, tokens["viewer"]
    w.wait_for(lambda: in_rotation(w, viewer), "the replica in rotation")
    r = replica(w, viewer)
    after = last_event(w, viewer)
    crashed = f"web: replica {r['name']} crashed: replaced"
    if change == "removed":
        docker("rm", "-f", r["container"])
        # Healed on the container's Docker events, maybe before dockerd finished removing it:
        # then it is seen dead, and replaced as crashed.
        expect = {"web: replica count restored (1 started)", crashed}
    elif change == "stopped":
        docker("stop", "-t", "1", r["container"])
        expect = {crashed}
    else:
        paths = ProjectPaths((w.work / "compose.yaml").resolve(), w.project)
        HAProxyRouter(paths.router_dir).set_state("web", r["name"], "maint")
        expect = {f"web: HAProxy server {r['name']} restored (it was in maintenance)"}
    found = w.wait_for(lambda: drift_events(w, viewer, after), f"a drift event ({change})")
    (event,) = found
    assert event["subject"]["environment"] == "staging"
    assert expect & set(event["data"]["corrections"]), event
    assert event["message"].startswith("staging: drift corrected: ")
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve again")
    heals = [e for e in w.api(f"/events?after={after}&limit=1000", viewer)]
    assert not [e for e in heals if e["kind"] == "heal.succeeded"]  # told once, as drift


def test_a_suspended_environment_is_not_corrected_until_resumed(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w, viewer, deployer = world, tokens["viewer"], tokens["deployer"]
    w.wait_for(lambda: in_rotation(w, viewer), "the replica in rotation")
    done = cli(w, deployer, "suspend", "staging")
    assert done.returncode == 0, done.stderr
    r = replica(w, viewer)
    after = last_event(w, viewer)
    docker("rm", "-f", r["container"])
    # Two sync passes, each followed by a heal pass: the second sync starts only once the
    # first pass's heal is over.
    for version in ("2", "3"):
        sha = w.push(version)
        assert w.hook(sha, f"suspended-{version}") == 202

        def desired(sha: str = sha) -> bool:
            return bool(cli_json(w, viewer, "env", "status", "staging")["desired_commit"] == sha)

        w.wait_for(desired, f"the server to see version {version}")
    detail = cli_json(w, viewer, "env", "status", "staging")
    assert detail["environment"]["state"] == "suspended"
    assert detail["status"]["services"][0]["running_replicas"] == 0
    assert drift_events(w, viewer, after) == []
    assert w.serving() is None  # nothing corrected, nothing deployed

    done = cli(w, deployer, "resume", "staging")
    assert done.returncode == 0, done.stderr
    w.wait_for(lambda: w.serving() == "3", "version 3 to serve once resumed")
