"""Which hosts a fleet's controller has Nagios check through NRPE (docs/checks.md, "On a
fleet"). Pure.

Every host of a written fleet (`hosts:` or `inventory:`) is a remote host, checked at its
inventory address on NRPE's port, as provisioning runs NRPE there (model.provision.NRPE_PORT,
render.nagios.render_nrpe; its allowed_hosts and the firewall let the controller in). An
`edge` host's HAProxy is checked too. Written once: what `checks.hosts` says of a host wins
(its address, its NRPE port), and a host it names (by name or by address) is not added a
second time.

Not for `hosts_from: aws`: the group's hosts run the roles at boot with an inventory rendered
before any controller is known (render.aws_host), so their NRPE answers only themselves, and
the security groups do not open NRPE's port to the controller (nor does it know which address
they would see). Nagios would call every such host DOWN.
"""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.model.checks import RemoteHost
from conveyor.model.fleet import Fleet
from conveyor.model.provision import NRPE_PORT


def fleet_remote_hosts(
    fleet: Fleet, written: Sequence[RemoteHost], controller: str | None = None
) -> tuple[RemoteHost, ...]:
    """`written` (conveyor.yaml's `checks.hosts`; one the fleet has as an edge host gets its
    HAProxy checked) and then every host of `fleet` they do not name, in inventory order.
    `controller`: the name Nagios gives the machine it runs on; a fleet host of that name is
    this machine, whose own checks already run."""
    if fleet.hosts_from is not None:
        return tuple(written)
    # A written host keeps its address and port; whether it is the edge is the fleet's say.
    out = [h.model_copy(update={"edge": True}) if _is_edge(fleet, h.name) else h for h in written]
    names = {h.name for h in written}
    addresses = {h.address for h in written}
    for host in fleet.hosts:
        if host.name in names or host.address in addresses or host.name == controller:
            continue
        names.add(host.name)
        addresses.add(host.address)
        out.append(
            RemoteHost(
                name=host.name,
                address=host.address,
                nrpe_port=NRPE_PORT,
                edge=host.has_role("edge"),
            )
        )
    return tuple(out)


def _is_edge(fleet: Fleet, name: str) -> bool:
    host = fleet.host(name)
    return host is not None and host.has_role("edge")
