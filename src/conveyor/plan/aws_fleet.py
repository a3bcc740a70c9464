"""The AWS stack's Auto Scaling group as the fleet (`hosts_from: aws`; docs/aws.md, "The
group's hosts as the fleet"). Pure.

Every instance of the group that EC2 says is running and the group says is in service is an
app host: named by its instance id, reached at its private address (`aws.hosts.address:
public`: its public one) as `aws.hosts.ssh_user` with `aws.hosts.ssh_key`, labelled with its
availability zone and instance type, so `node.labels.zone` works in placement constraints
and `spread` preferences. No host has the edge role: the load balancer is the edge (its target
groups balance the published ports over the group's hosts; the group registers them).
"""

from __future__ import annotations

from collections.abc import Iterable

from conveyor.model.aws import AwsInstance, HostsSettings
from conveyor.model.fleet import Fleet, FleetHost

ZONE_LABEL = "zone"
TYPE_LABEL = "instance_type"
IN_SERVICE = "InService"  # the group's lifecycle state of a host that serves


def host_address(instance: AwsInstance, hosts: HostsSettings) -> str | None:
    """The address the controller reaches `instance` at, None when it has none of that kind."""
    return instance.public_ip if hosts.address == "public" else instance.private_ip


def left_out(instance: AwsInstance, hosts: HostsSettings) -> str | None:
    """Why `instance` is not a fleet host (None: it is one)."""
    if instance.state != "running":
        return f"EC2 state {instance.state}"
    if instance.lifecycle != IN_SERVICE:
        return f"{instance.lifecycle} in its Auto Scaling group"
    if host_address(instance, hosts) is None:
        return f"no {hosts.address} IP address (aws.hosts.address: {hosts.address})"
    return None


def instance_host(instance: AwsInstance, hosts: HostsSettings) -> FleetHost | None:
    """`instance` as a fleet host; None when it is not one (`left_out` says why)."""
    address = host_address(instance, hosts)
    if address is None or left_out(instance, hosts) is not None:
        return None
    return FleetHost(
        name=instance.instance_id,
        address=address,
        user=hosts.ssh_user,
        key=hosts.ssh_key,
        roles=("app",),
        labels={ZONE_LABEL: instance.zone, TYPE_LABEL: instance.instance_type},
    )


def aws_fleet(instances: Iterable[AwsInstance], hosts: HostsSettings) -> Fleet:
    """The fleet of the group's `instances`, by instance id (a stable order: placement breaks
    ties by it, and an instance's id never changes)."""
    found = [instance_host(i, hosts) for i in sorted(instances, key=lambda i: i.instance_id)]
    return Fleet(hosts=tuple(h for h in found if h is not None), hosts_from="aws")
