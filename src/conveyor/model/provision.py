"""`conveyor provision` as data: what the roles are given (ProvisionSettings), what a run
reports while it goes (ProvisionEvent) and how it ended per host (HostRecap, ProvisionResult).
Pure types; provision.ansible runs the play, app.provision composes (docs/provision.md)."""

from __future__ import annotations

from typing import Literal

from conveyor.model.checks import ChecksSettings
from conveyor.model.frozen import Frozen

NODE_EXPORTER_PORT = 9100  # prometheus-node-exporter's default
NRPE_PORT = 5666


class ProvisionSettings(Frozen):
    """Fleet-wide variables the roles read (render.ansible_inventory writes them)."""

    published_ports: tuple[int, ...] = ()  # opened on app and edge hosts (TCP)
    checks: ChecksSettings = ChecksSettings()  # what NRPE runs (render.nagios.render_nrpe)
    node_exporter_port: int = NODE_EXPORTER_PORT
    deploy_user: str = "deploy"
    deploy_keys: tuple[str, ...] = ()  # public keys allowed to log in as the deploy user
    agent_dir: str = "/srv/conveyor"  # where the agent's compose project lives on a host
    agent_command: str = "/usr/local/bin/conveyor"


EventKind = Literal[
    "task.started",
    "task.ok",
    "task.changed",
    "task.failed",
    "task.skipped",
    "host.unreachable",
    "play.started",
]


class ProvisionEvent(Frozen):
    """One step of a run, per host and task, as the CLI shows it."""

    kind: EventKind
    host: str | None = None  # None: the play as a whole
    task: str = ""
    role: str = ""
    message: str = ""  # failed/unreachable: Ansible's message; changed: the diff when asked
    diff: str = ""


class HostRecap(Frozen):
    """Ansible's PLAY RECAP line for one host."""

    host: str
    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    failed_task: str | None = None  # the first task that failed (or where it was unreachable)
    message: str | None = None  # ... and why

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


class ProvisionResult(Frozen):
    """A whole run: the recap per host, in inventory order."""

    hosts: tuple[HostRecap, ...] = ()
    check: bool = False  # --check: nothing was changed, `changed` counts what would be
    seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return all(h.succeeded for h in self.hosts)

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts)
