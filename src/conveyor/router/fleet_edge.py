"""The edge on an `edge` host (docs/fleet.md, "The edge"): one HAProxy per edge host, the one
provisioning installs (the haproxy role, model.provision's HOST_HAPROXY_*). The fleet's router
writes the file that HAProxy reads, `/etc/haproxy/haproxy.cfg`, checked with `haproxy -c` on
the host first, and reloads it the way the host runs it:

- **systemd** (a real host: `/run/systemd/system` exists, sd_booted()'s own test):
  `systemctl reload-or-restart haproxy` (the unit's master-worker reload; started if it was
  not running);
- **no systemd** (the test hosts): as provisioning's handler does, a new `haproxy -D` takes
  over from the one its pid file names (`-sf`), or starts it when none runs.

An unchanged file with HAProxy running is left alone (no reload). Before a reload the running
edge's `show servers state` is saved where the file's `server-state-file` points, so the app
hosts keep their checks' verdicts (render.edge_haproxy); a fresh start removes a stale one.
The choice is made on the host, by the script `edge_push_script` renders (pure, tested with
stub commands).

After a server is put in rotation the fleet's router waits until each edge host's HAProxy has
an app host up for the service's ports (`EdgeHost.serves`), by a python3 snippet polling the
admin socket on the host (router.remote_admin): one SSH connection per wait, no tunnel
daemon to start, track and stop per edge host.

Both need root (the configuration, the reload, the admin socket are root's). Logged in as
root, the router runs them inline. Logged in as another user (provisioning's `deploy`), it
runs the same scripts installed as root-owned programs by provisioning's haproxy role
(`edge_programs`: /usr/local/sbin/conveyor-edge-push and conveyor-edge-serves), with
`sudo -n`, which the sudoers drop-in allows on edge hosts and nothing else there
(docs/provision.md, "The deploy user"). A host provisioned by an older Conveyor runs the
programs it was given until `conveyor provision` runs again.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection
from pathlib import Path, PurePosixPath

from conveyor.errors import ConveyorError, RouterError
from conveyor.host.ssh_command import as_root, ssh_script, sudo_hint
from conveyor.model.fleet import FleetHost
from conveyor.model.provision import (
    EDGE_PUSH_PROGRAM,
    EDGE_SERVES_PROGRAM,
    HOST_HAPROXY_CONFIG,
    HOST_HAPROXY_RUN_DIR,
    HostProgram,
)
from conveyor.render.haproxy import ADMIN_SOCKET, PID_FILE, STATE_FILE
from conveyor.router.remote_admin import (
    edge_serves_command,
    edge_serves_script,
    keep_state_function,
    serves_arguments,
)

SYSTEMD_MARKER = "/run/systemd/system"


def edge_push_script(
    config_file: str = HOST_HAPROXY_CONFIG,
    run_dir: str = HOST_HAPROXY_RUN_DIR,
    systemd_marker: str = SYSTEMD_MARKER,
) -> str:
    """A POSIX shell script (the configuration on stdin) that installs and applies it; it
    prints what it did: `unchanged`, `systemd` or `direct`. The paths are parameters so that
    a test can run it in a scratch directory."""
    cfg = shlex.quote(config_file)
    new = shlex.quote(config_file + ".new")
    pid_file = shlex.quote(str(PurePosixPath(run_dir) / PID_FILE))
    state_file = str(PurePosixPath(run_dir) / STATE_FILE)
    state = shlex.quote(state_file)
    # Before a reload: the running edge's server state where the file's `server-state-file`
    # points (router.remote_admin), so app hosts keep their checks' verdicts.
    keep_state = keep_state_function(str(PurePosixPath(run_dir) / ADMIN_SOCKET), state_file)
    marker = shlex.quote(systemd_marker)
    return f"""set -e
mkdir -p {shlex.quote(str(PurePosixPath(config_file).parent))} {shlex.quote(run_dir)}
cat > {new}
haproxy -c -q -f {new}
pid=""
if [ -s {pid_file} ] && kill -0 "$(cat {pid_file})" 2>/dev/null; then pid="$(cat {pid_file})"; fi
{keep_state}if [ -d {marker} ]; then
  if cmp -s {new} {cfg} && systemctl is-active --quiet haproxy; then
    rm -f {new}; echo unchanged; exit 0
  fi
  mv {new} {cfg}
  if systemctl is-active --quiet haproxy; then keep_state; else rm -f {state}; fi
  systemctl reload-or-restart haproxy
  echo systemd
else
  if cmp -s {new} {cfg} && [ -n "$pid" ]; then rm -f {new}; echo unchanged; exit 0; fi
  mv {new} {cfg}
  if [ -n "$pid" ]; then keep_state; haproxy -D -f {cfg} -sf "$pid"
  else rm -f {state}; haproxy -D -f {cfg}; fi
  echo direct
fi
"""


ADMIN = str(PurePosixPath(HOST_HAPROXY_RUN_DIR) / ADMIN_SOCKET)

PROGRAM_HEADER = """#!/bin/sh
# Written by Conveyor (provisioning's haproxy role, on edge hosts; router/fleet_edge.py's
# edge_programs). The fleet's router runs it with `sudo -n` when it logs in as the deploy
# user (/etc/sudoers.d/conveyor); as root it runs the same script inline.
"""


def edge_programs() -> tuple[HostProgram, ...]:
    """What provisioning installs on edge hosts: `edge_push_script` as conveyor-edge-push
    (the configuration on stdin, no arguments) and the wait of `EdgeHost.serves` as
    conveyor-edge-serves (arguments: WITHIN and the backends' names), on the paths the
    sudoers drop-in names."""
    return (
        HostProgram(path=EDGE_PUSH_PROGRAM, text=PROGRAM_HEADER + edge_push_script()),
        HostProgram(
            path=EDGE_SERVES_PROGRAM,
            text=PROGRAM_HEADER + f'exec {edge_serves_command(ADMIN)} "$@"\n',
        ),
    )


class EdgeHost:
    """Provisioning's HAProxy on one edge host, driven over SSH."""

    def __init__(self, host: FleetHost, *, known_hosts: Path | None = None) -> None:
        self.host = host
        self.known_hosts = known_hosts

    @property
    def name(self) -> str:
        return self.host.name

    def push(self, text: str) -> str:
        """Install `text` as the host's HAProxy configuration and apply it; what was done."""
        sudo = as_root(self.host)
        script = f"{sudo}{EDGE_PUSH_PROGRAM}\n" if sudo else edge_push_script()
        try:
            said = ssh_script(self.host, script, input=text, known_hosts=self.known_hosts)
        except ConveyorError as e:
            raise RouterError(self._failed(e)) from e
        return said.strip().splitlines()[-1] if said.strip() else ""

    def serves(self, backends: Collection[str], within: float) -> str:
        """Wait (at most `within` seconds) until the edge host's HAProxy has an app host up
        in each of `backends`, asking its admin socket on the host (router.remote_admin: one
        SSH connection, polled there). `serving`, `waiting` (time ran out) or `silent` (the
        HAProxy does not answer). Raises RouterError when the host cannot be reached."""
        sudo = as_root(self.host)
        script = (
            f"{sudo}{EDGE_SERVES_PROGRAM} {serves_arguments(backends, within)}\n"
            if sudo
            else edge_serves_script(ADMIN, backends, within)
        )
        try:
            said = ssh_script(self.host, script, known_hosts=self.known_hosts, timeout=within + 30)
        except ConveyorError as e:
            raise RouterError(self._failed(e)) from e
        return said.strip().splitlines()[-1] if said.strip() else ""

    def _failed(self, e: ConveyorError) -> str:
        return f"edge HAProxy on {self.name}: {e}{sudo_hint(self.host, str(e))}"

    def stop(self) -> None:
        """Nothing: the edge host's HAProxy is provisioning's service and keeps running (with
        the last configuration) when a project goes down."""

    def close(self) -> None:
        return None
