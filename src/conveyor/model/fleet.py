"""A fleet of Docker hosts as data: conveyor.yaml's inventory (`hosts:` written inline, or
`inventory:` naming an Ansible inventory file), each host with its SSH address, roles and labels.

Pure types, shared by provisioning (Ansible plays over the inventory, docs/provision.md) and
placement (which host runs which replica, docs/fleet.md). `spec.fleet` reads them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from conveyor.model.frozen import Frozen

# What a host is for. app: runs replicas; edge: runs the edge HAProxy that balances published
# ports over the app hosts; monitor: runs Prometheus/Alertmanager/Nagios for the fleet.
HostRole = Literal["app", "edge", "monitor"]
HOST_ROLES: tuple[HostRole, ...] = ("app", "edge", "monitor")
# Where a fleet's hosts come from besides conveyor.yaml and an Ansible inventory: "aws", the
# running instances of the project's AWS stack's Auto Scaling group (docs/aws.md, "The
# group's hosts as the fleet"), learned again while the controller runs.
HostsFrom = Literal["aws"]
HOSTS_FROM: tuple[HostsFrom, ...] = ("aws",)


class FleetHost(Frozen):
    """One server of the fleet, as Conveyor reaches it over SSH."""

    name: str  # the inventory name (Ansible's inventory_hostname), unique in the fleet
    address: str  # what SSH connects to: an IP address or a DNS name
    user: str = "root"
    port: int = 22
    key: str | None = None  # a private key file; None: the SSH agent / ~/.ssh defaults
    roles: tuple[HostRole, ...] = ("app",)
    labels: dict[str, str] = Field(default_factory=dict)  # placement constraints match these
    line: int | None = None  # where conveyor.yaml declares it, for errors naming file:line

    def has_role(self, role: HostRole) -> bool:
        return role in self.roles

    def docker_url(self) -> str:
        """The docker SDK's address for this host's Docker Engine over SSH."""
        port = "" if self.port == 22 else f":{self.port}"
        return f"ssh://{self.user}@{self.address}{port}"


class Fleet(Frozen):
    """The inventory: every host, in the order written (which placement keeps for ties)."""

    hosts: tuple[FleetHost, ...] = ()
    # An Ansible inventory file the hosts came from (None: written inline in conveyor.yaml);
    # provisioning hands it to Ansible as it is, so its groups and variables keep working.
    inventory_file: str | None = None
    # Learned from elsewhere (None: `hosts:` or `inventory:`); `hosts` holds what was learned
    # last (none yet, as conveyor.yaml reads: app/ asks AWS).
    hosts_from: HostsFrom | None = None
    line: int | None = None  # where conveyor.yaml says `hosts_from`, for errors naming file:line

    def __bool__(self) -> bool:
        return bool(self.hosts)

    @property
    def is_fleet(self) -> bool:
        """Whether the project runs on these hosts rather than on this machine: app hosts,
        or hosts learned from elsewhere (a group with no host up yet is still a fleet)."""
        return bool(self.with_role("app")) or self.hosts_from is not None

    def with_role(self, role: HostRole) -> tuple[FleetHost, ...]:
        return tuple(host for host in self.hosts if host.has_role(role))

    def host(self, name: str) -> FleetHost | None:
        return next((host for host in self.hosts if host.name == name), None)


class FleetChange(Frozen):
    """Hosts that joined or left a learned fleet (`hosts_from`) since the controller last
    asked, or why asking failed (the hosts known are kept)."""

    joined: tuple[FleetHost, ...] = ()
    left: tuple[FleetHost, ...] = ()
    error: str | None = None

    def __bool__(self) -> bool:
        return bool(self.joined or self.left or self.error)
