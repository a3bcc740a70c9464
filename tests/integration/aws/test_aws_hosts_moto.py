"""`hosts_from: aws` against moto's server on 127.0.0.1 (docs/aws.md, "The group's hosts as
the fleet"): the stack applied as `conveyor aws apply` does (moto's CloudFormation makes the Auto
Scaling group, and moto's Auto Scaling launches its instances), then its running instances
are the project's fleet (`Project.fleet()`, `conveyor aws hosts`); a terminated instance leaves
it (and the replacement the group launches joins), seen by a controller's learned fleet."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from typer.testing import CliRunner

from conveyor.app.aws import AwsStack, aws_apply, aws_inputs
from conveyor.app.aws_hosts import aws_fleet_source
from conveyor.app.project import Project
from conveyor.cli.main import app
from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.deploy.fleet_health import FleetHealth
from conveyor.errors import AwsError
from conveyor.provision.aws.cloudformation import CloudFormation
from tests.integration.aws.conftest import Moto

pytestmark = pytest.mark.integration

IMAGE = "/conveyor/test/debian"  # moto reserves /aws/service/: the test's own AMI parameter
COMPOSE = """\
name: fleetaws
services:
  web:
    image: demo/web:1
    x-conveyor: {port: 8000, probe: /health, public_port: 8080}
"""
CONVEYOR = f"""\
hosts_from: aws
aws:
  region: us-east-1
  hosts: {{image_parameter: {IMAGE}, min: 2, desired: 2, ssh_key: keys/deploy}}
"""


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def hosts_json() -> dict[str, object]:
    code, out = cli("aws", "hosts", "--json")
    assert code == 0, out
    listed: dict[str, object] = json.loads(out)
    return listed


def test_the_groups_running_instances_are_the_fleet(
    tmp_path: Path, aws_env: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    (tmp_path / "conveyor.yaml").write_text(CONVEYOR)
    monkeypatch.chdir(tmp_path)
    region = {"region_name": "us-east-1", "endpoint_url": aws_env.url}
    boto3.client("ssm", **region).put_parameter(
        Name=IMAGE, Value="ami-12c6146b", Type="String", Overwrite=True
    )

    # before the stack exists: a clear error, naming the stack and what makes it
    project = Project.open(None, None, {"AWS_ENDPOINT_URL": aws_env.url}, tmp_path)
    with pytest.raises(AwsError, match="stack conveyor-fleetaws does not exist in us-east-1"):
        project.fleet()

    # the stack as `conveyor aws apply` makes it (polled faster than the command does)
    inputs = aws_inputs(AwsStack([], Path("conveyor.yaml"), {}, tmp_path))
    applied = aws_apply(inputs, aws_env.url, connect=lambda r, e: CloudFormation.connect(r, e, 0.2))
    assert applied.state.status == "CREATE_COMPLETE"

    # the group's two instances, as EC2 describes them, are the project's fleet
    ec2 = boto3.client("ec2", **region)
    running = {
        i["InstanceId"]: i
        for r in ec2.describe_instances(
            Filters=[
                {"Name": "tag:conveyor:stack", "Values": ["conveyor-fleetaws"]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        for i in r["Instances"]
    }
    assert len(running) == 2
    fleet = project.fleet()
    assert fleet.hosts_from == "aws" and fleet.is_fleet
    assert {h.name for h in fleet.hosts} == set(running)
    for host in fleet.hosts:
        described = running[host.name]
        assert host.address == described["PrivateIpAddress"]
        assert (host.user, host.key, host.roles) == (
            "deploy",
            str(tmp_path / "keys/deploy"),
            ("app",),
        )
        assert host.labels == {
            "zone": described["Placement"]["AvailabilityZone"],
            "instance_type": "t3.small",
        }
    assert not fleet.with_role("edge")  # the load balancer is the edge

    listed = hosts_json()
    assert (listed["stack_name"], listed["region"]) == ("conveyor-fleetaws", "us-east-1")
    rows = listed["hosts"]
    assert isinstance(rows, list)
    assert {(r["instance_id"], r["in_fleet"], r["state"]) for r in rows} == {
        (i, True, "running") for i in running
    }

    # a controller's learned fleet (asked at every look here: ttl 0) follows the group
    source = aws_fleet_source(
        tmp_path / "conveyor.yaml",
        "conveyor.yaml",
        "fleetaws",
        {"AWS_ENDPOINT_URL": aws_env.url},
        ttl=0,
    )
    health = FleetHealth(FleetEngines(source, tmp_path / "run"))
    assert {h.name for h in health.hosts} == set(running)
    gone, kept = sorted(running)
    ec2.terminate_instances(InstanceIds=[gone])

    change = health.follow()
    assert [h.name for h in change.left] == [gone]
    assert kept in {h.name for h in health.hosts} and gone not in {h.name for h in health.hosts}
    assert not health.known(gone)
    # moto's group launches a replacement, as AWS's does: it joins, not yet trusted
    (new,) = change.joined
    assert new.name not in running
    assert health.health(new.name).status == "returning"
    assert {h.name for h in health.placeable()} == {kept}

    # `conveyor aws hosts` shows the terminated instance out of the fleet, or not at all
    rows = hosts_json()["hosts"]
    assert isinstance(rows, list)
    in_fleet = {r["instance_id"] for r in rows if r["in_fleet"]}
    assert in_fleet == {kept, new.name}
    assert all(r["left_out"] for r in rows if r["instance_id"] == gone)
