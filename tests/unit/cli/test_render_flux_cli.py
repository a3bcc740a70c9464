"""`conveyor render flux --repo URL --out DIR`: the files written (the same bytes twice), and
errors naming conveyor.yaml's line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.errors import SpecError

PROJECT = Path(__file__).parents[1] / "render" / "flux_project"
REPO = "ssh://git@gitlab.example.com/store/deploy.git"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("compose.yaml", "conveyor.yaml"):
        shutil.copy(PROJECT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_writes_the_deploy_repository_files(project: Path) -> None:
    args = ["render", "flux", "--repo", REPO, "--out", "deploy"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "wrote 17 files into deploy (environments: production, staging)" in result.output
    sync = (project / "deploy/flux-system/sync.yaml").read_text()
    assert f"url: {REPO}" in sync and "path: ./kubernetes/overlays/staging" in sync
    first = {p: p.read_bytes() for p in (project / "deploy").rglob("*.yaml")}
    CliRunner().invoke(app, args, catch_exceptions=False)
    assert {p: p.read_bytes() for p in (project / "deploy").rglob("*.yaml")} == first


def test_an_unknown_image_service_is_refused_at_its_line(project: Path) -> None:
    conveyor = project / "conveyor.yaml"
    conveyor.write_text(conveyor.read_text().replace("[web, api, worker]", "[web, wokrer]"))
    result = CliRunner().invoke(app, ["render", "flux", "--repo", REPO])
    assert isinstance(result.exception, SpecError)
    assert result.exception.render() == (
        "conveyor.yaml:23: flux.images.services.1: service 'wokrer' is not in the compose "
        "file (did you mean 'worker'?)"
    )
