"""Environments through the real `conveyor ci` commands: a deploy job records its
environment; `ci stop` runs the job named by `on_stop`, alone, and the environment is stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PIPELINE = """
stages: [deploy, test]
deploy-review:
  stage: deploy
  script: ["echo up > $SCRATCH/review-$CI_COMMIT_REF_SLUG"]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    url: http://127.0.0.1:18999/
    on_stop: stop-review
tests:
  stage: test
  script: ["true"]
stop-review:
  stage: test
  needs: [tests]
  when: manual
  script: ["echo down > $SCRATCH/review-$CI_COMMIT_REF_SLUG"]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    action: stop
"""


def ci(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "ci", *args, "--file", str(repo / ".gitlab-ci.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_stop_runs_on_stop_alone_and_marks_the_environment_stopped(tmp_path: Path) -> None:
    repo, scratch = tmp_path / "repo", tmp_path / "scratch"
    repo.mkdir()
    scratch.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE.replace("$SCRATCH", str(scratch)))
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)

    run = ci(repo, "run", "--executor", "shell", "--no-registry", "-q")
    assert run.returncode == 0, run.stderr
    envs = json.loads(ci(repo, "environments", "--json").stdout)["environments"]
    assert [(e["name"], e["state"], e["url"], e["on_stop"]) for e in envs] == [
        ("review/main", "available", "http://127.0.0.1:18999/", "stop-review")
    ]
    assert (scratch / "review-main").read_text().strip() == "up"

    stop = ci(repo, "stop", "review/main", "--executor", "shell", "--no-registry")
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert (scratch / "review-main").read_text().strip() == "down"
    envs = json.loads(ci(repo, "environments", "--json").stdout)["environments"]
    assert envs[0]["state"] == "stopped"
    again = ci(repo, "stop", "review/main", "--executor", "shell", "--no-registry")
    assert again.returncode == 1 and "already stopped" in again.stderr
