"""One fleet host's HAProxy, driven from the controller (docs/fleet.md, "Wiring"):

- its files go over SSH (host.ssh_command): the candidate is written, checked with
  `haproxy -c` on the host, then HAProxy is started (`haproxy -W -D`: master-worker, as the
  one-host router runs it) or reloaded hitlessly (SIGUSR2 to the master; the rendered
  `expose-fd listeners` hands the listening sockets to the new worker), a driven host's
  server state saved on the host first (`host_push_script`, router.remote_admin);
- its runtime API goes through its admin socket forwarded to this machine by an `ssh -N -L`
  daemon (host.ssh_tunnel, like the engine's tunnel), so the one-host router's runtime-API
  code (router.haproxy.HAProxyRouter's add_server, set_state, servers…) is reused unchanged
  against it.

Used for app hosts' per-project HAProxies, started directly, not by systemd (the test hosts
have none; provisioning's HAProxy on an app host is the host's own, serving its stats only).
Edge hosts use provisioning's HAProxy instead (router.fleet_edge; docs/fleet.md's table).
"""

from __future__ import annotations

import contextlib
import re
import shlex
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from conveyor.errors import ConveyorError, RouterError
from conveyor.host.process import Daemon, wait_until
from conveyor.host.ssh_command import as_root, ssh_script, sudo_hint
from conveyor.host.ssh_tunnel import socket_path, tunnel
from conveyor.model.fleet import FleetHost
from conveyor.model.routing import RouterConfig
from conveyor.render.haproxy import ADMIN_SOCKET, MASTER_SOCKET, PID_FILE, STATE_FILE
from conveyor.router.haproxy import HAProxyRouter, send
from conveyor.router.remote_admin import keep_state_function

# Where a host's HAProxies keep their files, one directory per project (several projects
# may share a fleet, each with its own HAProxy and ports, as on one host).
HOST_RUN = PurePosixPath("/run/conveyor")


def app_dir(project: str) -> PurePosixPath:
    return HOST_RUN / project / "haproxy"


def edge_dir(project: str) -> PurePosixPath:
    return HOST_RUN / project / "edge"


def host_push_script(
    remote_dir: PurePosixPath,
    links: Mapping[str, str],
    *,
    keep_state: bool,
    sudo: str = "",
    netns_dir: str = "/var/run/netns",
) -> str:
    """The shell script (the configuration on stdin) that `HostHAProxy.push` runs on the
    host: links the namespaces, checks the file, then reloads the running master (SIGUSR2)
    or starts one. Before a reload, the running HAProxy's server state is saved where the
    file's `server-state-file` points when `keep_state`, else removed; a fresh start removes
    it. `sudo` prefixes what needs root (`as_root`): HAProxy binds inside containers'
    namespaces (setns needs CAP_SYS_ADMIN, and Docker's namespace files are root's), so it
    runs as root, and /var/run/netns is root's; `remote_dir` itself is the SSH user's
    (provisioning gives the deploy user /run/conveyor), and so is the admin socket the state
    is read from. Each privileged line is one provisioning's sudoers allows
    (roles/base/templates/sudoers.j2): keep the two in step. Pure text: the paths are
    parameters so that a test can run it in a scratch directory."""
    d = remote_dir
    state = shlex.quote(str(d / STATE_FILE))
    netns = shlex.quote(netns_dir)
    linked = "".join(
        f"{sudo}ln -sfn {shlex.quote(target)} {netns}/{shlex.quote(name)}\n"
        for name, target in sorted(links.items())
    )
    keep = keep_state_function(str(d / ADMIN_SOCKET), str(d / STATE_FILE))
    before_reload = "keep_state" if keep_state else f"rm -f {state}"
    # Whether the master runs: its /proc entry, not `kill -0`, which a user other than the
    # master's (root's) is refused.
    return f"""mkdir -p {d}
{sudo}mkdir -p {netns}
{linked}{keep}cat > {d}/haproxy.cfg.new
{sudo}haproxy -c -q -f {d}/haproxy.cfg.new
mv {d}/haproxy.cfg.new {d}/haproxy.cfg
if [ -s {d}/{PID_FILE} ] && [ -d "/proc/$(cat {d}/{PID_FILE})" ]; then
  {before_reload}
  {sudo}kill -USR2 "$(cat {d}/{PID_FILE})"
else
  rm -f {state}
  {sudo}haproxy -W -D -f {d}/haproxy.cfg -S {d}/{MASTER_SOCKET},mode,600 \\
    </dev/null >>{d}/start.log 2>&1
fi"""


def stop_script(d: PurePosixPath, sudo: str = "") -> str:
    """On the host: stop the HAProxy `d`'s pid file names (its master: root's when `sudo`)."""
    return (
        f'if [ -s {d}/{PID_FILE} ]; then {sudo}kill "$(cat {d}/{PID_FILE})" || true; fi\n'
        f"rm -f {d}/{PID_FILE}"
    )


class HostHAProxy:
    """The HAProxy in `remote_dir` on `host`; `local_dir` holds its tunnel and what the
    runtime-API code records (frontends.json, servers.json)."""

    def __init__(
        self,
        host: FleetHost,
        local_dir: Path,
        *,
        remote_dir: PurePosixPath,
        kind: str = "haproxy",
        known_hosts: Path | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.remote_dir = remote_dir
        self.known_hosts = known_hosts
        self.timeout = timeout
        self.local_dir = local_dir / host.name
        self.local_dir.mkdir(parents=True, exist_ok=True)
        self._tunnel: Daemon = tunnel(
            host,
            local_dir,
            known_hosts,
            remote=str(remote_dir / ADMIN_SOCKET),
            kind=kind,
            what=f"HAProxy ({remote_dir})",
        )
        # The one-host router's runtime-API code, pointed at the forwarded admin socket.
        self.api = HAProxyRouter(self.local_dir, timeout=timeout)
        self.api.admin_socket = socket_path(host, local_dir, kind)

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def socket_user(self) -> str | None:
        """Who must own the admin socket: the SSH user, whose tunnel reaches it, when HAProxy
        runs as another (root, through sudo); None when the SSH user is root."""
        return None if self.host.user == "root" else self.host.user

    def connect(self) -> None:
        """Start the admin socket's tunnel unless it runs (it ends with a lost link)."""
        if not self._tunnel.running():
            try:
                self._tunnel.ensure()
            except ConveyorError as e:
                raise RouterError(f"HAProxy on {self.name}: {e}") from e

    def worker_pid(self) -> int | None:
        """The serving worker's PID, from `show info`; None when it does not answer."""
        try:
            self.connect()
            data = send(self.api.admin_socket, "show info", 3.0)
        except RouterError:
            return None
        found = re.search(r"^Pid: (\d+)$", data, re.MULTILINE)
        return int(found.group(1)) if found else None

    def running(self) -> bool:
        return self.worker_pid() is not None

    def push(
        self, text: str, links: Mapping[str, str] | None = None, *, keep_state: bool = False
    ) -> None:
        """Check `text` on the host, then start HAProxy on it or reload it; returns once a new
        worker answers. `links`: namespace name -> namespace file, linked under
        /var/run/netns on the host first (HAProxy's `namespace` binds; router.haproxy does
        the same on one host). `keep_state`: a reload first saves the running HAProxy's
        `show servers state` where the file's `server-state-file` points (router.remote_admin),
        so its servers keep their checks' verdicts (a dead replica stays down) — for a host
        the controller has been driving; otherwise (a host back from down: its view is
        stale), and at a fresh start, no state is loaded. Raises RouterError with HAProxy's
        complaint."""
        before = self.worker_pid()
        d = self.remote_dir
        script = host_push_script(d, links or {}, keep_state=keep_state, sudo=as_root(self.host))
        try:
            ssh_script(self.host, script, input=text, known_hosts=self.known_hosts)
        except ConveyorError as e:
            raise RouterError(f"HAProxy on {self.name}: {e}{sudo_hint(self.host, str(e))}") from e

        def serving() -> bool:
            pid = self.worker_pid()
            return pid is not None and pid != before

        if not wait_until(serving, self.timeout):
            raise RouterError(
                f"HAProxy on {self.name} did not answer on {d}/{ADMIN_SOCKET} with a new "
                f"worker within {self.timeout:g}s (see {d}/start.log there)"
            )

    def remember_shape(self, shape: RouterConfig) -> None:
        """What the runtime-API code reads to name a service's backends."""
        tmp = self.api.frontends_file.with_suffix(".tmp")
        tmp.write_text(shape.model_dump_json(indent=2))
        tmp.replace(self.api.frontends_file)

    def shape(self) -> RouterConfig | None:
        try:
            return RouterConfig.model_validate_json(self.api.frontends_file.read_text())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the host's HAProxy (by the PID its pid file names) and the tunnel."""
        d = self.remote_dir
        with contextlib.suppress(ConveyorError):  # a silent host: its HAProxy is out of reach
            ssh_script(
                self.host,
                stop_script(d, as_root(self.host)),
                known_hosts=self.known_hosts,
                timeout=20,
            )
        self.api.frontends_file.unlink(missing_ok=True)
        self.close()

    def close(self) -> None:
        """Stop the tunnel (HAProxy keeps running on the host)."""
        self._tunnel.stop(grace=5)
