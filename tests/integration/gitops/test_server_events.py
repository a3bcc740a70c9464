"""Drift seen when it happens (issue 9, item 4), against the real `conveyor server` process
whose heal interval is an hour: within a test, only the Docker events it follows (and its
watch of HAProxy) can explain a correction.

A replica removed with `docker rm -f` is replaced and reported as a `drift.corrected` event
saying it was noticed on a Docker event, and so is a paused one; an HAProxy server put in
maintenance or given another weight through HAProxy's admin socket (not through Conveyor) is
restored and reported, noticed by the server's look at HAProxy; a rollout's own stops are not
drift; a suspended environment is not corrected.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conveyor.deploy.project import ProjectPaths
from conveyor.router.haproxy import HAProxyRouter
from tests.integration.gitops.server_world import ServerWorld, conveyor

HEAL_INTERVAL = 3600.0  # seconds: longer than any wait of this module


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    w = ServerWorld(
        tmp_path_factory.mktemp("events"),
        base_image,
        "evented",
        server_args=("--heal-interval", str(HEAL_INTERVAL)),
    )
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


@pytest.fixture(scope="module")
def tokens(world: ServerWorld) -> dict[str, str]:
    return {role: world.token(role) for role in ("viewer", "deployer")}


def replicas(w: ServerWorld, token: str) -> list[dict[str, Any]]:
    detail = w.api("/environments/staging", token)
    return [r for s in (detail["status"] or {}).get("services", []) for r in s["replicas"]]


def one_in_rotation(w: ServerWorld, token: str) -> dict[str, Any] | None:
    found = replicas(w, token)
    return found[0] if len(found) == 1 and found[0]["router"] == "ready" else None


def events_after(w: ServerWorld, token: str, after: int, kind: str) -> list[dict[str, Any]]:
    return [e for e in w.api(f"/events?after={after}&limit=1000", token) if e["kind"] == kind]


def last_event(w: ServerWorld, token: str) -> int:
    events = w.events(token)
    return int(events[-1]["id"]) if events else 0


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, timeout=120)


def test_a_removed_replica_is_replaced_on_the_docker_event(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w, viewer = world, tokens["viewer"]
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
    gone = w.wait_for(lambda: one_in_rotation(w, viewer), "the replica in rotation")
    after = last_event(w, viewer)
    removed_at = time.time()
    docker("rm", "-f", gone["container"])
    (drift,) = w.wait_for(
        lambda: events_after(w, viewer, after, "drift.corrected"), "the drift event"
    )
    assert drift["subject"]["environment"] == "staging"
    # Healed on the container's Docker events, maybe before dockerd finished removing it:
    # then it is seen dead, and replaced as crashed.
    replaced = {
        "web: replica count restored (1 started)",
        f"web: replica {gone['name']} crashed: replaced",
    }
    assert replaced & set(drift["data"]["corrections"]), drift
    # Its kill, die and destroy: the heal may come before the last of them.
    assert "Docker event: " in drift["data"]["noticed"], drift
    assert f"of {gone['name']}" in drift["data"]["noticed"], drift
    # An hour-long heal interval cannot have done it.
    assert drift["ts"] - removed_at < HEAL_INTERVAL
    now = w.wait_for(lambda: one_in_rotation(w, viewer), "a replica in rotation again")
    assert now["name"] != gone["name"] and now["container"] != gone["container"]
    assert w.serving() == "1"


def haproxy(w: ServerWorld) -> HAProxyRouter:
    return HAProxyRouter(ProjectPaths((w.work / "compose.yaml").resolve(), w.project).router_dir)


def admin_command(w: ServerWorld, command: str) -> str:
    """One command on the environment's HAProxy admin socket, as an operator's socat would
    send it: Conveyor's record of its servers is not touched."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(str(haproxy(w).admin_socket))
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: s.recv(65536), b"")).decode()


@pytest.mark.parametrize(
    ("command", "was"),
    [
        ("set server be_web/{name} state maint", "in maintenance"),
        ("set weight be_web/{name} 10", "at weight 10"),
    ],
)
def test_an_haproxy_server_changed_through_the_admin_socket_is_restored(
    world: ServerWorld, tokens: dict[str, str], command: str, was: str
) -> None:
    w, viewer = world, tokens["viewer"]
    r = w.wait_for(lambda: one_in_rotation(w, viewer), "the replica in rotation")
    after = last_event(w, viewer)
    assert admin_command(w, command.format(name=r["name"])).strip() == ""
    (drift,) = w.wait_for(
        lambda: events_after(w, viewer, after, "drift.corrected"), "the drift event"
    )
    assert (
        f"web: HAProxy server {r['name']} restored (it was {was})" in drift["data"]["corrections"]
    )
    # Noticed by the server's look at HAProxy (which may also list what the last heal before
    # this one changed there itself, when the change came right after it).
    assert drift["data"]["noticed"].startswith("HAProxy: "), drift
    (server,) = [s for s in haproxy(w).servers() if s.server == r["name"]]
    assert (server.admin_state, server.weight) == ("ready", 100)
    assert w.serving() == "1"


def test_a_paused_replica_is_replaced_on_the_docker_event(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w, viewer = world, tokens["viewer"]
    frozen = w.wait_for(lambda: one_in_rotation(w, viewer), "the replica in rotation")
    after = last_event(w, viewer)
    docker("pause", frozen["container"])
    (drift,) = w.wait_for(
        lambda: events_after(w, viewer, after, "drift.corrected"), "the drift event"
    )
    assert f"web: replica {frozen['name']} paused: replaced" in drift["data"]["corrections"]
    assert f"Docker event: pause of {frozen['name']}" in drift["data"]["noticed"], drift
    now = w.wait_for(lambda: one_in_rotation(w, viewer), "a replica in rotation again")
    assert now["container"] != frozen["container"] and w.serving() == "1"


def two_passes(w: ServerWorld, sha: str, tag: str) -> None:
    """Two sync passes, each followed by a heal pass: the second begins only once the first
    one's heal is over, so what was noticed before the first has been dealt with."""
    for n in (1, 2):
        delivery = f"{tag}-{n}"
        assert w.hook(sha, delivery) == 202
        w.wait_for(lambda d=delivery: w.delivery_status(d) == "done", f"pass {delivery}")


def test_a_rollout_stopping_its_old_replica_is_not_drift(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w, viewer = world, tokens["viewer"]
    old = w.wait_for(lambda: one_in_rotation(w, viewer), "the replica in rotation")
    after = last_event(w, viewer)
    sha = w.push("2")
    assert w.hook(sha, "rollout-2") == 202
    w.wait_for(lambda: w.serving() == "2", "version 2 to serve")
    # The old replica's kill, die and destroy events woke the heal; it found nothing to do.
    two_passes(w, sha, "after-rollout-2")
    new = w.wait_for(lambda: one_in_rotation(w, viewer), "the new replica in rotation")
    assert new["container"] != old["container"]
    assert events_after(w, viewer, after, "drift.corrected") == []


def test_a_suspended_environment_is_not_corrected(
    world: ServerWorld, tokens: dict[str, str]
) -> None:
    w, viewer, deployer = world, tokens["viewer"], tokens["deployer"]
    r = w.wait_for(lambda: one_in_rotation(w, viewer), "the replica in rotation")
    done = conveyor(
        "suspend", "staging", cwd=w.root, env={"CONVEYOR_SERVER": w.url, "CONVEYOR_TOKEN": deployer}
    )
    assert done.returncode == 0, done.stderr
    after = last_event(w, viewer)
    docker("rm", "-f", r["container"])
    # Two sync passes, each followed by a heal pass: the second sync begins only once the
    # first pass's heal is over, and the Docker events came long before either.
    for version in ("3", "4"):
        sha = w.push(version)
        assert w.hook(sha, f"suspended-{version}") == 202

        def desired(sha: str = sha) -> bool:
            return bool(w.api("/environments/staging", viewer)["desired_commit"] == sha)

        w.wait_for(desired, f"the server to see version {version}")
    assert replicas(w, viewer) == []
    assert events_after(w, viewer, after, "drift.corrected") == []
    assert w.serving() is None
