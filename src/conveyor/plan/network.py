"""Project networks and service addresses as the planner sees them (pure).

A project's Compose networks become Docker bridge networks Conveyor owns, with subnets from an
explicit pool. Every routed service under project networking gets a *service address*: a small
container on the service's networks that answers to the service's name (and aliases), holding
the network namespace in which HAProxy listens on the service's ports.

Docker hands replicas addresses from the lower half of each subnet; the upper half holds the
service addresses, each at its service's stable slot. Replicas find their peers through
/etc/hosts lines (name -> address), not through Docker's DNS, which dockerd serves itself: a
name then keeps resolving while the engine restarts, and no lookup leaves the replica.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence

from pydantic import Field

from conveyor.errors import SettingError
from conveyor.model.release import ObservedAddress, ObservedNetwork
from conveyor.model.stack import Frozen, Network, Service, Stack
from conveyor.plan.actions import Step

# Conveyor's networks take their subnets from here unless the file fixes one: a private range
# that is unlikely to clash with a LAN, carved into /24s (254 containers per network).
DEFAULT_POOL = ("10.213.0.0/16",)
DEFAULT_PREFIX = 24

# HAProxy reads a `namespace` name as a file name under /var/run/netns.
_NAMESPACE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


class SubnetPool(Frozen):
    """Where Conveyor's networks get their subnets (CONVEYOR_SUBNET_POOL, _SUBNET_PREFIX)."""

    ranges: tuple[str, ...] = DEFAULT_POOL
    prefix: int = DEFAULT_PREFIX

    @classmethod
    def parse(cls, ranges: str | None, prefix: str | None = None) -> SubnetPool:
        """`"10.213.0.0/16,10.214.0.0/16"` and `"24"`; private IPv4 ranges only, so a
        project network can never shadow a public address."""
        size = DEFAULT_PREFIX
        if prefix:
            try:
                size = int(prefix)
            except ValueError:
                raise SettingError(
                    f"CONVEYOR_SUBNET_PREFIX: expected a prefix length such as 24, got {prefix!r}"
                ) from None
        if not 16 <= size <= 29:
            raise SettingError(f"CONVEYOR_SUBNET_PREFIX: must be between 16 and 29, got {size}")
        texts = [r.strip() for r in (ranges or "").split(",") if r.strip()] or list(DEFAULT_POOL)
        for text in texts:
            try:
                net = ipaddress.IPv4Network(text)
            except ValueError as e:
                raise SettingError(
                    f"CONVEYOR_SUBNET_POOL: {text!r} is not an IPv4 range: {e}"
                ) from None
            if not net.is_private or net.is_loopback or net.is_link_local:
                raise SettingError(
                    f"CONVEYOR_SUBNET_POOL: {text} is not a private range (RFC 1918); Conveyor's "
                    "networks must never shadow public addresses"
                )
            if net.prefixlen > size:
                raise SettingError(
                    f"CONVEYOR_SUBNET_POOL: {text} is smaller than one /{size} network"
                )
        return cls(ranges=tuple(texts), prefix=size)

    def candidates(self, used: Iterable[str]) -> Iterator[str]:
        """Subnets of the pool, in order, that overlap none of `used` (CIDR strings: Docker's
        networks and the host's routes)."""
        taken = [ipaddress.ip_network(u, strict=False) for u in used]
        taken4 = [t for t in taken if isinstance(t, ipaddress.IPv4Network)]
        for text in self.ranges:
            for subnet in ipaddress.IPv4Network(text).subnets(new_prefix=self.prefix):
                if not any(subnet.overlaps(t) for t in taken4):
                    yield str(subnet)


def docker_network_name(project: str, network: Network) -> str:
    """The Docker network behind a Compose network (Compose's `<project>_<key>`)."""
    return network.docker_name or f"{project}_{network.name}"


class DesiredNetwork(Frozen):
    name: str  # Compose key
    docker_name: str
    external: bool = False
    internal: bool = False
    subnet: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def spec_hash(self) -> str:
        """What a created network cannot change without being recreated."""
        return _digest({"internal": self.internal, "subnet": self.subnet, "labels": self.labels})


def desired_networks(stack: Stack) -> list[DesiredNetwork]:
    return [
        DesiredNetwork(
            name=key,
            docker_name=docker_network_name(stack.project, net),
            external=net.external,
            internal=net.internal,
            subnet=net.subnet,
            labels=dict(net.labels),
        )
        for key, net in sorted(stack.networks.items())
    ]


def attachments(stack: Stack, service: Service) -> dict[str, tuple[str, ...]]:
    """Docker network -> the names a replica answers to on it. Replicas of a routed service
    answer to no service name (that is its address's); a service HAProxy does not serve (no
    port) is found by name the way Compose does it, on its replicas."""
    out: dict[str, tuple[str, ...]] = {}
    for key, attached in sorted(service.networks.items()):
        net = stack.networks.get(key) or Network(name=key)
        names = () if service.routed else (service.name, *attached.aliases)
        out[docker_network_name(stack.project, net)] = names
    return out


def dynamic_range(subnet: str) -> str:
    """The lower half of a subnet, where Docker hands out replicas' addresses."""
    net = ipaddress.IPv4Network(subnet, strict=False)
    return str(next(net.subnets(prefixlen_diff=1)))


def slot_address(subnet: str, slot: int) -> str:
    """The service address at `slot` in the upper half of `subnet` (its broadcast excluded)."""
    net = ipaddress.IPv4Network(subnet, strict=False)
    upper = list(net.subnets(prefixlen_diff=1))[1]
    capacity = upper.num_addresses - 1
    if not 0 <= slot < capacity:
        raise SettingError(
            f"subnet {subnet} has room for {capacity} service addresses; slot {slot} is past "
            "it (give the network a larger subnet, or CONVEYOR_SUBNET_PREFIX a smaller number)"
        )
    return str(upper.network_address + slot)


class DesiredAddress(Frozen):
    service: str
    networks: dict[str, tuple[str, ...]]  # Docker network -> names (service name, aliases)
    slot: int | None = None  # its place in each network's static half (None: Docker picks)

    @property
    def spec_hash(self) -> str:
        return _digest({"service": self.service, "networks": self.networks, "slot": self.slot})


def desired_address(stack: Stack, name: str, slot: int | None = None) -> DesiredAddress | None:
    """The service address a service needs: routed and on project networks."""
    service = stack.services[name]
    if service.networking != "project" or not service.routed:
        return None
    networks = {
        docker_network_name(stack.project, stack.networks.get(key) or Network(name=key)): (
            name,
            *attached.aliases,
        )
        for key, attached in sorted(service.networks.items())
    }
    return DesiredAddress(service=name, networks=networks, slot=slot)


def peer_hosts(
    stack: Stack, service: Service, slots: Mapping[str, int], subnets: Mapping[str, str]
) -> dict[str, str]:
    """The /etc/hosts lines of a replica: each routed service (and alias) on a network it
    shares with `service`, at its service address on that network. `subnets` maps Docker
    networks to the subnets they were created with (external ones are left to Docker's DNS)."""
    mine = attachments(stack, service)
    hosts: dict[str, str] = {}
    for name in sorted(stack.services):
        address = desired_address(stack, name, slots.get(name))
        if address is None or address.slot is None:
            continue
        for network, names in sorted(address.networks.items()):
            subnet = subnets.get(network)
            if network not in mine or subnet is None:
                continue
            ip = slot_address(subnet, address.slot)
            for alias in names:
                hosts.setdefault(alias, ip)
    return hosts


def assign_slots(known: Mapping[str, int], services: Iterable[str]) -> dict[str, int]:
    """`known` slots, and the smallest free slot for each service that has none yet."""
    slots = dict(known)
    taken = set(slots.values())
    for service in services:
        if service not in slots:
            slot = next(n for n in range(len(taken) + 1) if n not in taken)
            slots[service] = slot
            taken.add(slot)
    return slots


def namespace_name(project: str, service: str, container_id: str) -> str:
    """The name HAProxy binds into (`/var/run/netns/<name>`). It names the address container
    too: a recreated address gets a new name, so a reload binds fresh sockets in the new
    namespace instead of inheriting the old ones (HAProxy matches listeners by name)."""
    raw = f"cv-{project}-{service}-{container_id[:12]}"
    return _NAMESPACE_CHARS.sub("_", raw)


def plan_network_steps(
    desired: Sequence[DesiredNetwork], observed: Sequence[ObservedNetwork]
) -> tuple[list[Step], list[str]]:
    """`network` steps for what is missing; notes for networks the file changed (a Docker
    network cannot change in place)."""
    have = {n.docker_name: n for n in observed}
    steps: list[Step] = []
    notes: list[str] = []
    for net in desired:
        found = have.get(net.docker_name)
        if found is None:
            why = "external: must exist" if net.external else "missing"
            steps.append(Step(kind="network", network=net.name, reason=why))
        elif not net.external and found.spec_hash and found.spec_hash != net.spec_hash:
            notes.append(
                f"network {net.name}: its settings changed, but a Docker network cannot change "
                "in place; `conveyor down` then `conveyor up` recreates it"
            )
    return steps, notes


def plan_address_steps(
    desired: dict[str, DesiredAddress], observed: Sequence[ObservedAddress]
) -> list[Step]:
    have = {a.service: a for a in observed}
    steps: list[Step] = []
    for name, address in desired.items():
        found = have.get(name)
        if found is None:
            steps.append(Step(kind="address", service=name, reason="missing"))
        elif not found.running:
            steps.append(Step(kind="address", service=name, reason="not running"))
        elif found.spec_hash != address.spec_hash:
            steps.append(Step(kind="address", service=name, reason="networks changed"))
    return steps


def retire_steps(
    desired_networks: Sequence[DesiredNetwork],
    desired: dict[str, DesiredAddress],
    observed_addresses: Sequence[ObservedAddress],
    observed_networks: Sequence[ObservedNetwork],
    reason: str = "no longer used",
) -> list[Step]:
    """Addresses of services that no longer need one, then networks nothing desires (after
    every replica that used them is gone). External networks are never removed."""
    steps = [
        Step(kind="unaddress", service=a.service, reason=reason)
        for a in sorted(observed_addresses, key=lambda a: a.service)
        if a.service not in desired
    ]
    wanted = {n.docker_name for n in desired_networks}
    steps += [
        Step(kind="unnetwork", network=n.docker_name, reason=reason)
        for n in sorted(observed_networks, key=lambda n: n.docker_name)
        if n.spec_hash and n.docker_name not in wanted
    ]
    return steps
