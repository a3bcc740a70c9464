"""A service's container settings (schema-valid, interpolated) -> model.ContainerSettings.

These go to the container engine as written (`runtime.create_options`). Each conversion
problem is recorded in the Context and the setting left at its default, so one run reports
everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conveyor.model.container import ContainerSettings, Device, Logging, Ulimit
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_bytes
from conveyor.spec.values import to_bool, to_int, to_str
from conveyor.spec.yamlpos import YamlPath


def container_settings(ctx: Context, path: YamlPath, raw: Mapping[str, Any]) -> ContainerSettings:
    def opt(key: str, convert: Any, default: Any = None) -> Any:
        return ctx.optional(raw, key, path, convert, default)

    def text(key: str) -> str | None:
        value = raw.get(key)
        return None if value is None else str(value)

    return ContainerSettings(
        shm_size=opt("shm_size", parse_bytes),
        ulimits=_ulimits(ctx, (*path, "ulimits"), raw.get("ulimits")),
        cap_add=_strings(raw.get("cap_add")),
        cap_drop=_strings(raw.get("cap_drop")),
        devices=_devices(ctx, (*path, "devices"), raw.get("devices")),
        device_cgroup_rules=_strings(raw.get("device_cgroup_rules")),
        privileged=opt("privileged", to_bool, False),
        security_opt=_strings(raw.get("security_opt")),
        tmpfs=_tmpfs(ctx, (*path, "tmpfs"), raw.get("tmpfs")),
        read_only=opt("read_only", to_bool, False),
        sysctls=_mapping(raw.get("sysctls")),
        extra_hosts=_extra_hosts(ctx, (*path, "extra_hosts"), raw.get("extra_hosts")),
        logging=_logging(raw.get("logging")),
        init=opt("init", to_bool),
        hostname=text("hostname"),
        domainname=text("domainname"),
        dns=_strings(raw.get("dns")),
        dns_search=_strings(raw.get("dns_search")),
        dns_opt=_strings(raw.get("dns_opt")),
        platform=text("platform"),
        group_add=_strings(raw.get("group_add")),
        cpu_shares=opt("cpu_shares", to_int),
        cpuset=text("cpuset"),
        oom_score_adj=opt("oom_score_adj", to_int),
        # deploy.resources.reservations.memory is Service.reservations; this is the older key.
        mem_reservation=opt("mem_reservation", parse_bytes),
        memswap_limit=opt("memswap_limit", _bytes_or_unlimited),
        mem_swappiness=opt("mem_swappiness", to_int),
        ipc=text("ipc"),
        pid=text("pid"),
        userns_mode=text("userns_mode"),
        runtime=text("runtime"),
    )


def _strings(raw: Any) -> tuple[str, ...]:
    """A string-or-list field (`dns: 10.0.0.2` or `dns: [10.0.0.2]`)."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    return tuple(str(item) for item in items)


def _mapping(raw: Any) -> dict[str, str]:
    """A list-or-dict field (`sysctls: [a=1]` or `{a: 1}`)."""
    if isinstance(raw, dict):
        return {str(k): to_str(v) for k, v in raw.items()}
    out: dict[str, str] = {}
    for item in raw or ():
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def _bytes_or_unlimited(value: object) -> int:
    if value in (-1, "-1"):
        return -1
    return parse_bytes(value)


def _ulimits(ctx: Context, path: YamlPath, raw: Any) -> dict[str, Ulimit]:
    out: dict[str, Ulimit] = {}
    for name, value in (raw or {}).items():
        where = (*path, name)
        if isinstance(value, dict):
            soft = ctx.optional(value, "soft", where, to_int, 0)
            hard = ctx.optional(value, "hard", where, to_int, 0)
        else:
            soft = hard = ctx.convert(where, to_int, value, 0)
        if soft > hard and hard != -1:
            ctx.error(where, f"soft limit {soft} is above the hard limit {hard}")
        out[name] = Ulimit(soft=soft, hard=hard)
    return out


def _devices(ctx: Context, path: YamlPath, raw: Any) -> tuple[Device, ...]:
    out: list[Device] = []
    for index, item in enumerate(raw or ()):
        if isinstance(item, dict):
            source = str(item["source"])
            target = str(item.get("target") or source)
            permissions = str(item.get("permissions") or "rwm")
        else:
            parts = str(item).split(":")
            if len(parts) > 3 or not parts[0]:
                ctx.error(
                    (*path, index),
                    f"invalid device '{item}' (expected HOST[:CONTAINER[:PERMISSIONS]])",
                )
                continue
            source = parts[0]
            target = parts[1] if len(parts) > 1 and parts[1] else source
            permissions = parts[2] if len(parts) > 2 else "rwm"
        if not source.startswith("/") or not target.startswith("/"):
            ctx.error((*path, index), f"device paths must be absolute, got '{source}:{target}'")
            continue
        if not permissions or set(permissions) - set("rwm"):
            ctx.error(
                (*path, index), f"device permissions must be letters of 'rwm', got '{permissions}'"
            )
            continue
        out.append(Device(host=source, container=target, permissions=permissions))
    return tuple(out)


def _tmpfs(ctx: Context, path: YamlPath, raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    items = raw if isinstance(raw, list) else [raw] if raw else []
    for index, item in enumerate(items):
        target, _, options = str(item).partition(":")
        if not target.startswith("/"):
            where = (*path, index) if isinstance(raw, list) else path
            ctx.error(where, f"tmpfs path must be absolute, got '{target}'")
            continue
        out[target] = options
    return out


def _extra_hosts(ctx: Context, path: YamlPath, raw: Any) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        for name, addresses in raw.items():
            for address in addresses if isinstance(addresses, list) else [addresses]:
                out.append((str(name), str(address)))
        return tuple(out)
    for index, item in enumerate(raw or ()):
        text = str(item)
        # `name=address` (newer) or `name:address`; an IPv6 address holds colons itself.
        name, sep, address = text.partition("=") if "=" in text else text.partition(":")
        if not sep or not name or not address:
            ctx.error((*path, index), f"invalid extra host '{text}' (expected NAME:ADDRESS)")
            continue
        out.append((name, address.strip("[]")))
    return tuple(out)


def _logging(raw: Any) -> Logging | None:
    if raw is None:
        return None
    options = {str(k): to_str(v) for k, v in (raw.get("options") or {}).items() if v is not None}
    driver = raw.get("driver")
    return Logging(driver=None if driver is None else str(driver), options=options)
