"""GitLab's auto-cancel of redundant pipelines through the real `conveyor ci run`: a newer
pipeline of the same branch cancels an older one whose started jobs are all `interruptible`,
and leaves it alone otherwise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.ci.run.prepare import ci_store

PIPELINE = """
slow:
  interruptible: {interruptible}
  script: ["sleep $NAP"]
"""


def repo_with(tmp_path: Path, interruptible: bool) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.format(interruptible=str(interruptible).lower()))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return repo


def ci_run(repo: Path, nap: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "conveyor",
        "ci",
        "run",
        "--file",
        str(repo / ".gitlab-ci.yml"),
        "--executor",
        "shell",
        "--no-registry",
        "-q",
        "--variable",
        f"NAP={nap}",
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


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
    repo = repo_with(tmp_path, interruptible)
    first = ci_run(repo, "30")
    try:
        wait_running(repo)
        second = ci_run(repo, "0")
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
