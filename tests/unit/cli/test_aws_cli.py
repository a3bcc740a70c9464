"""`conveyor aws render`: files written, the same bytes twice, errors naming file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.errors import SpecError

COMPOSE = """\
name: demo
services:
  web:
    image: demo/web:1
    x-conveyor: {port: 8000, probe: /health, public_port: 8080}
  worker:
    image: demo/worker:1
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_render_writes_template_and_parameters(project: Path) -> None:
    (project / "conveyor.yaml").write_text("aws:\n  region: eu-west-1\n  stack_name: demo-prod\n")
    result = CliRunner().invoke(app, ["aws", "render", "--out", "cfn"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stack demo-prod, eu-west-1; published services: web:8080" in result.output
    template = json.loads((project / "cfn/template.json").read_text())
    assert "TargetGroupWeb" in template["Resources"]
    assert not any(k.endswith("Worker") for k in template["Resources"])  # not published
    parameters = json.loads((project / "cfn/parameters.json").read_text())
    assert parameters[0]["ParameterKey"] == "HostImage"
    first = (project / "cfn/template.json").read_bytes()
    CliRunner().invoke(app, ["aws", "render", "--out", "cfn"], catch_exceptions=False)
    assert (project / "cfn/template.json").read_bytes() == first


def test_render_without_conveyor_yaml_uses_the_defaults(project: Path) -> None:
    result = CliRunner().invoke(app, ["aws", "render", "--out", "cfn"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "stack conveyor-demo, us-east-1" in result.output


def test_render_refuses_a_mistyped_key_with_its_line(project: Path) -> None:
    (project / "conveyor.yaml").write_text("aws:\n  hosts:\n    instance_typ: t3.large\n")
    result = CliRunner().invoke(app, ["aws", "render"])
    assert isinstance(result.exception, SpecError)
    assert result.exception.render().startswith(
        "conveyor.yaml:3: aws.hosts.instance_typ: unknown key"
    )
    assert "did you mean 'instance_type'?" in result.exception.render()
    assert not (project / "cloudformation").exists()
