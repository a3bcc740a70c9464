"""What an AWS host of the Auto Scaling group is provisioned with, at boot, by the launch
template's user data (docs/aws.md): the inventory the shipped playbook runs with locally, and
the ports app hosts accept from each other. Pure: no I/O.

    aws_host_inventory(settings, stack, checks)   inventory/conveyor.yml for `-c local`
    aws_fleet_ports(stack)                        TCP ports between app hosts (security group)

The same roles as `conveyor provision` (app role set), with what differs on AWS: the host is
`localhost` reached with `ansible_connection: local`; the deploy user's keys are not in it
(the host reads them from SSM Parameter Store at boot and passes them as an extra variable);
the fleet's addresses are the VPC's range, since hosts come and go with the group (the
security groups say which ports between them).
"""

from __future__ import annotations

from typing import Any

from conveyor.model.aws import AwsSettings
from conveyor.model.checks import ChecksSettings
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.provision import ProvisionSettings
from conveyor.model.stack import Stack
from conveyor.render.ansible_inventory import inventory_data, published_ports, render_data
from conveyor.render.host_haproxy import app_haproxy_cfg

HOST = "localhost"


def aws_host_inventory(settings: AwsSettings, stack: Stack, checks: ChecksSettings) -> str:
    fleet = Fleet(hosts=(FleetHost(name=HOST, address="127.0.0.1", roles=("app",)),))
    provision = ProvisionSettings(
        published_ports=published_ports(stack),
        checks=checks,
        haproxy_cfg=app_haproxy_cfg(),
        fleet_networks=(settings.vpc_cidr,),
    )
    data: dict[str, Any] = inventory_data(fleet, provision)
    data["all"]["hosts"][HOST]["ansible_connection"] = "local"
    # The VPC's range stands for the fleet's addresses: 127.0.0.1 is the host itself.
    data["all"]["vars"]["conveyor_fleet_addresses"] = [settings.vpc_cidr]
    return render_data(data)


def aws_fleet_ports(stack: Stack) -> tuple[int, ...]:
    """The published ports (the edge/ALB and the other hosts reach every host's HAProxy on
    them) and the ports services declare (`ports:` targets and x-conveyor's port: what a
    host-networking replica listens on, which other hosts' HAProxies reach directly)."""
    ports = set(published_ports(stack))
    for service in stack.services.values():
        if service.networking != "host":
            continue
        ports.update(p.target for p in service.ports if p.protocol == "tcp")
        if service.routing.port is not None:
            ports.add(service.routing.port)
    return tuple(sorted(ports))
