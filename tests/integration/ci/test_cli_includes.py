"""`conveyor ci graph/lint` with what a pipeline's includes need from the command line: the
component catalogs (`--component-catalog`, or `$CONVEYOR_COMPONENT_CATALOG`) and the
pipeline's inputs (`--input`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINE = """\
spec:
  inputs:
    target:
      options: [web, api]
    replicas:
      type: number
      default: 1
---
include:
  - component: $CI_SERVER_FQDN/tools/builders/build@~latest
    inputs:
      target: $[[ inputs.target ]]
      replicas: $[[ inputs.replicas ]]
"""
TEMPLATE = """\
spec:
  inputs:
    target:
    replicas:
      type: number
---
build-$[[ inputs.target ]]:
  parallel: $[[ inputs.replicas ]]
  script: [make]
"""


def _git(repo: Path, *args: str) -> None:
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, *args], check=True, capture_output=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    builders = tmp_path / "builders"
    (builders / "templates").mkdir(parents=True)
    (builders / "templates" / "build.yml").write_text(TEMPLATE)
    _git(builders, "init", "-q", "-b", "main")
    _git(builders, "add", "-A")
    _git(builders, "commit", "-qm", "build")
    _git(builders, "tag", "1.0.0")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / ".gitlab-ci.yml").write_text(PIPELINE)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "x")
    return repo


def _conveyor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "ci", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_catalog_and_inputs_from_the_command_line(project: Path) -> None:
    file = str(project / ".gitlab-ci.yml")
    catalog = f"tools/builders={project.parent / 'builders'}"
    out = _conveyor(
        "graph", "--json", "-f", file, "--component-catalog", catalog,
        "--input", "target=api", "--input", "replicas=2",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    jobs = [j["name"] for s in json.loads(out.stdout)["stages"] for j in s["jobs"]]
    assert jobs == ["build-api 1/2", "build-api 2/2"]

    env = {"CONVEYOR_COMPONENT_CATALOG": catalog}
    lint = _conveyor("lint", "-f", file, "--input", "target=web", env=env)
    assert lint.returncode == 0, lint.stderr
    said = " ".join(lint.stderr.split())
    assert said.startswith("valid: 1 job definitions") and "run for main" in said

    missing = _conveyor("lint", "-f", file, env=env)
    assert missing.returncode == 1
    assert "`target` input: required value has not been provided" in missing.stderr
    no_catalog = _conveyor("lint", "-f", file, "--input", "target=web")
    assert no_catalog.returncode == 1
    assert "no component catalog holds project 'tools/builders'" in no_catalog.stderr
