"""Latest commit wins while a pipeline runs (issue 9, item 2), with the real `conveyor server`
(shell executor) over a bare repository and signed webhooks.

A commit pushed while an older commit's pipeline runs is noticed at once (the webhook wakes the
server's watcher while its worker runs the pipeline) and the running pipeline is handled as its
own `workflow:auto_cancel:on_new_commit` says (GitLab's default, `conservative`):

- its started job is `interruptible`: the pipeline is canceled (its job sleeps far longer than
  the test waits), the newer commit serves, and all of it is told as superseded, at info level;
- its started job is not `interruptible`: the pipeline runs to the end (the test holds it until
  the server has said so for two newer commits), the older commit is not rolled out, the middle
  commit gets no pipeline, and the newest commit serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gitops.server_world import ServerWorld, conveyor

# The job says it started (a file the test waits for), then waits as told.
SLOW = """\
test:
  interruptible: {interruptible}
  script:
    - touch {marker}
    - {wait}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    w = ServerWorld(tmp_path_factory.mktemp("supersede"), base_image, "newest")
    w.push("1")
    w.start()
    try:
        yield w
    finally:
        w.close(conveyor)


def _of(events: list[dict[str, Any]], kind: str, commit: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and e["subject"]["commit"] == commit]


def _pipelines(w: ServerWorld, token: str) -> dict[str, list[dict[str, Any]]]:
    """The environment's pipelines by commit, oldest first."""
    found: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(w.api("/environments/staging/pipelines", token), key=lambda p: p["id"]):
        found.setdefault(p["sha"], []).append(p)
    return found


def _released(w: ServerWorld, token: str) -> set[str]:
    return {r["commit"] for r in w.api("/environments/staging/releases", token)}


def test_a_newer_commit_cancels_the_running_interruptible_pipeline(world: ServerWorld) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
    token = w.token("viewer")
    marker = w.root / "interruptible-started"
    slow = w.push("2", pipeline=SLOW.format(interruptible="true", marker=marker, wait="sleep 600"))
    assert w.hook(slow, "slow") == 202
    w.wait_for(marker.exists, "the slow job to start")

    fast = w.push("3")
    assert w.hook(fast, "fast") == 202
    # The slow job would sleep 600 s, longer than wait_for waits: only a cancel ends it.
    w.wait_for(lambda: w.serving() == "3", "version 3 to serve")

    pipelines = _pipelines(w, token)
    assert [p["status"] for p in pipelines[slow]] == ["canceled"]
    assert [p["status"] for p in pipelines[fast]] == ["success"]
    slow_id = pipelines[slow][0]["id"]
    jobs = w.api(f"/environments/staging/pipelines/{slow_id}/jobs", token)
    assert [j["status"] for j in jobs] == ["canceled"]
    assert slow not in _released(w, token)

    events = w.events(token)
    (noticed,) = _of(events, "sync.superseded", slow)
    assert noticed["level"] == "info"
    assert noticed["data"] == {
        "superseded_by": fast,
        "pipeline": str(slow_id),
        "action": "canceled",
    }
    assert noticed["message"] == (
        f"staging: {slow[:12]} is superseded by {fast[:12]}, newer on main: "
        f"pipeline #{slow_id} is canceled"
    )
    (skipped,) = _of(events, "sync.skipped", slow)
    assert (skipped["level"], skipped["data"]) == ("info", {"superseded_by": fast})
    assert (
        f"not deployed: superseded by {fast[:12]} (pipeline {slow_id} canceled)"
        in (skipped["message"])
    )
    (finished,) = [
        e
        for e in events
        if e["kind"] == "pipeline.finished" and e["subject"]["pipeline"] == slow_id
    ]
    assert (finished["level"], finished["data"]["superseded_by"]) == ("info", fast)
    assert _of(events, "sync.failed", slow) == []  # not a failure

    detail = w.api("/environments/staging", token)
    assert detail["environment"]["state"] == "serving"
    superseded = detail["superseded"]
    assert (superseded["commit"], superseded["by"], superseded["action"]) == (
        slow,
        fast,
        "canceled",
    )


def test_a_started_job_that_is_not_interruptible_keeps_its_pipeline_running(
    world: ServerWorld,
) -> None:
    w = world
    w.wait_for(lambda: w.serving() == "3", "version 3 to serve")
    token = w.token("viewer")
    marker, gate = w.root / "held-started", w.root / "held-gate"
    hold = f"while [ ! -e {gate} ]; do sleep 0.2; done"
    try:
        held = w.push("4", pipeline=SLOW.format(interruptible="false", marker=marker, wait=hold))
        assert w.hook(held, "held") == 202
        w.wait_for(marker.exists, "the held job to start")

        def superseded_by(commit: str) -> dict[str, Any] | None:
            found = w.api("/environments/staging", token)["superseded"]
            return found if found and (found["commit"], found["by"]) == (held, commit) else None

        middle = w.push("5")
        assert w.hook(middle, "middle") == 202
        assert w.wait_for(lambda: superseded_by(middle), "the server to see 5")["action"] == "kept"
        newest = w.push("6")
        assert w.hook(newest, "newest") == 202
        seen = w.wait_for(lambda: superseded_by(newest), "the server to see 6")
        assert seen["action"] == "kept"
        held_id = seen["pipeline"]
        assert (
            f"pipeline #{held_id} runs to the end (job test started and is not interruptible)"
            in (seen["message"])
        )
        # Seen twice and kept twice: the pipeline still runs, with no cancel asked of it.
        assert [p["status"] for p in _pipelines(w, token)[held]] == ["running"]
    finally:
        gate.touch()

    w.wait_for(lambda: w.serving() == "6", "version 6 to serve")
    pipelines = _pipelines(w, token)
    assert [p["status"] for p in pipelines[held]] == ["success"]  # it ran to the end
    assert middle not in pipelines  # skipped: the newest commit came in after it
    assert [p["status"] for p in pipelines[newest]] == ["success"]
    released = _released(w, token)
    assert newest in released and held not in released and middle not in released

    events = w.events(token)
    noticed = _of(events, "sync.superseded", held)
    assert [e["data"]["superseded_by"] for e in noticed] == [middle, newest]
    assert {e["level"] for e in noticed} == {"info"}
    (skipped,) = _of(events, "sync.skipped", held)
    assert skipped["data"] == {"superseded_by": newest}
    assert f"superseded by {newest[:12]} (pipeline {held_id} success)" in skipped["message"]
    assert _of(events, "sync.failed", held) == []
