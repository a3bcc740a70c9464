"""The TCP ports a fleet host listens on, read over SSH from the kernel's socket tables
(`/proc/net/tcp`, `/proc/net/tcp6`): where a host-networking replica's port is picked free
on the host it runs on, not on this machine (deploy.fleet_runtime, docs/fleet.md).

The tables need nothing installed on the host (no `ss`, no Python) and list every socket of
the host's network namespace, whoever owns it: a port any process listens on, on any
address, counts as taken.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.host.ssh_command import ssh_script
from conveyor.model.fleet import FleetHost

# TCP_LISTEN in the tables' `st` column (include/net/tcp_states.h).
_LISTEN = "0A"
# tcp6 is absent when the host's kernel has IPv6 off.
_SCRIPT = "cat /proc/net/tcp; cat /proc/net/tcp6 2>/dev/null || true"


def listening_in(table: str) -> frozenset[int]:
    """The local ports of the listening sockets in `/proc/net/tcp`-format text (both tables
    concatenated; their header lines are skipped)."""
    ports: set[int] = set()
    for line in table.splitlines():
        fields = line.split()
        # sl local_address rem_address st ...; local_address is HEXADDR:HEXPORT.
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        port = fields[1].rsplit(":", 1)[1]
        try:
            ports.add(int(port, 16))
        except ValueError:
            continue
    return frozenset(ports)


def listening_ports(host: FleetHost, known_hosts: Path | None = None) -> frozenset[int]:
    """The TCP ports `host` listens on now. Raises HostError naming the host when SSH
    fails."""
    return listening_in(ssh_script(host, _SCRIPT, known_hosts=known_hosts, timeout=30.0))
