"""`conveyor provision` as data: what the roles are given (ProvisionSettings), what a run
reports while it goes (ProvisionEvent) and how it ended per host (HostRecap, ProvisionResult).
Pure types; provision.ansible runs the play, app.provision composes (docs/provision.md)."""

from __future__ import annotations

from typing import Literal

from conveyor.model.checks import ChecksSettings
from conveyor.model.frozen import Frozen

NODE_EXPORTER_PORT = 9100  # prometheus-node-exporter's default
NRPE_PORT = 5666

# Every provisioned host's one HAProxy (the haproxy role): on app hosts the router's, on edge
# hosts the edge's. The file Conveyor renders, the directory its sockets and pid file are in
# (Debian's tmpfiles.d makes it at boot, owned by haproxy), and who it runs as after binding.
HOST_HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
HOST_HAPROXY_RUN_DIR = "/run/haproxy"
HOST_HAPROXY_USER = "haproxy"
HOST_HAPROXY_STATS_PORT = 8404  # on 127.0.0.1: stats page and Prometheus exporter

# What the fleet's router runs on an edge host as root (router.fleet_edge): installed there
# by the haproxy role, root's, and the only commands the sudoers drop-in lets the deploy user
# run on an edge host (docs/provision.md, "The deploy user").
EDGE_PUSH_PROGRAM = "/usr/local/sbin/conveyor-edge-push"  # the configuration on stdin
EDGE_SERVES_PROGRAM = "/usr/local/sbin/conveyor-edge-serves"  # WITHIN BACKEND...


class HostProgram(Frozen):
    """A program a role installs as it is (root's, mode 0755): its path and its text."""

    path: str
    text: str


class ProvisionSettings(Frozen):
    """Fleet-wide variables the roles read (render.ansible_inventory writes them)."""

    published_ports: tuple[int, ...] = ()  # opened on app and edge hosts (TCP)
    checks: ChecksSettings = ChecksSettings()  # what NRPE runs (render.nagios.render_nrpe)
    node_exporter_port: int = NODE_EXPORTER_PORT
    deploy_user: str = "deploy"
    deploy_keys: tuple[str, ...] = ()  # public keys allowed to log in as the deploy user
    agent_dir: str = "/srv/conveyor"  # where the agent's compose project lives on a host
    agent_command: str = "/usr/local/bin/conveyor"
    # The HAProxy configurations the haproxy role installs, rendered by Conveyor (not Jinja):
    # app (and monitor) hosts get the router's configuration with no routes yet, which the
    # fleet's router then drives; edge hosts get render.edge_haproxy's over the app hosts.
    haproxy_cfg: str = ""
    edge_haproxy_cfg: str = ""
    # The programs the haproxy role installs on edge hosts (router.fleet_edge.edge_programs:
    # the scripts the router runs there inline as root, through sudo as the deploy user).
    edge_programs: tuple[HostProgram, ...] = ()
    # Networks (CIDR) the firewall lets in like the fleet's own addresses: on AWS the VPC,
    # whose hosts come and go (the security groups say which ports between them).
    fleet_networks: tuple[str, ...] = ()
    # This machine's addresses on its routes to the hosts (host.source_address): the
    # controller probes replicas' published ports and may run the edge; the firewall lets it in.
    controller_addresses: tuple[str, ...] = ()


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
