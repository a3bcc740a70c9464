"""`conveyor aws plan|apply|diff` against moto's server on 127.0.0.1 (docs/aws.md, "What is
tested"): a plan of a new stack leaves nothing behind, apply creates it, diff finds nothing,
a changed conveyor.yaml plans and diffs the expected resources, apply updates; a change set
AWS refuses is a clear error. Which resource types moto creates is asserted, so the list in
docs/aws.md of those it does not stays true."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.integration.aws.conftest import Moto

pytestmark = pytest.mark.integration

IMAGE = "/conveyor/test/debian"  # moto reserves /aws/service/: the test's own AMI parameter
COMPOSE = """\
name: demo
services:
  web:
    image: demo/web:1
    x-conveyor: {port: 8000, probe: /health, public_port: 8080}
  api:
    image: demo/api:1
    x-conveyor: {port: 8000, probe: /ready, public_port: 8081}
"""
CONVEYOR = f"""\
aws:
  region: us-east-1
  default_service: web
  hosts: {{image_parameter: {IMAGE}, max: 4}}
  alarms: {{email: ops@example.com}}
"""
# The types docs/aws.md says moto's CloudFormation skips.
NOT_CREATED_BY_MOTO = {
    "AWS::AutoScaling::ScalingPolicy",
    "AWS::CloudWatch::Alarm",
    "AWS::DLM::LifecyclePolicy",
    "AWS::EC2::SecurityGroupEgress",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
}


@pytest.fixture
def project(tmp_path: Path, aws_env: Moto, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "conveyor.yaml").write_text(CONVEYOR)
    monkeypatch.chdir(tmp_path)
    boto3.client("ssm", region_name="us-east-1", endpoint_url=aws_env.url).put_parameter(
        Name=IMAGE, Value="ami-12c6146b", Type="String", Overwrite=True
    )
    return tmp_path


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def stack_names(moto: Moto) -> set[str]:
    client = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=moto.url)
    return {
        s["StackName"]
        for s in client.list_stacks()["StackSummaries"]
        if s["StackStatus"] not in ("DELETE_COMPLETE",)
    }


def test_plan_apply_diff_update(project: Path, aws_env: Moto) -> None:
    client = boto3.client("cloudformation", region_name="us-east-1", endpoint_url=aws_env.url)
    code, out = cli("aws", "render", "--out", "out")
    assert code == 0, out
    template = json.loads((project / "out/template.json").read_text())
    types = {r["Type"] for r in template["Resources"].values()}

    # plan of a stack that does not exist: every resource is an Add; nothing is left behind
    code, out = cli("aws", "plan", "--json")
    assert code == 0, out
    plan = json.loads(out)
    assert (plan["stack_name"], plan["kind"]) == ("conveyor-demo", "CREATE")
    assert {c["logical_id"] for c in plan["changes"]} == set(template["Resources"])
    assert {c["action"] for c in plan["changes"]} == {"Add"}
    assert "conveyor-demo" not in stack_names(aws_env)

    # apply creates it
    code, out = cli("aws", "apply")
    assert code == 0, out
    assert "conveyor-demo: CREATE_COMPLETE" in out
    made = client.list_stack_resources(StackName="conveyor-demo")["StackResourceSummaries"]
    created = {r["ResourceType"] for r in made}
    assert types - created == NOT_CREATED_BY_MOTO
    groups = [r for r in made if r["ResourceType"] == "AWS::ElasticLoadBalancingV2::TargetGroup"]
    assert len(groups) == 2

    # nothing to diff, nothing to apply
    code, out = cli("aws", "diff")
    assert (code, out.strip()) == (0, "conveyor-demo: the deployed template is the rendered one")
    code, out = cli("aws", "apply")
    assert code == 0 and "conveyor-demo: no changes" in out, out

    # a changed conveyor.yaml: more hosts allowed, snapshots off, api no longer published
    (project / "conveyor.yaml").write_text(
        CONVEYOR.replace("max: 4", "max: 6") + "  snapshots: {enabled: false}\n"
    )
    (project / "compose.yaml").write_text(COMPOSE.replace(", public_port: 8081", ""))
    code, out = cli("aws", "plan", "--json")
    assert code == 0, out
    changes = {(c["action"], c["logical_id"]) for c in json.loads(out)["changes"]}
    assert ("Modify", "HostGroup") in changes
    assert {("Remove", "SnapshotPolicy"), ("Remove", "SnapshotRole")} <= changes
    assert {("Remove", "TargetGroupApi"), ("Remove", "RuleApi")} <= changes
    assert not any(action == "Add" for action, _ in changes)

    code, out = cli("aws", "diff", "--json")
    assert code == 1
    diffs = {(d["action"], d["logical_id"]) for d in json.loads(out)}
    assert {
        ("changed", "HostGroup"),
        ("removed", "SnapshotPolicy"),
        ("removed", "TargetGroupApi"),
    } <= diffs
    host_group = next(d for d in json.loads(out) if d["logical_id"] == "HostGroup")
    assert '-    "MaxSize": "4",' in host_group["lines"]
    assert '+    "MaxSize": "6",' in host_group["lines"]

    code, out = cli("aws", "apply")
    assert code == 0, out
    assert "conveyor-demo: UPDATE_COMPLETE" in out
    code, out = cli("aws", "diff")
    assert code == 0, out


def test_a_change_set_aws_refuses_is_a_clear_error(project: Path, aws_env: Moto) -> None:
    missing = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"
    (project / "conveyor.yaml").write_text(CONVEYOR + f"  certificate_arn: {missing}\n")
    result = CliRunner().invoke(app, ["aws", "apply", "--stack-name", "refused"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception)
    assert "certificate" in str(result.exception).lower()
    assert "refused" in str(result.exception)


def test_diff_of_a_stack_that_does_not_exist(project: Path) -> None:
    result = CliRunner().invoke(app, ["aws", "diff", "--stack-name", "never-made"])
    assert result.exit_code != 0
    assert "stack never-made does not exist in us-east-1" in str(result.exception)
