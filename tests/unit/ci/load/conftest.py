"""Local git repositories standing in for the GitLab project `group/lib` (include: project)
and for a catalog of CI/CD components (include: component), and the context corpus cases
load with."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conveyor.ci.load.components import Catalog
from conveyor.ci.load.context import LoadContext

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


# --- component catalog ---------------------------------------------------------------------------
# A catalog directory holding `my-org/security-components` (releases 1.0.0 and 1.1.0, a
# pre-release 2.0.0-rc1 and an unreleased commit on main) and `my-org/unreleased` (no tag).
SECRET_V1 = """\
spec:
  inputs:
    stage:
      default: test
---
secret-detection:
  stage: $[[ inputs.stage ]]
  script:
    - echo "secret-detection 1.0.0"
"""
SECRET_V1_1 = """\
spec:
  component: [name, version, reference]
  inputs:
    stage:
      default: test
    job-prefix:
      default: ""
---
"$[[ inputs.job-prefix ]]secret-detection":
  stage: $[[ inputs.stage ]]
  script:
    - echo "$[[ component.name ]] $[[ component.version ]] via $[[ component.reference ]]"
"""
SAST = """\
spec:
  inputs:
    image:
      default: semgrep
---
include:
  - local: templates/sast/rules.yml
sast:
  extends: .sast-rules
  image: $[[ inputs.image ]]
  script: [echo sast]
"""
SAST_RULES = """\
.sast-rules:
  stage: test
"""


@pytest.fixture(scope="session")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    repo = root / "my-org" / "security-components"
    (repo / "templates" / "sast").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    steps = [
        ({"templates/secret-detection.yml": SECRET_V1}, "1.0.0"),
        (
            {
                "templates/secret-detection.yml": SECRET_V1_1,
                "templates/sast/template.yml": SAST,
                "templates/sast/rules.yml": SAST_RULES,
            },
            "1.1.0",
        ),
        ({"templates/secret-detection.yml": SECRET_V1_1.replace("test", "rc")}, "2.0.0-rc1"),
        ({"templates/secret-detection.yml": SECRET_V1_1.replace("test", "main")}, None),
    ]
    for files, tag in steps:
        for name, text in files.items():
            (repo / name).write_text(text)
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "-m", tag or "unreleased")
        if tag:
            _git(repo, "tag", tag)
    bare = root / "my-org" / "unreleased"
    (bare / "templates").mkdir(parents=True)
    _git(bare, "init", "-q", "-b", "main")
    (bare / "templates" / "lint.yml").write_text("lint:\n  script: [echo lint]\n")
    _git(bare, "add", ".")
    _git(bare, "commit", "-q", "-m", "first")
    return root


@pytest.fixture
def load_context(lib_repo: Path, catalog: Path) -> Callable[[Path, str], LoadContext]:
    """The context a corpus case loads with: `group/lib`, the catalog, and what its optional
    `<name>.context.yaml` gives (`variables`, `masked`, `changed`, `inputs`; `catalogs: []`
    drops the catalog)."""

    def make(folder: Path, name: str) -> LoadContext:
        path = folder / f"{name}.context.yaml"
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
        unknown = set(raw) - {"variables", "masked", "changed", "inputs", "catalogs"}
        assert not unknown, f"{path}: unknown keys {sorted(unknown)}"
        return LoadContext(
            variables={str(k): str(v) for k, v in (raw.get("variables") or {}).items()},
            masked=frozenset(raw.get("masked") or ()),
            changed=None if raw.get("changed") is None else tuple(raw["changed"]),
            inputs=raw.get("inputs") or {},
            projects={"group/lib": lib_repo},
            catalogs=() if raw.get("catalogs") == [] else (Catalog(catalog),),
        )

    return make
