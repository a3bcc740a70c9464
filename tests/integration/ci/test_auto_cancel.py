"""GitLab's auto-cancel of redundant pipelines through the real `conveyor ci run`: a newer
pipeline of the same branch cancels an older one whose started jobs are all `interruptible`,
and leaves it alone otherwise (`on_new_commit: conservative`, the default); with
`interruptible` it cancels only the older pipeline's interruptible jobs, with `none` nothing;
a canceled pipeline cancels its child pipelines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.ci.run.prepare import ci_store

PIPELINE = """
slow:
  interruptible: {interruptible}
  script: ["sleep $NAP"]
"""


def repo_for(tmp_path: Path, text: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return repo


def start(repo: Path, *variables: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "conveyor", "ci", "run", "--file", str(repo / ".gitlab-ci.yml"),
        "--executor", "shell", "--no-registry", "-q",
    ]  # fmt: skip
    for v in variables:
        cmd += ["--variable", v]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting: {what}")


def wait_running(repo: Path) -> None:
    jobs = ci_store(repo).jobs
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(j.status == "running" for j in jobs.of(1)):
            return
        time.sleep(0.1)
    pytest.fail("the first pipeline's job never started")


@pytest.mark.parametrize("interruptible", [True, False])
def test_newer_pipeline_cancels_an_interruptible_older_one(
    tmp_path: Path, interruptible: bool
) -> None:
    repo = repo_for(tmp_path, PIPELINE.format(interruptible=str(interruptible).lower()))
    first = start(repo, "NAP=30")
    try:
        wait_running(repo)
        second = start(repo, "NAP=0")
        assert second.wait(timeout=60) == 0
        if interruptible:
            assert first.wait(timeout=30) == 1  # canceled is not success
        else:
            # Pipeline 2 decided at its start and has finished: no cancel was asked of 1,
            # and its job (not interruptible) runs on.
            store = ci_store(repo)
            assert not store.pipelines.cancel_requested(1)
            assert [j.status for j in store.jobs.of(1)] == ["running"]
            assert first.poll() is None
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    store = ci_store(repo)
    one, two = store.pipelines.get(1), store.pipelines.get(2)
    assert one is not None and two is not None and two.status == "success"
    if interruptible:
        assert one.status == "canceled"
        assert [j.status for j in store.jobs.of(1)] == ["canceled"]
        [canceled] = store.events.about(pipeline=1, job=None)[-1:]
        assert canceled.kind == "pipeline.finished" and canceled.data["status"] == "canceled"


# --- workflow:auto_cancel:on_new_commit and downstream pipelines --------------------------------

# `$FAST` makes the newer pipeline finish at once; the older one's jobs wait for `$STOP`.
WAIT = 'if [ -z "$FAST" ]; then until [ -f "$STOP" ]; do sleep 0.1; done; fi'
MODES = f"""
workflow:
  auto_cancel:
    on_new_commit: {{mode}}
stages: [test, deploy]
interruptible-job:
  interruptible: true
  script: ['{WAIT}']
kept-job:
  interruptible: {{kept_interruptible}}
  script: ['{WAIT}']
after-kept:
  stage: deploy
  needs: [kept-job]
  script: [echo after]
"""


def statuses(repo: Path, pipeline: int) -> dict[str, str]:
    return {j.name: j.status for j in ci_store(repo).jobs.of(pipeline)}


@pytest.mark.parametrize("mode", ["interruptible", "none"])
def test_on_new_commit_cancels_what_the_older_pipeline_says(tmp_path: Path, mode: str) -> None:
    """`interruptible`: only the older pipeline's interruptible jobs are canceled, the rest
    runs on; `none`: nothing is canceled, although every started job is interruptible (which
    GitLab's default, conservative, would cancel)."""
    kept = "false" if mode == "interruptible" else "true"
    repo = repo_for(tmp_path, MODES.format(mode=mode, kept_interruptible=kept))
    stop = tmp_path / "stop"
    first = start(repo, f"STOP={stop}")
    try:
        wait_for(
            lambda: sorted(statuses(repo, 1).values()) == ["running", "running"],
            "both jobs of pipeline 1 run",
        )
        second = start(repo, "FAST=1")
        assert second.wait(timeout=60) == 0, second.communicate()[0]
        if mode == "interruptible":
            assert ci_store(repo).pipelines.cancel_request(1) == "interruptible"
            wait_for(
                lambda: statuses(repo, 1).get("interruptible-job") == "canceled",
                "the interruptible job is canceled",
            )
        else:
            assert ci_store(repo).pipelines.cancel_request(1) is None
        stop.touch()
        assert first.wait(timeout=60) == (1 if mode == "interruptible" else 0)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    want = {
        "interruptible": {
            "interruptible-job": "canceled", "kept-job": "success", "after-kept": "success",
        },
        "none": {"interruptible-job": "success", "kept-job": "success", "after-kept": "success"},
    }[mode]  # fmt: skip
    assert statuses(repo, 1) == want
    one = ci_store(repo).pipelines.get(1)
    assert one is not None and one.status == ("canceled" if mode == "interruptible" else "success")
    assert one.auto_cancel_on_new_commit == mode


CASCADE = """
deploy:
  interruptible: true
  trigger:
    include: child.yml
    strategy: depend
    forward: {pipeline_variables: true}
"""
CHILD = f"""
child-job:
  interruptible: true
  script: ['{WAIT}']
"""


def test_canceling_a_pipeline_cancels_its_child_pipelines(tmp_path: Path) -> None:
    """GitLab cascades a cancellation to downstream pipelines: the newer pipeline cancels the
    older one (conservative: every started job interruptible, the child's included), and the
    older one cancels its child."""
    repo = repo_for(tmp_path, CASCADE)
    (repo / "child.yml").write_text(CHILD)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com",
         "commit", "-qm", "child"],
        check=True,
    )  # fmt: skip
    first = start(repo, f"STOP={tmp_path / 'never'}")
    try:
        wait_for(lambda: statuses(repo, 2) == {"child-job": "running"}, "the child job runs")
        second = start(repo, "FAST=1")
        assert second.wait(timeout=60) == 0, second.communicate()[0]
        assert first.wait(timeout=60) == 1
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
    store = ci_store(repo)
    parent, child = store.pipelines.get(1), store.pipelines.get(2)
    assert parent is not None and child is not None
    assert (parent.status, child.status) == ("canceled", "canceled")
    assert child.parent_pipeline_id == 1
    assert statuses(repo, 1) == {"deploy": "canceled"}
    assert statuses(repo, 2) == {"child-job": "canceled"}
