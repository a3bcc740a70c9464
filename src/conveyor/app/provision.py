"""`conveyor provision [--check] [--diff] [--limit HOST]`: configure the fleet's hosts with the
shipped Ansible playbook (docs/provision.md).

    inputs = provision_inputs(conveyor_file, compose_files, environ, cwd)
    result = provision(inputs, check=..., diff=..., limit=..., on_event=...)
    fleet = resolve_fleet(config.fleet)       # conveyor.yaml's `inventory:` read by Ansible

The fleet comes from conveyor.yaml (`hosts:`, or `inventory:` read by Ansible itself); the
published ports from the project's compose files when there are any (the firewall opens
them, the edge hosts' HAProxy balances them over the app hosts); NRPE's commands from
`checks:`; the deploy user's authorized keys are the public halves (`KEY.pub`) of the fleet's
SSH keys. The HAProxy configurations are rendered here (render.host_haproxy), not by Ansible,
and so are the programs edge hosts run for the router (router.fleet_edge.edge_programs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from conveyor.app.project import find_compose_files
from conveyor.errors import NoComposeFile, SpecError, SpecErrors
from conveyor.host.ansible import list_inventory
from conveyor.host.source_address import source_address
from conveyor.model.fleet import Fleet
from conveyor.model.provision import ProvisionEvent, ProvisionResult, ProvisionSettings
from conveyor.model.stack import Stack
from conveyor.provision.ansible.run import run_playbook
from conveyor.render.ansible_inventory import published_ports, render_inventory
from conveyor.render.host_haproxy import app_haproxy_cfg, edge_haproxy_cfg, edge_role_conflicts
from conveyor.router.fleet_edge import edge_programs
from conveyor.spec.compose import load_compose
from conveyor.spec.fleet import fleet_from_inventory, load_fleet_file


@dataclass(frozen=True)
class ProvisionInputs:
    fleet: Fleet
    settings: ProvisionSettings
    inventory: str  # render.ansible_inventory's text


def provision_inputs(
    conveyor_file: Path,
    compose_files: Sequence[Path],
    environ: Mapping[str, str],
    cwd: Path,
    project_name: str | None = None,
) -> ProvisionInputs:
    """Read the fleet and what its roles need. Raises SpecError(s)."""
    read = load_fleet_file(cwd / conveyor_file, str(conveyor_file))
    if read.fleet.hosts_from == "aws":
        raise SpecError(
            str(conveyor_file),
            read.fleet.line,
            "hosts_from",
            "the AWS stack's hosts configure themselves at boot with these roles (their user "
            "data, docs/aws.md); `conveyor provision` drives hosts written under 'hosts' or "
            "'inventory'",
        )
    fleet = resolve_fleet(read.fleet)
    conflicts = edge_role_conflicts(fleet, fleet.inventory_file or str(conveyor_file))
    if conflicts:
        raise SpecErrors(conflicts)
    ports: tuple[int, ...] = ()
    stack: Stack | None = None
    try:
        files = find_compose_files(compose_files, environ, cwd)
    except NoComposeFile:
        if compose_files:
            raise
        files = []  # hosts can be provisioned before there is an app: no ports to open
    if files:
        stack = load_compose(files, project_name, environ, cwd=cwd).stack
        ports = published_ports(stack)
    settings = ProvisionSettings(
        published_ports=ports,
        checks=read.checks,
        deploy_keys=_public_keys(fleet),
        haproxy_cfg=app_haproxy_cfg(),
        edge_haproxy_cfg=edge_haproxy_cfg(stack, fleet),
        edge_programs=edge_programs(),
        controller_addresses=_controller_addresses(fleet),
    )
    return ProvisionInputs(
        fleet=fleet, settings=settings, inventory=render_inventory(fleet, settings)
    )


def _controller_addresses(fleet: Fleet) -> tuple[str, ...]:
    """This machine's address towards each host, once each: the firewall lets the controller
    in by it (docs/provision.md, "Firewall")."""
    found = (source_address(h.address, h.port) for h in fleet.hosts)
    return tuple(dict.fromkeys(a for a in found if a is not None))


def resolve_fleet(fleet: Fleet) -> Fleet:
    """`fleet` with its hosts: those of its inventory file (read by Ansible) when it names one
    and has none yet (spec/ starts no processes, so conveyor.yaml's `inventory:` comes back
    without hosts). Raises SpecError(s) naming the inventory file."""
    if fleet.inventory_file is None or fleet.hosts:
        return fleet
    listing = list_inventory(Path(fleet.inventory_file))
    return fleet_from_inventory(listing, fleet.inventory_file)


def provision(
    inputs: ProvisionInputs,
    *,
    check: bool = False,
    diff: bool = False,
    limit: str | None = None,
    on_event: Callable[[ProvisionEvent], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProvisionResult:
    """Run the playbook; a failed host is in the result (with its task), not raised."""
    return run_playbook(
        inputs.fleet,
        inputs.inventory,
        check=check,
        diff=diff,
        limit=limit,
        on_event=on_event,
        environ=environ,
    )


def _public_keys(fleet: Fleet) -> tuple[str, ...]:
    keys: list[str] = []
    for host in fleet.hosts:
        if host.key is None:
            continue
        public = Path(host.key + ".pub")
        if public.is_file():
            keys.append(public.read_text(encoding="utf-8").strip())
    return tuple(dict.fromkeys(k for k in keys if k))
