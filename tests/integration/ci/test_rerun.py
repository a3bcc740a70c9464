"""Retry and play with the shell executor, end to end: a failed job of a stored pipeline runs
again as a new attempt with its `needs`' artifacts and dotenv variables, the skipped jobs after
it then run, the pipeline's status is recomputed; a blocking manual job is played and unblocks
the deploy stage; what cannot be retried or played is refused; `conveyor ci retry` and
`conveyor ci play` do the same from the command line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conveyor.app import ci
from conveyor.errors import ConveyorError
from conveyor.model.events import Event
from tests.integration.ci.cli_helpers import Cli

PIPELINE = """
stages: [build, test, deploy]
build:
  stage: build
  script:
    - mkdir -p out && echo built > out/app.txt
    - echo "VERSION=7" > build.env
  artifacts:
    paths: [out/]
    reports:
      dotenv: build.env
test:
  stage: test
  script:
    - cat out/app.txt
    - echo "version=$VERSION"
    - test -f flag
gate:
  stage: test
  needs: []
  rules:
    - when: manual
  script: ["echo gate opened"]
deploy:
  stage: deploy
  script: ["echo deploying $VERSION from $(cat out/app.txt)"]
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    return repo


def statuses(view: ci.PipelineView) -> list[tuple[str, str, int]]:
    return [(j.name, j.status, j.attempt) for j in view.jobs]


def test_retry_then_play_run_the_job_and_what_it_unblocks(repo: Path) -> None:
    f = repo / ".gitlab-ci.yml"
    first = ci.run(f, executor="shell", registry=False).pipeline
    assert first is not None
    # The manual gate blocks (rules: when: manual is not allowed to fail): the pipeline
    # waits for it, over test's failure, as on GitLab.
    assert first.status == "manual"
    test = next(j for j in first.jobs if j.name == "test")
    with pytest.raises(ConveyorError, match="play it instead"):
        ci.retry(f, next(j.id for j in first.jobs if j.name == "gate"), registry=False)

    (repo / "flag").write_text("")  # what the test job wanted (untracked: same commit)
    seen: list[Event] = []
    after = ci.retry(
        f, test.id, executor="shell", registry=False, subscribers=[seen.append], actor="bob"
    )
    assert after.id == first.id
    assert statuses(after) == [
        ("build", "success", 1),
        ("test", "failed", 1),
        ("gate", "manual", 1),
        ("deploy", "created", 1),  # still behind the blocking gate
        ("test", "success", 2),
    ]
    retried = after.jobs[-1]
    assert retried.retry_of == test.id
    log = ci.logs(f, str(retried.id)).text
    assert "built" in log and "version=7" in log  # the stored artifacts and dotenv
    assert after.status == "manual"
    note = next(e for e in seen if e.kind == "pipeline.note")
    assert "by bob" in note.message and note.subject.pipeline == first.id

    gate = next(j for j in after.jobs if j.name == "gate")
    played = ci.play(f, gate.id, executor="shell", registry=False)
    assert statuses(played) == [
        ("build", "success", 1),
        ("test", "failed", 1),
        ("gate", "success", 1),  # the same record: a manual job runs once played
        ("deploy", "success", 1),
        ("test", "success", 2),
    ]
    assert played.status == "success"
    deploy = next(j for j in played.jobs if j.name == "deploy")
    assert "deploying 7 from built" in ci.logs(f, str(deploy.id)).text
    with pytest.raises(ConveyorError, match="not a manual job"):
        ci.play(f, gate.id, registry=False)
    with pytest.raises(ConveyorError, match="not the latest attempt"):
        ci.retry(f, test.id, registry=False)


def test_cli_retry_and_play(repo: Path, cli: Cli) -> None:
    code, _, _ = cli("ci", "run", "--file", str(repo / ".gitlab-ci.yml"), "--executor", "shell",
                     "--no-registry", "-q")  # fmt: skip
    assert code == 0  # blocked by a manual job is not a failure of `ci run`
    view = ci.show(repo / ".gitlab-ci.yml", 1)
    ids = {j.name: j.id for j in view.jobs}
    args = ("--file", str(repo / ".gitlab-ci.yml"), "--executor", "shell", "--no-registry")
    code, out, err = cli("ci", "retry", str(ids["test"]), *args)
    # fails again (no flag); the pipeline still waits on the gate: blocked, not failed
    assert code == 0 and "test failed" in err and "pipeline 1: manual" in out
    code, _, err = cli("ci", "play", str(ids["build"]), *args)
    assert code != 0 and "not a manual job" in err
    code, _, _ = cli("ci", "play", str(ids["gate"]), *args)
    assert code == 1  # test still failed: the gate ran, deploy was skipped
    assert ci.show(repo / ".gitlab-ci.yml", 1).status == "failed"
