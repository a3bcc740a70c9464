"""`conveyor render kubernetes` and `conveyor render --check`: files, warnings with their
line, an unknown environment, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.errors import SpecError
from conveyor.host.command import tool_path

COMPOSE = """\
name: demo
services:
  web:
    image: demo/web:1.2.0
    user: root
    x-conveyor: {port: 8000, probe: /health, public_port: 8080}
    deploy:
      replicas: 2
      resources:
        limits: {cpus: "0.5", memory: 64M}
"""
CONVEYOR = """\
environments:
  staging: {branch: main, overrides: {web: {replicas: 3}}}
  production: {promote_from: staging}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "conveyor.yaml").write_text(CONVEYOR)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _render(*args: str) -> str:
    result = CliRunner().invoke(
        app, ["render", "kubernetes", "--no-validate", *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_writes_a_base_and_an_overlay_per_environment(project: Path) -> None:
    output = _render("--out", "k8s")
    assert "base + overlays production, staging" in output
    assert "compose.yaml:5: services.web.user: runs as root" in output
    staging = (project / "k8s/overlays/staging/kustomization.yaml").read_text()
    assert "namespace: demo-staging" in staging
    assert "count: 3" in staging
    assert (project / "k8s/base/deployment-web.yaml").is_file()
    first = {p: p.read_bytes() for p in sorted((project / "k8s").rglob("*")) if p.is_file()}
    _render("--out", "k8s")
    assert {p: p.read_bytes() for p in sorted((project / "k8s").rglob("*")) if p.is_file()} == first


def test_one_environment_and_its_image(project: Path) -> None:
    _render("--out", "k8s", "--env", "production", "--image", "web=reg.example/web:1.3.0")
    assert not (project / "k8s/overlays/staging").exists()
    production = (project / "k8s/overlays/production/kustomization.yaml").read_text()
    assert "newName: reg.example/web" in production
    assert "newTag: 1.3.0" in production


def test_an_unknown_environment_names_the_file(project: Path) -> None:
    result = CliRunner().invoke(app, ["render", "kubernetes", "--env", "qa"])
    assert isinstance(result.exception, SpecError)
    assert "no environment 'qa' (known: production, staging)" in result.exception.render()


@pytest.mark.skipif(tool_path("kubectl") is None, reason="kubectl not installed")
def test_kubectl_kustomize_runs_on_every_part(project: Path) -> None:
    result = CliRunner().invoke(app, ["render", "kubernetes", "--out", "k8s"])
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok") == 3


def test_check_reports_per_service_and_fails_on_critical(project: Path) -> None:
    result = CliRunner().invoke(app, ["render", "--check", "--json"])
    assert result.exit_code == 1  # runs as root
    findings = json.loads(result.output)
    levels = {f["check"]: f["level"] for f in findings if f["service"] == "web"}
    assert levels["non-root"] == "critical"
    assert levels["resources"] == "ok"
    assert levels["disruption-budget"] == "ok"
    (project / "compose.yaml").write_text(COMPOSE.replace("user: root", "user: '1000'"))
    result = CliRunner().invoke(app, ["render", "--check"])
    assert result.exit_code == 0, result.output
    assert "web" in result.output


def test_conveyor_yaml_switches_to_ingress_and_a_flag_switches_back(project: Path) -> None:
    (project / "conveyor.yaml").write_text(
        CONVEYOR + "kubernetes:\n  traffic: ingress\n  ingress_class: nginx\n"
    )
    _render("--out", "k8s")
    ingress = (project / "k8s/base/ingress-web.yaml").read_text()
    assert "ingressClassName: nginx" in ingress
    assert not (project / "k8s/base/httproute-web.yaml").exists()
    _render("--out", "k8s", "--gateway-api", "--gateway", "infra/public")
    route = (project / "k8s/base/httproute-web.yaml").read_text()
    assert "namespace: infra" in route
    assert "name: public" in route
    assert not (project / "k8s/base/ingress-web.yaml").exists()
