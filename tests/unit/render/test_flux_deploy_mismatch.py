"""`render flux --repo URL` and conveyor.yaml `flux.branch` against the kubernetes
environments' `deploy.repo`/`branch`: a mismatch (Flux watching a repository or branch the
server does not write) is a warning at the conveyor.yaml line; the same repository spelled
another way is not."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.app.flux import _same_repo, deploy_target_warnings
from conveyor.cli.main import app

CONVEYOR = """\
flux:
  branch: main
environments:
  staging:
    branch: main
    target: kubernetes
    deploy:
      repo: git@gitlab.example.com:shop/deploy.git
  production:
    branch: main
    target: kubernetes
    deploy:
      repo: ssh://git@gitlab.example.com/shop/other-deploy.git
      branch: prod
  preview:
    branch: preview
"""
COMPOSE = "services:\n  web:\n    image: registry.example.com/shop/web:1.0.0\n"
REPO = "ssh://git@GitLab.example.com/shop/deploy"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "conveyor.yaml").write_text(CONVEYOR)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_deploy_repository_or_branch_flux_does_not_watch_is_named_at_its_line(
    project: Path,
) -> None:
    found = [w.render() for w in deploy_target_warnings(REPO, Path("conveyor.yaml"), project)]

    assert len(found) == 2, found
    assert found[0].startswith("conveyor.yaml:13: environments.production.deploy.repo: ")
    assert "other-deploy.git" in found[0] and "Flux would never apply them" in found[0]
    assert found[1].startswith("conveyor.yaml:14: environments.production.deploy.branch: ")
    assert "branch prod" in found[1] and "branch main (flux.branch, line 2)" in found[1]


def test_render_flux_prints_the_warnings(project: Path) -> None:
    args = ["render", "flux", "--repo", "/srv/elsewhere.git", "--out", "deploy"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)

    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning conveyor.yaml:8: environments.staging.deploy.repo" in said
    assert "warning conveyor.yaml:13: environments.production.deploy.repo" in said
    assert (project / "deploy/flux-system/sync.yaml").is_file()


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        ("git@h.example:a/b.git", "ssh://git@h.example/a/b", True),
        ("ssh://git@H.example/a/b.git/", "ssh://git@h.example/a/b", True),
        ("/srv/deploy.git", "file:///srv/deploy.git", True),
        ("https://h.example/a/b.git", "https://h.example/a/c.git", False),
        ("https://h.example/A/b.git", "https://h.example/a/b.git", False),
    ],
)
def test_one_repository_spelled_two_ways(one: str, other: str, same: bool) -> None:
    assert (_same_repo(one) == _same_repo(other)) is same
