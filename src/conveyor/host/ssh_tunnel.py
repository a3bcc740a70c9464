"""A fleet host's Docker Engine socket brought to this machine over SSH: one `ssh -N` per
host forwarding a local unix socket to the host's `/var/run/docker.sock`, run as a
supervised daemon (PID file, log, stop by PID), so the docker SDK talks to the remote engine
as to a local one, every request over one SSH connection (docs/fleet.md).

Why not the docker SDK's own `ssh://`: it takes no key (it runs `ssh HOST` with the user's
ssh_config, or paramiko with known host keys only) and opens an SSH session per connection.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from conveyor.errors import HostError
from conveyor.host.process import Daemon, DaemonSpec
from conveyor.model.fleet import FleetHost

REMOTE_DOCKER_SOCKET = "/var/run/docker.sock"
# A unix socket path must fit in sun_path (108 bytes): the local ones are short names.
_SUN_PATH = 107


def _options(host: FleetHost, known_hosts: Path | None) -> list[str]:
    options = [
        "-o", "BatchMode=yes",
        "-o", "ConnectTimeout=10",
        # Seconds of silence before ssh gives up on a host that stopped answering, so a lost
        # host ends its tunnel (and the engine calls fail fast) instead of hanging.
        "-o", "ServerAliveInterval=2",
        "-o", "ServerAliveCountMax=3",
        "-o", "ExitOnForwardFailure=yes",
        "-o", "StreamLocalBindUnlink=yes",
        "-o", "LogLevel=ERROR",
        "-p", str(host.port),
    ]  # fmt: skip
    if known_hosts is None:
        # The caller trusts the inventory's addresses (test hosts made a moment ago).
        options += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
    else:
        options += ["-o", f"UserKnownHostsFile={known_hosts}"]
    if host.key:
        options += ["-i", host.key, "-o", "IdentitiesOnly=yes"]
    return options


def tunnel_spec(
    host: FleetHost,
    run_dir: Path,
    known_hosts: Path | None = None,
    *,
    remote: str = REMOTE_DOCKER_SOCKET,
    kind: str = "docker",
    what: str = "Docker Engine",
) -> DaemonSpec:
    """The `ssh -N -L` daemon forwarding `host`'s unix socket `remote` (by default its
    engine's) to the local `socket_path(host, run_dir, kind)`."""
    local = socket_path(host, run_dir, kind)
    return DaemonSpec(
        name=f"SSH tunnel to {host.name}'s {what}",
        argv=(
            "ssh",
            *_options(host, known_hosts),
            "-N",
            "-L",
            f"{local}:{remote}",
            f"{host.user}@{host.address}",
        ),
        pid_file=run_dir / f"{host.name}.{_suffix(kind)}pid",
        log_file=run_dir / f"{host.name}.{_suffix(kind)}log",
        ready=lambda: _accepts(local),
        readiness=f"forwarding {local} to {host.address}:{remote}",
        start_timeout=30.0,
        markers=(f"{local}:{remote}",),
        install_hint="install the OpenSSH client (openssh-client)",
    )


def _suffix(kind: str) -> str:
    """The engine tunnel's files keep their names (`h1.tunnel.pid`); others name their kind."""
    return "tunnel." if kind == "docker" else f"{kind}-tunnel."


def ssh_argv(host: FleetHost, known_hosts: Path | None = None) -> list[str]:
    """`ssh` with the tunnel's options, to run one command on `host` (append the command)."""
    return ["ssh", *_options(host, known_hosts), f"{host.user}@{host.address}"]


def socket_path(host: FleetHost, run_dir: Path, kind: str = "docker") -> Path:
    """The local end of `host`'s tunnel: named after the host, or after a digest of its name
    when that is too long for a unix socket; a run directory too long for either is refused."""
    path = run_dir / f"{host.name}.{kind}.sock"
    if len(str(path).encode()) > _SUN_PATH:
        key = host.name if kind == "docker" else f"{host.name}.{kind}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        path = run_dir / f"{digest}.sock"
    if len(str(path).encode()) > _SUN_PATH:
        raise HostError(
            f"unix socket path {path} is longer than {_SUN_PATH} bytes: choose a shorter "
            "run directory for the fleet's SSH tunnels"
        )
    return path


def _accepts(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def tunnel(
    host: FleetHost,
    run_dir: Path,
    known_hosts: Path | None = None,
    *,
    remote: str = REMOTE_DOCKER_SOCKET,
    kind: str = "docker",
    what: str = "Docker Engine",
) -> Daemon:
    return Daemon(tunnel_spec(host, run_dir, known_hosts, remote=remote, kind=kind, what=what))
