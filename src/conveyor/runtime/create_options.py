"""A service's container settings as Docker SDK arguments (pure: no engine is called).

`create_options(service)` gives the keyword arguments for `APIClient.create_container` and
for `APIClient.create_host_config`. Only settings the file sets appear, so a service that
sets none creates exactly the container it did before these settings were supported.
Networking (network mode, ports, aliases) is decided by the adapter, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from conveyor.model.container import ContainerSettings
from conveyor.model.stack import Service


@dataclass(frozen=True)
class CreateOptions:
    container: dict[str, Any] = field(default_factory=dict)  # create_container(**container)
    host: dict[str, Any] = field(default_factory=dict)  # create_host_config(**host)


def create_options(service: Service, extra_hosts: Iterable[tuple[str, str]] = ()) -> CreateOptions:
    """Docker arguments for `service`'s settings. `extra_hosts` are names Conveyor adds
    itself; they come after the file's own (a later line of /etc/hosts does not override
    an earlier one, so the file's names keep their meaning)."""
    settings = service.container
    container: dict[str, Any] = {}
    host: dict[str, Any] = {
        # docker-init as PID 1 forwards the stop signal and reaps zombies; a Python app as
        # PID 1 would ignore SIGTERM unless it installs a handler. `init: false` opts out.
        "init": True if settings.init is None else settings.init,
    }
    for key in ("hostname", "domainname", "platform"):
        value = getattr(settings, key)
        if value is not None:
            container[key] = value
    hosts = [f"{name}:{address}" for name, address in (*settings.extra_hosts, *extra_hosts)]
    if hosts:
        host["extra_hosts"] = hosts
    host.update(_host_settings(settings))
    if service.reservations.memory is not None and "mem_reservation" not in host:
        host["mem_reservation"] = service.reservations.memory
    return CreateOptions(container=container, host=host)


def _host_settings(s: ContainerSettings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lists = {
        "cap_add": s.cap_add,
        "cap_drop": s.cap_drop,
        "security_opt": s.security_opt,
        "dns": s.dns,
        "dns_search": s.dns_search,
        "dns_opt": s.dns_opt,
        "group_add": s.group_add,
        "device_cgroup_rules": s.device_cgroup_rules,
    }
    out.update({key: list(value) for key, value in lists.items() if value})
    if s.devices:
        out["devices"] = [f"{d.host}:{d.container}:{d.permissions}" for d in s.devices]
    if s.ulimits:
        out["ulimits"] = [
            {"name": name, "soft": limit.soft, "hard": limit.hard}
            for name, limit in sorted(s.ulimits.items())
        ]
    if s.sysctls:
        out["sysctls"] = dict(s.sysctls)
    if s.tmpfs:
        out["tmpfs"] = dict(s.tmpfs)
    if s.logging is not None and (s.logging.driver or s.logging.options):
        # An empty type is the daemon's default driver, which then takes the options.
        out["log_config"] = {"type": s.logging.driver or "", "config": dict(s.logging.options)}
    if s.privileged:
        out["privileged"] = True
    if s.read_only:
        out["read_only"] = True
    scalars = {
        "shm_size": s.shm_size,
        "mem_reservation": s.mem_reservation,
        "memswap_limit": s.memswap_limit,
        "mem_swappiness": s.mem_swappiness,
        "cpu_shares": s.cpu_shares,
        "cpuset_cpus": s.cpuset,
        "oom_score_adj": s.oom_score_adj,
        "ipc_mode": s.ipc,
        "pid_mode": s.pid,
        "userns_mode": s.userns_mode,
        "runtime": s.runtime,
    }
    out.update({key: value for key, value in scalars.items() if value is not None})
    return out
