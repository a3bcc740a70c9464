"""plan.aws_fleet: the instances of the stack's Auto Scaling group -> the fleet's hosts (name
from the instance id, private or public address, the ssh user and key of aws.hosts, the app
role only, zone and instance type as labels), and why an instance is left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.model.aws import AwsInstance, HostsSettings
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.plan.aws_fleet import aws_fleet, instance_host, left_out
from conveyor.plan.placement import place
from conveyor.spec.compose import load_stack

HOSTS = HostsSettings(ssh_user="deploy", ssh_key="/srv/app/keys/deploy")


def _instance(instance_id: str = "i-0a", **changes: str | None) -> AwsInstance:
    base = AwsInstance(
        instance_id=instance_id,
        zone="eu-west-1a",
        instance_type="t3.small",
        state="running",
        lifecycle="InService",
        private_ip="10.20.96.4",
        public_ip="203.0.113.7",
    )
    return base.model_copy(update=changes)


def test_a_running_instance_in_service_is_an_app_host() -> None:
    assert instance_host(_instance(), HOSTS) == FleetHost(
        name="i-0a",
        address="10.20.96.4",
        user="deploy",
        key="/srv/app/keys/deploy",
        roles=("app",),
        labels={"zone": "eu-west-1a", "instance_type": "t3.small"},
    )
    public = HOSTS.model_copy(update={"address": "public"})
    host = instance_host(_instance(), public)
    assert host is not None and host.address == "203.0.113.7"
    defaults = instance_host(_instance(), HostsSettings())
    assert defaults is not None and (defaults.user, defaults.key) == ("deploy", None)


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"state": "pending"}, "EC2 state pending"),
        ({"state": "shutting-down", "lifecycle": "Terminating"}, "EC2 state shutting-down"),
        ({"state": "stopped"}, "EC2 state stopped"),
        ({"lifecycle": "Pending:Wait"}, "Pending:Wait in its Auto Scaling group"),
        ({"lifecycle": "Standby"}, "Standby in its Auto Scaling group"),
        ({"lifecycle": "Terminating"}, "Terminating in its Auto Scaling group"),
        ({"private_ip": None}, "no private IP address (aws.hosts.address: private)"),
    ],
)
def test_instances_that_are_not_hosts_say_why(changes: dict[str, str | None], why: str) -> None:
    instance = _instance(**changes)
    assert left_out(instance, HOSTS) == why
    assert instance_host(instance, HOSTS) is None


def test_public_address_asked_for_but_none_given() -> None:
    public = HOSTS.model_copy(update={"address": "public"})
    assert left_out(_instance(public_ip=None), public) == (
        "no public IP address (aws.hosts.address: public)"
    )


def test_the_fleet_is_ordered_by_instance_id_and_learned_from_aws() -> None:
    fleet = aws_fleet(
        [_instance("i-0c"), _instance("i-0a", state="terminated"), _instance("i-0b")], HOSTS
    )
    assert [h.name for h in fleet.hosts] == ["i-0b", "i-0c"]
    assert fleet.hosts_from == "aws" and not fleet.with_role("edge")
    empty = aws_fleet([], HOSTS)
    assert empty == Fleet(hosts_from="aws")
    assert empty.is_fleet  # no host up yet is still a fleet, not this machine


def test_zones_are_labels_placement_spreads_over(tmp_path: Path) -> None:
    """Three hosts in zone a (ids first), one in b: spreading over node.labels.zone puts one
    of two replicas in each zone; a constraint keeps a service in one zone."""
    instances = [_instance(f"i-0{n}") for n in "abc"] + [_instance("i-0d", zone="eu-west-1b")]
    hosts = aws_fleet(instances, HOSTS).hosts
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web: {image: web, deploy: {replicas: 2,"
        " placement: {preferences: [{spread: node.labels.zone}]}}}\n"
        "  db: {image: db, deploy: {placement: {constraints: [node.labels.zone==eu-west-1b]}}}\n"
    )
    services = load_stack(tmp_path / "compose.yaml", environ={}).services
    placed = place(services, hosts)
    zones = {h.name: h.labels["zone"] for h in hosts}
    assert sorted(zones[h] for h in placed.services["web"].hosts().elements()) == [
        "eu-west-1a",
        "eu-west-1b",
    ]
    assert list(placed.services["db"].hosts().elements()) == ["i-0d"]
