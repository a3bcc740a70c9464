"""Compose networks of a service: `network_mode` and `services.X.networks`.

A service runs on the project's networks (Compose's default network unless it names others)
or, with `network_mode: host`, on the host's network as Conveyor 0.1 ran every replica. Other
network modes, drivers and per-attachment addresses are refused with the reason: Conveyor gives
addresses from its own pool and a service's name belongs to its service address.
"""

from __future__ import annotations

from typing import Any

from conveyor.model.stack import Networking, ServiceNetwork
from conveyor.spec.context import Context
from conveyor.spec.yamlpos import YamlPath

DEFAULT = "default"

# Attachment settings that would fix a replica's address or interface: several replicas cannot
# share one, and Conveyor's pool hands addresses out.
_FIXED_ADDRESSING = ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address")


def networking(ctx: Context, path: YamlPath, raw: dict[str, Any]) -> Networking:
    mode = raw.get("network_mode")
    if mode is None:
        return "project"
    if mode == "host":
        if raw.get("networks"):
            ctx.error((*path, "networks"), "cannot be combined with network_mode 'host'")
        return "host"
    ctx.error(
        (*path, "network_mode"),
        f"'{mode}' is not supported: replicas run on the project's networks (leave "
        "network_mode out) or on the host's network (network_mode: host)",
    )
    return "project"


def service_networks(
    ctx: Context, path: YamlPath, raw: dict[str, Any], mode: Networking
) -> dict[str, ServiceNetwork]:
    """The service's attachments; Compose's `default` network when it names none."""
    if mode == "host":
        return {}
    written = raw.get("networks")
    if not written:
        return {DEFAULT: ServiceNetwork()}
    if isinstance(written, list):
        return {str(name): ServiceNetwork() for name in written}
    out: dict[str, ServiceNetwork] = {}
    for name, spec in written.items():
        where = (*path, "networks", name)
        settings = spec or {}
        for key in _FIXED_ADDRESSING:
            if settings.get(key) is not None:
                ctx.error(
                    (*where, key),
                    "not supported: Conveyor gives replicas addresses from its pool and the "
                    "service's name its own address",
                )
        if settings.get("driver_opts"):
            ctx.error((*where, "driver_opts"), "not supported by Conveyor")
        aliases = tuple(str(a) for a in settings.get("aliases") or ())
        out[str(name)] = ServiceNetwork(aliases=aliases)
    return out
