"""Container settings of a Compose service that Conveyor hands to the container engine as
written: capabilities, devices, kernel limits, logging, DNS, the PID 1 it runs.

Nothing here changes how Conveyor schedules or routes replicas; `runtime.create_options`
turns it into Docker Engine arguments. Networks, ports and aliases live elsewhere (the
networking model), and so do limits Conveyor also reasons about (`Service.limits`).
"""

from __future__ import annotations

from pydantic import Field

from conveyor.model.frozen import Frozen


class Ulimit(Frozen):
    soft: int
    hard: int


class Device(Frozen):
    """A host device made available in the container (`/dev/fuse:/dev/fuse:rwm`)."""

    host: str
    container: str
    permissions: str = "rwm"


class Logging(Frozen):
    driver: str | None = None  # None: the engine's default driver
    options: dict[str, str] = Field(default_factory=dict)


class ContainerSettings(Frozen):
    shm_size: int | None = None  # bytes
    ulimits: dict[str, Ulimit] = Field(default_factory=dict)
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    devices: tuple[Device, ...] = ()
    device_cgroup_rules: tuple[str, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    tmpfs: dict[str, str] = Field(default_factory=dict)  # container path -> mount options
    read_only: bool = False
    sysctls: dict[str, str] = Field(default_factory=dict)
    extra_hosts: tuple[tuple[str, str], ...] = ()  # (name, address); a name may repeat
    logging: Logging | None = None
    init: bool | None = None  # None: Conveyor's default, docker-init as PID 1
    hostname: str | None = None
    domainname: str | None = None
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    platform: str | None = None  # os[/arch[/variant]] of the image to run
    group_add: tuple[str, ...] = ()
    cpu_shares: int | None = None
    cpuset: str | None = None
    oom_score_adj: int | None = None
    mem_reservation: int | None = None  # bytes (deploy.resources.reservations.memory)
    memswap_limit: int | None = None  # bytes; -1: unlimited swap
    mem_swappiness: int | None = None
    ipc: str | None = None  # "private", "shareable" or "host"
    pid: str | None = None  # "host"
    userns_mode: str | None = None
    runtime: str | None = None
