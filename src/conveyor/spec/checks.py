"""The `checks:` section of conveyor.yaml -> model.ChecksSettings (docs/checks.md).

    checks:
      enabled: true            # false: the server runs no Nagios for its environments
      interval: 10s            # between two checks of a check that is OK (whole seconds)
      retry_interval: 2s       # between checks while a problem is being confirmed
      attempts: 3              # failing checks in a row before a problem is notified
      timeout: 5s              # per check
      disk: [/, /var/lib/docker]
      thresholds:
        disk: {warning: 20%, critical: 10%}        # free space
        memory: {warning: 10%, critical: 5%}       # available memory
        load: {warning: [4, 3, 2], critical: [8, 6, 4]}   # 1/5/15-minute load per CPU
        certificate: {warning: 30d, critical: 7d}  # time left before a TLS certificate expires
      hosts:                   # remote hosts checked through NRPE (nrpe.cfg: render.nagios)
        - {name: db1, address: 10.0.0.5, nrpe_port: 5666}

Problems are recorded in the Context (file, line, field), so conveyor.yaml's loader reports
them with the others: `conveyor.yaml:7: checks.thresholds.disk.critical: ...`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from conveyor.model.checks import ChecksSettings, RemoteHost, Thresholds
from conveyor.spec.context import Context
from conveyor.spec.durations import parse_duration
from conveyor.spec.keys import known_keys, mapping
from conveyor.spec.values import describe, to_bool, to_float, to_int
from conveyor.spec.yamlpos import YamlPath

KEYS = (
    "enabled",
    "interval",
    "retry_interval",
    "attempts",
    "timeout",
    "disk",
    "thresholds",
    "hosts",
    "fleet_hosts",
)
THRESHOLD_KEYS = ("disk", "memory", "load", "certificate")
LEVEL_KEYS = ("warning", "critical")
HOST_KEYS = ("name", "address", "nrpe_port")
_HOSTNAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
)
_PATH = re.compile(r"/[A-Za-z0-9/._+@:-]*")


def checks(ctx: Context, path: YamlPath, raw: Any) -> ChecksSettings:
    """`raw` (the value at `path`, e.g. `("checks",)`) as ChecksSettings; an absent section
    gives the defaults."""
    defaults = ChecksSettings()
    if raw is None:
        return defaults
    if mapping(ctx, path, raw) is None:
        return defaults
    known_keys(ctx, path, raw, KEYS)
    interval = _seconds(ctx, path, raw, "interval", defaults.interval)
    retry = _seconds(ctx, path, raw, "retry_interval", defaults.retry_interval)
    timeout = _seconds(ctx, path, raw, "timeout", defaults.timeout)
    attempts = ctx.optional(raw, "attempts", path, to_int, defaults.attempts)
    if attempts < 1:
        ctx.error((*path, "attempts"), f"must be at least 1, got {attempts}")
        attempts = defaults.attempts
    return ChecksSettings(
        enabled=ctx.optional(raw, "enabled", path, to_bool, defaults.enabled),
        interval=interval,
        retry_interval=retry,
        attempts=attempts,
        timeout=timeout,
        disk_paths=_disks(ctx, path, raw, defaults.disk_paths),
        thresholds=_thresholds(ctx, (*path, "thresholds"), raw.get("thresholds")),
        hosts=_hosts(ctx, (*path, "hosts"), raw.get("hosts")),
        fleet_hosts=ctx.optional(raw, "fleet_hosts", path, to_bool, defaults.fleet_hosts),
    )


def _seconds(
    ctx: Context, path: YamlPath, raw: Mapping[str, Any], key: str, default: float
) -> float:
    """A duration in whole seconds (Nagios runs with interval_length=1)."""
    seconds = ctx.optional(raw, key, path, parse_duration, default)
    if seconds < 1:
        ctx.error((*path, key), f"must be at least 1s, got {describe(raw.get(key))}")
        return default
    if seconds != round(seconds):
        ctx.error((*path, key), f"Nagios counts whole seconds, got {describe(raw.get(key))}")
        return default
    return float(seconds)


def _disks(
    ctx: Context, path: YamlPath, raw: Mapping[str, Any], default: tuple[str, ...]
) -> tuple[str, ...]:
    value = raw.get("disk")
    if value is None:
        return default
    where = (*path, "disk")
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        ctx.error(where, f"must be a mount point or a list of them, got {describe(value)}")
        return default
    out: list[str] = []
    for index, item in enumerate(items):
        at = where if isinstance(value, str) else (*where, index)
        if isinstance(item, str) and _PATH.fullmatch(item):
            out.append(item)
        else:
            ctx.error(
                at,
                f"must be an absolute path (letters, digits, / . _ - + @ :), got {describe(item)}",
            )
    return tuple(dict.fromkeys(out))


def _percent(value: object) -> int:
    text = value.strip().removesuffix("%") if isinstance(value, str) else value
    number = to_int(text)
    if not 0 <= number <= 100:
        raise ValueError(f"must be a percentage from 0 to 100, got {describe(value)}")
    return number


def _days(value: object) -> int:
    if isinstance(value, str) and value.strip().endswith("d"):
        number = to_int(value.strip()[:-1])
    else:
        seconds = parse_duration(value)
        number = round(seconds / 86400)
    if number < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return number


def _loads(value: object) -> tuple[float, float, float]:
    items = [value] * 3 if isinstance(value, int | float | str) else value
    if not isinstance(items, list) or len(items) != 3:
        raise ValueError(
            f"must be one number or three (1, 5 and 15 minutes), got {describe(value)}"
        )
    a, b, c = (to_float(v) for v in items)
    if min(a, b, c) < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return (a, b, c)


def _thresholds(ctx: Context, path: YamlPath, raw: Any) -> Thresholds:
    defaults = Thresholds()
    if raw is None or mapping(ctx, path, raw) is None:
        return defaults
    known_keys(ctx, path, raw, THRESHOLD_KEYS)
    out: dict[str, Any] = {}
    for key, convert, lower_is_worse in (
        ("disk", _percent, True),
        ("memory", _percent, True),
        ("certificate", _days, True),
        ("load", _loads, False),
    ):
        section = raw.get(key)
        where = (*path, key)
        if section is None or mapping(ctx, where, section) is None:
            continue
        known_keys(ctx, where, section, LEVEL_KEYS)
        warning = ctx.optional(
            section, "warning", where, convert, getattr(defaults, f"{key}_warning")
        )
        critical = ctx.optional(
            section, "critical", where, convert, getattr(defaults, f"{key}_critical")
        )
        # Free space, memory and days left: lower is worse, so critical sits below warning;
        # the load: higher is worse.
        wrong = critical > warning if lower_is_worse else critical < warning
        if wrong:
            side = "below" if lower_is_worse else "above"
            ctx.error((*where, "critical"), f"must be {side} warning ({describe(warning)})")
            continue
        out[f"{key}_warning"] = warning
        out[f"{key}_critical"] = critical
    return defaults.model_copy(update=out)


def _hosts(ctx: Context, path: YamlPath, raw: Any) -> tuple[RemoteHost, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        ctx.error(path, f"must be a list of hosts, got {describe(raw)}")
        return ()
    hosts: list[RemoteHost] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        where = (*path, index)
        if mapping(ctx, where, item) is None:
            continue
        known_keys(ctx, where, item, HOST_KEYS)
        name, address = item.get("name"), item.get("address")
        port = ctx.optional(item, "nrpe_port", where, _port, 5666)
        if not isinstance(name, str) or not _HOSTNAME.fullmatch(name):
            ctx.error(
                (*where, "name"),
                f"must be a host name (letters, digits, -, .), got {describe(name)}",
            )
            continue
        if name in names:
            ctx.error((*where, "name"), f"host {name!r} is listed twice")
            continue
        if not isinstance(address, str) or not _address(address):
            ctx.error(
                (*where, "address"),
                f"must be an IP address or a host name, got {describe(address)}",
            )
            continue
        names.add(name)
        hosts.append(RemoteHost(name=name, address=address, nrpe_port=port))
    return tuple(hosts)


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(text))
    return True


def _port(value: object) -> int:
    port = to_int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"must be a port between 1 and 65535, got {port}")
    return port
