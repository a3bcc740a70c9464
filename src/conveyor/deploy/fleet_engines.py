"""The Docker Engines of a fleet's hosts, behind the `Runtime` seam the deploy engine uses for
the local one: `engines.engine("h2").run(req)` starts a replica on h2 (docs/fleet.md).

One engine per host, made on first use: an SSH tunnel to the host's engine socket
(host.ssh_tunnel) and a docker SDK client on it. `close()` (or leaving the `with` block)
closes every client and stops every tunnel it started, by PID; `forget(host)` does it for a
host that left the fleet. The hosts are the source's (deploy.fleet_source): written down, or
learned from AWS.

A host that left the fleet is reached through its remembered connection (`adopt`) while
its project is taken off it (deploy.fleet_retire).

A tunnel is (re)started under a lock of its host only, so a host whose SSH connection hangs
stalls no call for another host; the lock is also a file lock (`<host>.tunnel.lock` in the
run directory), so two processes (the agent's reconciler and its log collector, a command)
never start two tunnels to one host at once.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from conveyor.deploy.fleet_source import FleetSource, StaticFleet
from conveyor.errors import ConveyorError
from conveyor.host.process import Daemon
from conveyor.host.ssh_tunnel import socket_path, tunnel
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.runtime.docker_engine import DockerEngine


class FleetEngines:
    def __init__(
        self, fleet: Fleet | FleetSource, run_dir: Path, known_hosts: Path | None = None
    ) -> None:
        """`run_dir` holds the tunnels' sockets, PID files and logs (short: unix socket
        paths are limited). `known_hosts`: None trusts the inventory's host keys."""
        self.source: FleetSource = StaticFleet(fleet) if isinstance(fleet, Fleet) else fleet
        self.run_dir = run_dir
        self.known_hosts = known_hosts
        self._engines: dict[str, DockerEngine] = {}
        self._tunnels: dict[str, Daemon] = {}
        self._lock = threading.Lock()  # the dicts; never held while a tunnel starts
        self._host_locks: dict[str, threading.Lock] = {}
        # Hosts that left the fleet, reached through their remembered connection until the
        # project is taken off them (deploy.fleet_retire).
        self._adopted: dict[str, FleetHost] = {}

    @property
    def fleet(self) -> Fleet:
        """The hosts known now."""
        return self.source.current()

    def adopt(self, host: FleetHost) -> None:
        """Reach `host`, which left the fleet, as given (its remembered connection) while
        this object lives; a host of the fleet is reached as the inventory says."""
        with self._lock:
            self._adopted[host.name] = host

    def _host(self, name: str) -> FleetHost:
        host = self.fleet.host(name) or self._adopted.get(name)
        if host is None:
            raise ConveyorError(f"host {name!r} is not in the fleet's inventory")
        return host

    def engine(self, name: str) -> DockerEngine:
        """The Docker Engine of host `name`, reached over SSH (the tunnel starts now if it
        does not run; a tunnel that died with its host's link is started again)."""
        url = self.tunnel_up(name)
        with self._lock:
            engine = self._engines.get(name)
            if engine is None:
                engine = self._engines[name] = DockerEngine(base_url=url)
            return engine

    def engine_url(self, name: str) -> str:
        """Where host `name`'s engine is reached on this machine (its tunnel's socket), for
        another client of it (the log collector's); nothing is started."""
        return f"unix://{socket_path(self._host(name), self.run_dir)}"

    def tunnel_up(self, name: str) -> str:
        """Start host `name`'s tunnel unless it runs (HostError, DaemonError when it cannot:
        no route, no sshd, a refused key); its `engine_url`."""
        host = self._host(name)
        with self._lock:
            daemon = self._tunnels.get(name)
            if daemon is None:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                daemon = self._tunnels[name] = tunnel(host, self.run_dir, self.known_hosts)
            host_lock = self._host_locks.setdefault(name, threading.Lock())
        with host_lock:
            if not daemon.running():
                with _file_lock(self.run_dir / f"{name}.tunnel.lock"):
                    if not daemon.running():  # another process may have started it meanwhile
                        daemon.ensure()
        return self.engine_url(name)

    def forget(self, name: str) -> None:
        """Close host `name`'s client and stop its tunnel (it left the fleet)."""
        with self._lock:
            engine = self._engines.pop(name, None)
            daemon = self._tunnels.pop(name, None)
        if engine is not None:
            engine.close()
        if daemon is not None:
            daemon.stop(grace=5)

    def close_clients(self) -> None:
        """Close every engine's client, leaving the tunnels running (for the next command, or
        the agent's and server's engines, which share them through their PID files)."""
        with self._lock:
            engines = list(self._engines.values())
            self._engines.clear()
        for engine in engines:
            engine.close()

    def close(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                engine.close()
            for daemon in self._tunnels.values():
                daemon.stop(grace=5)
            self._engines.clear()
            self._tunnels.clear()

    def __enter__(self) -> FleetEngines:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (made if missing), across processes, until the block ends."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the file releases its lock
