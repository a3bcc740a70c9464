"""`ci lint` and `ci graph` on a corpus of real-world-style pipelines (`tests/ci_corpus`).

Each `tests/ci_corpus/<case>/` is a project written in the style of a well-known public pipeline
(freedesktop's ci-templates, GNOME, F-Droid, Wireshark, Xen, GitLab's own templates vendored
locally, monorepos with child pipelines, CI/CD components, `spec: inputs`). Its `expect.yaml` says
what GitLab does with it: whether the file is valid (and the error GitLab names), and for a valid
one the pipeline GitLab creates for the ref: every job with its stage, `when` and `needs`.
The cases run through the real CLI (`conveyor ci lint`, `conveyor ci graph --json`) in-process.
See `tests/ci_corpus/README.md` for the keys.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field
from typer.testing import CliRunner

from conveyor.cli.main import app

CONVEYOR = str(Path(sys.executable).with_name("conveyor"))
CORPUS = Path(__file__).resolve().parents[2] / "ci_corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expect.yaml").is_file())
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Corpus Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Corpus Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class ExpectedJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: str
    when: str = "on_success"
    needs: list[str] | None = None  # None: stage order (no `needs:`)
    allow_failure: bool = False


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str
    style: str  # which public pipeline's style it follows
    ref: str | None = None
    source: str = "push"
    setup: list[str] = Field(default_factory=list)
    projects: dict[str, list[str]] = Field(default_factory=dict)  # group/name -> tags at HEAD
    # group/project -> versions: catalog/group/project/<version>/ committed in order, each tagged
    catalog: dict[str, list[str]] = Field(default_factory=dict)
    lint_error: list[str] | None = None  # substrings of GitLab's error; None: the file is valid
    warnings: list[str] = Field(default_factory=list)
    no_pipeline: bool = False
    jobs: dict[str, ExpectedJob] = Field(default_factory=dict)
    children: dict[str, dict[str, ExpectedJob]] = Field(default_factory=dict)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "commit.gpgsign=false", *args],
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
    )


def _repo(path: Path, tags: list[str]) -> None:
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-qm", "corpus")
    for tag in tags:
        _git(path, "tag", tag)


def _project(case: str, tmp_path: Path) -> tuple[Path, Expect, list[str]]:
    expect = Expect.model_validate(yaml.safe_load((CORPUS / case / "expect.yaml").read_text()))
    work = tmp_path / case
    skip = shutil.ignore_patterns("expect.yaml", "projects", "catalog")
    shutil.copytree(CORPUS / case, work, ignore=skip)
    options: list[str] = []
    for name, tags in expect.projects.items():
        src = CORPUS / case / "projects" / name
        dest = tmp_path / "projects" / name
        shutil.copytree(src, dest)
        _repo(dest, tags)
        options += ["--include-project", f"{name}={dest}"]
    for name, versions in expect.catalog.items():
        dest = tmp_path / "catalog" / name
        dest.mkdir(parents=True)
        _git(dest, "init", "-q", "-b", "main")
        for version in versions:
            for old in dest.iterdir():
                if old.name != ".git":
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            shutil.copytree(CORPUS / case / "catalog" / name / version, dest, dirs_exist_ok=True)
            # Versions may differ only in content of the same size: re-read every file.
            _git(dest, "rm", "-rq", "--cached", "--ignore-unmatch", ".")
            _git(dest, "add", "-A")
            _git(dest, "commit", "-qm", version)
            _git(dest, "tag", version)
    if expect.catalog:
        options += ["--component-catalog", str(tmp_path / "catalog")]
    _repo(work, [])
    for command in expect.setup:
        subprocess.run(
            command,
            shell=True,
            cwd=work,
            check=True,
            capture_output=True,
            env={**os.environ, **GIT_ENV},
        )
    if expect.ref is not None:
        options += ["--ref", expect.ref]
    options += ["--source", expect.source]
    return work, expect, options


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES)
def test_lint_and_graph_give_gitlabs_result(case: str, tmp_path: Path) -> None:
    work, expect, options = _project(case, tmp_path)
    file = str(work / ".gitlab-ci.yml")
    runner = CliRunner()

    # lint as a user runs it: its own process, so errors go through the CLI's one error handler.
    lint = subprocess.run(
        [CONVEYOR, "ci", "lint", "--file", file, *options],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = lint.stdout + lint.stderr
    text = " ".join(output.split())
    if expect.lint_error is not None:
        assert lint.returncode == 1, f"{case}: expected an error, got: {output}"
        for part in expect.lint_error:
            assert part in text, f"{case}: {part!r} not in {output!r}"
        return
    assert lint.returncode == 0, f"{case}: {output}"
    for part in expect.warnings:
        assert part in text, f"{case}: warning {part!r} not in {output!r}"

    result = runner.invoke(app, ["ci", "graph", "--json", "--file", file, *options])
    assert result.exit_code == 0, f"{case}: {result.output}"
    graph: dict[str, Any] = json.loads(result.stdout)
    if expect.no_pipeline:
        assert not graph["workflow"]["runs"] or not _jobs(graph), graph
        return
    _assert_jobs(case, graph, expect.jobs)
    downstream = {
        job["name"]: job["trigger"]["pipeline"]
        for stage in graph["stages"]
        for job in stage["jobs"]
        if job.get("trigger") and job["trigger"]["pipeline"] is not None
    }
    assert sorted(downstream) == sorted(expect.children), f"{case}: downstream pipelines differ"
    for trigger, child in downstream.items():
        _assert_jobs(f"{case} > {trigger}", child, expect.children[trigger])


def _assert_jobs(case: str, graph: dict[str, Any], expected: dict[str, ExpectedJob]) -> None:
    jobs = _jobs(graph)
    assert sorted(jobs) == sorted(expected), f"{case}: jobs differ"
    for name, want in expected.items():
        assert jobs[name] == want.model_dump(), f"{case}: job {name!r}"


def _jobs(graph: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        job["name"]: {
            "stage": stage["name"],
            "when": job["when"],
            "needs": job["needs"],
            "allow_failure": job["allow_failure"],
        }
        for stage in graph["stages"]
        for job in stage["jobs"]
    }
