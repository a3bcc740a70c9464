"""`conveyor.app.ci` end to end with the shell executor: `graph` and `lint` of a real checkout,
`run` reporting to the subscribers it is given (the note when the registry cannot start, the
pipeline's announcement, each job), `stop` running the on_stop job alone, and the CLI
rendering those events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conveyor.app import ci
from conveyor.errors import ConveyorError
from conveyor.model.events import Event
from conveyor.testing.net import free_port

PIPELINE = """
stages: [build, deploy]
build:
  stage: build
  script: ["echo built"]
tagged:
  stage: build
  rules:
    - if: $CI_COMMIT_TAG
  script: ["true"]
deploy-review:
  stage: deploy
  needs: [build]
  script: ["true"]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    on_stop: stop-review
stop-review:
  stage: deploy
  needs: [deploy-review]
  when: manual
  script: ["echo stopping"]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    action: stop
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


@pytest.fixture
def foreign_registry_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[int]:
    """Another HTTP service holds the registry's port: Conveyor's registry cannot start."""

    class NotARegistry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), NotARegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("CONVEYOR_REGISTRY_PORT", str(port))
    monkeypatch.setenv("CONVEYOR_REGISTRY_DIR", str(tmp_path / "registry"))
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()


def test_graph_and_lint_say_which_jobs_run_for_the_ref(repo: Path) -> None:
    f = repo / ".gitlab-ci.yml"
    g = ci.graph(f).model_dump(mode="json")
    assert list(g) == ["version", "ref", "source", "workflow", "stages", "decisions"]
    assert g["ref"] == "main" and g["workflow"]["runs"] is True
    deploy = next(s for s in g["stages"] if s["name"] == "deploy")
    assert deploy["jobs"][0] == {
        "name": "deploy-review",
        "when": "on_success",
        "allow_failure": False,
        "needs": ["build"],
        "trigger": None,
    }
    assert {"job": "tagged", "decision": "excluded", "reason": "rules: no rule matched"} in g[
        "decisions"
    ]
    lint = ci.lint(f, ref="v1")
    assert (lint.definitions, lint.jobs, lint.selected, lint.ref) == (4, 4, 3, "v1")


def test_run_reports_to_its_subscribers_and_stop_runs_on_stop_alone(
    repo: Path, foreign_registry_port: int
) -> None:
    f = repo / ".gitlab-ci.yml"
    seen: list[Event] = []
    r = ci.run(f, executor="shell", subscribers=[seen.append])
    assert r.empty_reason is None and r.pipeline is not None
    assert r.pipeline.status == "success"  # a manual job without rules may wait
    assert [(j.name, j.status) for j in r.pipeline.jobs] == [
        ("build", "success"),
        ("deploy-review", "success"),
        ("stop-review", "manual"),
    ]
    kinds = [e.kind for e in seen]
    assert kinds[:2] == ["pipeline.note", "pipeline.started"]
    note, started = seen[0], seen[1]
    assert note.level == "warning"
    assert note.message.startswith(f"registry not available (127.0.0.1:{foreign_registry_port}")
    assert note.message.endswith("; CI_REGISTRY is not set")
    assert started.data["jobs"] == 3 and started.data["ref"] == "main"
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short=8", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert started.data["short_sha"] == sha
    assert "built" in "".join(e.message for e in seen if e.kind == "job.output")
    assert kinds[-1] == "pipeline.finished"

    with pytest.raises(ConveyorError, match="another service holds port"):
        ci.stop(f, "review/main", executor="shell")  # a stop needs its registry
    stopped: list[Event] = []
    pl = ci.stop(f, "review/main", executor="shell", registry=False, subscribers=[stopped.append])
    assert (pl.id, pl.status, [j.name for j in pl.jobs]) == (2, "success", ["stop-review"])
    assert "pipeline.note" not in {e.kind for e in stopped}
    assert ci.environments(f).environments[0].state == "stopped"

    never = repo / "never.yml"
    never.write_text("workflow:\n  rules:\n    - when: never\njob:\n  script: [echo]\n")
    empty = ci.run(never, executor="shell", registry=False)
    assert (
        empty.pipeline is None
        and empty.empty_reason == "workflow:rules[0] (no condition): when never"
    )
    assert [p.id for p in ci.history(f).pipelines] == [2, 1]  # nothing recorded


def test_the_cli_renders_the_note_the_announcement_and_the_summary(
    repo: Path, foreign_registry_port: int
) -> None:
    cmd = [sys.executable, "-m", "conveyor", "ci", "run", "--executor", "shell", "-q"]
    out = subprocess.run(
        [*cmd, "--file", str(repo / ".gitlab-ci.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.replace("\n", " ")
    assert lines.index("registry not available") < lines.index("pipeline for main @ ")
    assert ": 3 jobs" in lines and "✓ deploy-review success" in lines
    assert "pipeline 1: success" in out.stdout
    assert "environment review/main: deployed by deploy-review" in out.stdout


def test_lint_and_run_warn_of_a_key_written_twice(repo: Path) -> None:
    """GitLab keeps the last value of a duplicated key; Conveyor does too, and says where."""
    f = repo / ".gitlab-ci.yml"
    f.write_text(PIPELINE + 'build:\n  stage: build\n  script: ["echo rebuilt"]\n')
    lint = ci.lint(f)
    line = PIPELINE.count("\n") + 1
    assert lint.warnings == [
        f"{f}:{line}: duplicate key 'build': this value replaces the one on line 3 "
        "(the last one wins)"
    ]
    seen: list[Event] = []
    r = ci.run(f, executor="shell", registry=False, jobs=["build"], subscribers=[seen.append])
    assert r.pipeline is not None and r.pipeline.status == "success"
    notes = [e.message for e in seen if e.kind == "pipeline.note"]
    assert notes == [f"warning: {lint.warnings[0]}"]
    assert "rebuilt" in "".join(e.message for e in seen if e.kind == "job.output")


def test_cli_lint_counts_definitions_and_jobs_apart_and_prints_warnings(repo: Path) -> None:
    f = repo / ".gitlab-ci.yml"
    f.write_text(
        "test:\n  parallel: 3\n  script: [echo]\n"
        "build:\n  parallel:\n    matrix:\n      - OS: [linux, mac]\n  script: [echo]\n"
        "manual:\n  when: manual\n  rules: [{if: $NEVER}]\n  script: [echo]\n"
        "test:\n  parallel: 2\n  script: [echo twice]\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "conveyor", "ci", "lint", "--file", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "500"},  # one line per message
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stderr.split())
    assert "valid: 3 job definitions, 5 jobs once parallel is expanded, in 5 stages; " in text
    assert "4 of those jobs run for main (push)" in text
    assert f"warning: {f}:13: duplicate key 'test'" in text
