"""A local git repository standing in for the GitLab project `group/lib` (include: project)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# Tag v1 holds the first version of the template; HEAD (main) the second, plus a template
# with a nested `local:` include that must be read from the same repository and commit.
LINT_V1 = """\
.lint:
  image: python:3.10
  script: [ruff check .]
"""
LINT_HEAD = """\
.lint:
  image: python:3.12
  script: [ruff check --output-format=concise .]
"""
NESTED = """\
include:
  - local: /templates/lint.yml
lib-lint:
  extends: .lint
  stage: test
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def lib_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("group-lib")
    _git(repo, "init", "-q", "-b", "main")
    (repo / "templates").mkdir()
    (repo / "templates" / "lint.yml").write_text(LINT_V1)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "v1")
    (repo / "templates" / "lint.yml").write_text(LINT_HEAD)
    (repo / "templates" / "nested.yml").write_text(NESTED)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v2")
    # Uncommitted changes are not what GitLab would see: only committed content counts.
    (repo / "templates" / "lint.yml").write_text("not: [committed\n")
    return repo
