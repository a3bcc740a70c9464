"""The Ansible inventory `conveyor provision` runs the shipped playbook with. Pure: no I/O.

    all:
      vars:      fleet-wide: the fleet's addresses and networks (the firewall lets them in),
                 the published ports, the node exporter's port, the deploy user and its keys,
                 the agent's, and the two HAProxy configurations Conveyor rendered (router's
                 for app hosts, edge's for edge hosts: tagged !unsafe, so Ansible copies them
                 byte for byte instead of reading them as templates), and the programs edge
                 hosts run as root for the router (router.fleet_edge.edge_programs, !unsafe)
      hosts:     one entry per FleetHost: ansible_host/user/port/ssh key, conveyor_roles,
                 conveyor_labels, conveyor_nrpe_cfg (render.nagios.render_nrpe's text, NRPE
                 answering the fleet's monitor hosts), conveyor_open_ports (what the firewall
                 opens to everyone: the published ports on app and edge hosts)
      children:  app, edge, monitor: the hosts of each role (the playbook's plays target them)

The same Fleet and settings give the same text byte for byte (keys in a fixed order).
"""

from __future__ import annotations

from typing import Any

import yaml

from conveyor.model.checks import RemoteHost
from conveyor.model.fleet import HOST_ROLES, Fleet, FleetHost
from conveyor.model.provision import NRPE_PORT, ProvisionSettings
from conveyor.model.stack import Stack
from conveyor.render.nagios import render_nrpe

LOOPBACK = "127.0.0.1"


def inventory_data(fleet: Fleet, settings: ProvisionSettings) -> dict[str, Any]:
    """The inventory as YAML-ready data."""
    monitors = [h.address for h in fleet.with_role("monitor")]
    return {
        "all": {
            "vars": {
                "conveyor_fleet_addresses": [
                    *sorted({h.address for h in fleet.hosts}),
                    *sorted(set(settings.fleet_networks)),
                ],
                "conveyor_controller_addresses": sorted(set(settings.controller_addresses)),
                "conveyor_published_ports": sorted(set(settings.published_ports)),
                "conveyor_node_exporter_port": settings.node_exporter_port,
                "conveyor_nrpe_port": NRPE_PORT,
                "conveyor_deploy_user": settings.deploy_user,
                "conveyor_deploy_keys": list(settings.deploy_keys),
                "conveyor_agent_dir": settings.agent_dir,
                "conveyor_agent_command": settings.agent_command,
                "conveyor_haproxy_cfg": Unsafe(settings.haproxy_cfg),
                "conveyor_edge_haproxy_cfg": Unsafe(settings.edge_haproxy_cfg),
                "conveyor_edge_programs": [
                    {"dest": p.path, "content": Unsafe(p.text)} for p in settings.edge_programs
                ],
            },
            "hosts": {h.name: _host_vars(h, settings, monitors) for h in fleet.hosts},
            "children": {
                role: {"hosts": {h.name: None for h in fleet.with_role(role)}}
                for role in HOST_ROLES
            },
        }
    }


def render_inventory(fleet: Fleet, settings: ProvisionSettings) -> str:
    return render_data(inventory_data(fleet, settings))


def render_data(data: dict[str, Any]) -> str:
    """`inventory_data`'s result (perhaps amended) as the inventory's text."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=100,
    )


def _host_vars(host: FleetHost, settings: ProvisionSettings, monitors: list[str]) -> dict[str, Any]:
    public = host.has_role("app") or host.has_role("edge")
    out: dict[str, Any] = {
        "ansible_host": host.address,
        "ansible_user": host.user,
        "ansible_port": host.port,
    }
    if host.key is not None:
        out["ansible_ssh_private_key_file"] = host.key
    out["conveyor_roles"] = list(host.roles)
    out["conveyor_labels"] = dict(sorted(host.labels.items()))
    out["conveyor_open_ports"] = sorted(set(settings.published_ports)) if public else []
    # NRPE answers the fleet's monitor hosts, the controller (its Nagios checks the fleet's
    # hosts) and the host itself, for a local check_nrpe.
    allowed = tuple(dict.fromkeys([LOOPBACK, *monitors, *settings.controller_addresses]))
    remote = RemoteHost(name=host.name, address=host.address, nrpe_port=NRPE_PORT)
    out["conveyor_nrpe_cfg"] = render_nrpe(remote, settings.checks, allowed)
    return out


class Unsafe(str):
    """A value Ansible must not template (`!unsafe`): a rendered file, used as it is."""

    __slots__ = ()


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (nrpe.cfg) as literal blocks, readable in a written inventory."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _unsafe(dumper: yaml.SafeDumper, value: Unsafe) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("!unsafe", str(value), style=style)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(Unsafe, _unsafe)


class InventoryLoader(yaml.SafeLoader):
    """Reads a rendered inventory back (tests, tools): `!unsafe` values as plain strings."""


def _read_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


InventoryLoader.add_constructor("!unsafe", _read_unsafe)


def read_inventory(text: str) -> Any:
    """The YAML data of a rendered inventory."""
    return yaml.load(text, Loader=InventoryLoader)  # noqa: S506 — a SafeLoader plus one tag


def published_ports(stack: Stack) -> tuple[int, ...]:
    """The TCP ports `stack` publishes on its hosts (the firewall opens them on app and edge
    hosts): `ports:` entries with a published port, and stable public ports."""
    ports: set[int] = set()
    for service in stack.services.values():
        if service.routing.public_port is not None:
            ports.add(service.routing.public_port)
        ports.update(p.published for p in service.ports if p.published and p.protocol == "tcp")
    return tuple(sorted(ports))
