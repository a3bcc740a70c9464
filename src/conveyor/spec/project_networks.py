"""Compose's top-level `networks`: the project networks the services use.

Bridge networks of one Docker Engine: other drivers, IPv6 and IPAM settings Conveyor does not
apply are refused; a subnet the file fixes is kept (else Conveyor's pool gives one).
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import Network, Service
from conveyor.spec.context import Context
from conveyor.spec.networks import DEFAULT
from conveyor.spec.service import pairs
from conveyor.spec.values import suggest, to_bool
from conveyor.spec.yamlpos import YamlPath


def project_networks(ctx: Context, services: dict[str, Service]) -> dict[str, Network]:
    """The networks the services use, as declared at the top level (`default` may be left
    undeclared). Undeclared ones are errors, naming the service's line."""
    declared: dict[str, Any] = ctx.doc.data.get("networks") or {}
    used: dict[str, None] = {}
    for name, service in services.items():
        for network in service.networks:
            if network != DEFAULT and network not in declared:
                ctx.error(
                    _attachment_path(ctx, name, network),
                    f"network '{network}' is not declared under top-level 'networks'"
                    f"{suggest(network, declared)}",
                )
                continue
            used[network] = None
    return {key: _network(ctx, key, declared.get(key) or {}) for key in sorted(used)}


def _attachment_path(ctx: Context, service: str, network: str) -> YamlPath:
    raw = (ctx.doc.data.get("services") or {}).get(service) or {}
    written = raw.get("networks")
    path: YamlPath = ("services", service, "networks")
    if isinstance(written, list) and network in written:
        return (*path, written.index(network))
    return (*path, network)


def _network(ctx: Context, key: str, raw: dict[str, Any]) -> Network:
    path: YamlPath = ("networks", key)
    external_written = raw.get("external", False)
    # `external:` is a flag or (older syntax) a mapping holding the network's name.
    external = isinstance(external_written, dict) or ctx.convert(
        (*path, "external"), to_bool, external_written, False
    )
    name = raw.get("name")
    if isinstance(external_written, dict) and external_written.get("name"):
        name = external_written["name"]
    driver = raw.get("driver")
    if not external and driver not in (None, "bridge"):
        ctx.error(
            (*path, "driver"),
            f"'{driver}' is not supported: Conveyor's project networks are bridge networks "
            "of one Docker Engine",
        )
    if raw.get("driver_opts"):
        ctx.error((*path, "driver_opts"), "not supported by Conveyor")
    if ctx.convert((*path, "enable_ipv6"), to_bool, raw.get("enable_ipv6", False), False):
        ctx.error((*path, "enable_ipv6"), "not supported: Conveyor's networks are IPv4")
    internal = ctx.convert((*path, "internal"), to_bool, raw.get("internal", False), False)
    file, line = ctx.where((*path, "internal")) if internal else ("", None)
    return Network(
        name=key,
        docker_name=str(name) if name else (key if external else None),
        external=external,
        internal=internal,
        subnet=_subnet(ctx, path, raw.get("ipam")),
        labels=pairs(ctx, (*path, "labels"), raw.get("labels"), fill=lambda _key: ""),
        file=file,
        line=line,
    )


def _subnet(ctx: Context, path: YamlPath, ipam: Any) -> str | None:
    """`ipam.config[0].subnet`; the other IPAM settings Conveyor does not apply are refused."""
    if not ipam:
        return None
    where = (*path, "ipam")
    if ipam.get("driver") not in (None, "default"):
        ctx.error((*where, "driver"), "only the default IPAM driver is supported")
    configs = ipam.get("config") or []
    if len(configs) > 1:
        ctx.error((*where, "config"), "one subnet per network (Conveyor's networks are IPv4)")
    if not configs:
        return None
    first = configs[0] or {}
    for key in ("ip_range", "gateway", "aux_addresses"):
        if first.get(key):
            ctx.error((*where, "config", 0, key), "not supported by Conveyor")
    subnet = first.get("subnet")
    return str(subnet) if subnet else None
