"""Project networks and service addresses on the Docker Engine (docker SDK, low-level API).

A project network is a bridge network labelled with its project, its Compose name and the hash
of its settings, on a subnet from Conveyor's pool that overlaps no other Docker network and no
route of this host. A service address is a container of Conveyor's base image running `sleep`
on the service's networks under the service's names: it only holds the network namespace in
which HAProxy listens for the service.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import docker.errors

from conveyor.errors import RuntimeAdapterError
from conveyor.model.release import ObservedAddress, ObservedNetwork
from conveyor.plan.network import dynamic_range
from conveyor.runtime.docker_errors import translated
from conveyor.runtime.protocol import (
    LABEL_ADDRESS,
    LABEL_NETWORK,
    LABEL_PROJECT,
    LABEL_SPEC,
    AddressRun,
    NetworkRun,
)

JSON = dict[str, Any]

ROUTES = Path("/proc/net/route")
# Every subnet of the pool may be taken by a network another engine created in the meantime;
# Docker then refuses it ("overlaps") and the next is tried, this many times at most.
_ATTEMPTS = 64


def address_container_name(project: str, service: str) -> str:
    return f"{project}-{service}-address"


# --- host routes (pure parsing) --------------------------------------------------------------


def _hex_ipv4(text: str) -> str:
    """/proc/net/route writes addresses as little-endian hex."""
    raw = bytes.fromhex(text)[::-1]
    return ".".join(str(b) for b in raw)


def parse_routes(text: str) -> list[str]:
    """The destinations of /proc/net/route as CIDRs, the default route left out."""
    found: list[str] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, mask = _hex_ipv4(fields[1]), _hex_ipv4(fields[7])
        except ValueError:
            continue
        if mask == "0.0.0.0":  # noqa: S104 — the default route's mask, not a bind
            continue
        prefix = sum(bin(int(octet)).count("1") for octet in mask.split("."))
        found.append(f"{dest}/{prefix}")
    return found


def host_routes() -> list[str]:
    try:
        return parse_routes(ROUTES.read_text())
    except OSError:
        return []


# --- networks --------------------------------------------------------------------------------


def _subnets(attrs: JSON) -> list[str]:
    configs = (attrs.get("IPAM") or {}).get("Config") or []
    return [str(c["Subnet"]) for c in configs if c.get("Subnet")]


def _observed_network(attrs: JSON) -> ObservedNetwork:
    labels: dict[str, str] = attrs.get("Labels") or {}
    subnets = _subnets(attrs)
    return ObservedNetwork(
        docker_name=str(attrs["Name"]),
        spec_hash=labels.get(LABEL_SPEC, "") if LABEL_PROJECT in labels else "",
        subnet=subnets[0] if subnets else None,
    )


def list_networks(api: Any, project: str, names: Iterable[str]) -> list[ObservedNetwork]:
    with translated(f"listing networks of {project}"):
        found = {
            str(n["Name"]): _observed_network(n)
            for n in api.networks(filters={"label": f"{LABEL_PROJECT}={project}"})
        }
        for name in names:
            if name in found:
                continue
            try:
                found[name] = _observed_network(api.inspect_network(name))
            except docker.errors.NotFound:
                continue
    return sorted(found.values(), key=lambda n: n.docker_name)


def ensure_network(api: Any, req: NetworkRun) -> ObservedNetwork:
    net = req.network
    name = net.docker_name
    with translated(f"network {name}"):
        try:
            return _observed_network(api.inspect_network(name))
        except docker.errors.NotFound:
            pass
        if net.external:
            raise RuntimeAdapterError(
                f"external network {name} does not exist: create it with "
                f"`docker network create {name}` (Compose's `external: true`)"
            )
        labels = {
            **net.labels,
            LABEL_PROJECT: req.project,
            LABEL_NETWORK: net.name,
            LABEL_SPEC: net.spec_hash,
        }
        if net.subnet is not None:
            _create(api, name, net.internal, labels, net.subnet)
        else:
            _create_from_pool(api, req, labels)
        return _observed_network(api.inspect_network(name))


def _create_from_pool(api: Any, req: NetworkRun, labels: dict[str, str]) -> None:
    used = [s for n in api.networks() for s in _subnets(api.inspect_network(n["Id"]))]
    used += host_routes()
    last = ""
    for tried, subnet in enumerate(req.pool.candidates(used)):
        if tried >= _ATTEMPTS:
            break
        try:
            _create(api, req.network.docker_name, req.network.internal, labels, subnet)
            return
        except docker.errors.APIError as e:
            last = str(getattr(e, "explanation", None) or e)
            if "overlap" not in last.lower():
                raise
    pool = ", ".join(req.pool.ranges)
    detail = f": {last}" if last else ""
    raise RuntimeAdapterError(
        f"network {req.network.docker_name}: no free /{req.pool.prefix} left in the subnet "
        f"pool {pool} (set CONVEYOR_SUBNET_POOL to a wider private range){detail}"
    )


def _create(api: Any, name: str, internal: bool, labels: dict[str, str], subnet: str) -> None:
    """A bridge network whose replicas get addresses from the lower half of `subnet`, leaving
    the upper half to service addresses (plan.network.slot_address)."""
    from docker.types import IPAMConfig, IPAMPool

    api.create_network(
        name,
        driver="bridge",
        internal=internal,
        labels=labels,
        ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet, iprange=dynamic_range(subnet))]),
        check_duplicate=True,
    )


def remove_network(api: Any, name: str) -> None:
    with translated(f"removing network {name}"), contextlib.suppress(docker.errors.NotFound):
        api.remove_network(name)


# --- service addresses -----------------------------------------------------------------------


def _observed_address(attrs: JSON) -> ObservedAddress | None:
    labels: dict[str, str] = attrs.get("Config", {}).get("Labels") or {}
    service = labels.get(LABEL_ADDRESS)
    if service is None:
        return None
    state: JSON = attrs.get("State", {})
    running = bool(state.get("Running"))
    sandbox = str((attrs.get("NetworkSettings") or {}).get("SandboxKey") or "")
    return ObservedAddress(
        service=service,
        container_id=str(attrs["Id"]),
        spec_hash=labels.get(LABEL_SPEC, ""),
        running=running,
        netns=sandbox if running and sandbox else None,
    )


def list_addresses(api: Any, project: str) -> list[ObservedAddress]:
    with translated(f"listing service addresses of {project}"):
        found = api.containers(
            all=True, filters={"label": [f"{LABEL_PROJECT}={project}", LABEL_ADDRESS]}
        )
        out: list[ObservedAddress] = []
        for c in found:
            try:
                observed = _observed_address(api.inspect_container(c["Id"]))
            except docker.errors.NotFound:
                continue
            if observed is not None:
                out.append(observed)
    return sorted(out, key=lambda a: a.service)


def run_address(api: Any, req: AddressRun) -> ObservedAddress:
    address = req.address
    name = address_container_name(req.project, address.service)
    networks = sorted(address.networks.items())
    if not networks:
        raise RuntimeAdapterError(f"service address {name} has no network")
    with translated(f"starting service address {name}"):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(name, force=True, v=True)
        first, first_names = networks[0]
        created = api.create_container(
            image=req.image,
            name=name,
            command=["sleep", "infinity"],
            labels={
                LABEL_PROJECT: req.project,
                LABEL_ADDRESS: address.service,
                LABEL_SPEC: address.spec_hash,
            },
            host_config=api.create_host_config(
                network_mode=first,
                init=True,  # sleep as PID 1 would ignore SIGTERM
                restart_policy={"Name": "no"},
                mem_limit=16 * 1024 * 1024,
                pids_limit=8,
            ),
            networking_config=api.create_networking_config(
                {
                    first: api.create_endpoint_config(
                        aliases=list(first_names), ipv4_address=req.ips.get(first)
                    )
                }
            ),
            detach=True,
        )
        container_id = str(created["Id"])
        try:
            for network, names in networks[1:]:
                api.connect_container_to_network(
                    container_id, network, aliases=list(names), ipv4_address=req.ips.get(network)
                )
            api.start(container_id)
            observed = _observed_address(api.inspect_container(container_id))
        except docker.errors.APIError:
            api.remove_container(container_id, force=True, v=True)
            raise
    if observed is None or observed.netns is None:
        raise RuntimeAdapterError(f"service address {name} started without a network namespace")
    return observed
