"""Infrastructure checks (the Nagios role) as data: what Nagios is told to check, how often
and against which thresholds, and what it reports back. Pure types: `render.nagios` writes them
as Nagios objects, `observe.checks` runs Nagios and reads its state into them.

A `Check` is one Nagios service on a host: an HTTP or TCP check of a frontend HAProxy serves
(published, stable or inside a service address), an HAProxy backend's health, the Docker
daemon, a disk, the load, the memory, a TLS certificate's expiry, or a command NRPE runs on a
remote host. `CheckStatus` is one host or service as Nagios's status file has it;
`CheckNotification` one notification Nagios decided to send (it already held back those of a
flapping check or of one in a scheduled downtime).
"""

from __future__ import annotations

from typing import Literal

from conveyor.model.frozen import Frozen

CheckKind = Literal[
    "http",  # an HTTP frontend: any 2xx/3xx answer is OK, 4xx WARNING, 5xx or none CRITICAL
    "tcp",  # a TCP frontend: the port accepts a connection
    "certificate",  # a TLS frontend's certificate: days until it expires
    "haproxy",  # an HAProxy backend: how many of its servers are up (stats CSV)
    "docker",  # the Docker daemon answers its API (/_ping)
    "disk",  # free space of a mount point
    "load",  # load average per CPU
    "memory",  # available memory
    "nrpe",  # a command NRPE runs on a remote host
]
CHECK_KINDS: tuple[CheckKind, ...] = (
    "http",
    "tcp",
    "certificate",
    "haproxy",
    "docker",
    "disk",
    "load",
    "memory",
    "nrpe",
)

# Nagios's service states, and PENDING for a check that has not run yet.
ServiceState = Literal["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING"]
HostState = Literal["UP", "DOWN", "UNREACHABLE", "PENDING"]
CheckState = Literal["OK", "WARNING", "CRITICAL", "UNKNOWN", "PENDING", "UP", "DOWN", "UNREACHABLE"]
StateType = Literal["hard", "soft"]
# How a check reaches what it checks: a service's stable frontend on the host, a port it
# publishes, its service address on a project network, or the host itself.
Scope = Literal["frontend", "published", "address", "host"]

# What Nagios's $NOTIFICATIONTYPE$ says.
NotificationType = Literal[
    "PROBLEM",
    "RECOVERY",
    "ACKNOWLEDGEMENT",
    "FLAPPINGSTART",
    "FLAPPINGSTOP",
    "FLAPPINGDISABLED",
    "DOWNTIMESTART",
    "DOWNTIMEEND",
    "DOWNTIMECANCELLED",
    "CUSTOM",
]


class Check(Frozen):
    """One Nagios service: what to check. `name` is its service_description, unique on its
    host; `service` the Compose service it watches (None: the host itself)."""

    name: str
    kind: CheckKind
    service: str | None = None
    address: str | None = None  # http, tcp, certificate: where to connect
    port: int | None = None  # http, tcp, certificate; haproxy: the stats port on 127.0.0.1
    path: str | None = None  # http: the URL path; disk: the mount point
    backend: str | None = None  # haproxy: the backend's name
    command: str | None = None  # nrpe: the command's name in nrpe.cfg
    scope: Scope = "host"


class Thresholds(Frozen):
    """When a host check warns and when it is critical."""

    disk_warning: int = 20  # % free
    disk_critical: int = 10
    load_warning: tuple[float, float, float] = (4.0, 3.0, 2.0)  # 1, 5, 15 min, per CPU
    load_critical: tuple[float, float, float] = (8.0, 6.0, 4.0)
    memory_warning: int = 10  # % available
    memory_critical: int = 5
    certificate_warning: int = 30  # days left
    certificate_critical: int = 7


class RemoteHost(Frozen):
    """A host Nagios checks through the NRPE daemon running on it (the fleet's hosts, and
    those `checks.hosts` names). `edge`: its HAProxy is the fleet's edge, checked too."""

    name: str
    address: str
    nrpe_port: int = 5666
    edge: bool = False


class ChecksSettings(Frozen):
    """How Conveyor runs Nagios for a project (conveyor.yaml `checks:`; the agent's defaults).
    Intervals are seconds (Nagios runs with interval_length=1)."""

    enabled: bool = True
    interval: float = 10.0  # between checks of a check in an OK state
    retry_interval: float = 2.0  # between checks while a problem is not yet confirmed
    attempts: int = 3  # checks failing in a row before a problem is HARD and notified
    timeout: float = 5.0  # per check, for the plugins that take one
    disk_paths: tuple[str, ...] = ("/",)
    thresholds: Thresholds = Thresholds()
    hosts: tuple[RemoteHost, ...] = ()
    # On a fleet, every host is checked through its NRPE too (what provisioning installs);
    # off for hosts that run none (not provisioned by Conveyor): only `hosts` then.
    fleet_hosts: bool = True


class NagiosObjects(Frozen):
    """Everything `render.nagios` turns into Nagios's object file: this host with its checks,
    and the remote hosts checked over NRPE."""

    host: str  # this host's name in Nagios
    address: str = "127.0.0.1"
    checks: tuple[Check, ...] = ()
    settings: ChecksSettings = ChecksSettings()
    docker_socket: str = "/var/run/docker.sock"


class CheckStatus(Frozen):
    """A host (`check` None) or one of its checks, as Nagios last wrote its status file."""

    host: str
    check: str | None = None
    service: str | None = None  # the Compose service a check watches, when it watches one
    kind: CheckKind | None = None
    state: CheckState
    state_type: StateType = "hard"
    output: str = ""
    last_check: float | None = None  # UNIX seconds; None: not checked yet
    last_state_change: float | None = None
    attempt: int = 1
    max_attempts: int = 1
    flapping: bool = False
    in_downtime: bool = False
    acknowledged: bool = False

    @property
    def problem(self) -> bool:
        return self.state not in ("OK", "UP", "PENDING")


class Downtime(Frozen):
    """A scheduled downtime as the status file lists it."""

    id: int
    host: str
    check: str | None = None  # None: the whole host
    start: float
    end: float
    author: str = ""
    comment: str = ""
    in_effect: bool = False


class NagiosHealth(Frozen):
    """Whether Nagios runs and keeps its status file fresh."""

    running: bool
    pid: int | None = None
    status_age: float | None = None  # seconds since Nagios last wrote its status file
    stale: bool = False  # running, but the status file is older than it should be
    checks: int = 0
    problems: int = 0
    config: str | None = None  # the main configuration file


class CheckNotification(Frozen):
    """One notification Nagios sent (its notification command wrote it to Conveyor's spool)."""

    type: NotificationType
    host: str
    check: str | None = None  # None: about the host
    service: str | None = None  # the Compose service, when the check watches one
    kind: CheckKind | None = None
    state: CheckState
    output: str = ""
    ts: float  # when Nagios sent it (UNIX seconds)
    downtime: int = 0  # how many downtimes covered it when sent
    attempt: int | None = None
    written: float | None = None  # when the notification command wrote it (sub-second)

    @property
    def news(self) -> bool:
        """A state change people are told about; the rest (flapping, downtime, acks) is
        recorded only. Nagios holds PROBLEM and RECOVERY back while a check flaps or is in a
        downtime; a notification that still names a downtime is not news either."""
        return self.type in ("PROBLEM", "RECOVERY") and self.downtime == 0

    @property
    def subject(self) -> str:
        return check_subject(self.host, self.check, self.kind)


def check_subject(host: str, check: str | None, kind: str | None) -> str:
    """What a notification is about, as people read it: `host h1`, a check's name, or for a
    check NRPE runs on a remote host (`disk`, `load` on every fleet host) `disk on h1`."""
    if check is None:
        return f"host {host}"
    return f"{check} on {host}" if kind == "nrpe" else check
