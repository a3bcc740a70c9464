"""One shell script run on a fleet host over SSH, with the tunnels' options and key
(host.ssh_tunnel): how the fleet's HAProxies get their files and are started or reloaded
(router.fleet), and how a replica's files reach its host (deploy.fleet_files, a tar on
stdin; docs/fleet.md).

A host whose SSH user is not root (a provisioned host's `deploy` user) runs the few commands
that need root with `sudo -n` (`as_root`): provisioning's sudoers drop-in allows exactly
those (docs/provision.md, "The deploy user"); `-n` fails at once instead of asking for a
password, and `sudo_hint` turns that failure into what to do."""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import HostError
from conveyor.host.command import run
from conveyor.host.ssh_tunnel import ssh_argv
from conveyor.model.fleet import FleetHost


def ssh_script(
    host: FleetHost,
    script: str,
    *,
    input: str | None = None,
    known_hosts: Path | None = None,
    timeout: float = 60.0,
    stdin_file: Path | None = None,
) -> str:
    """Run `script` with `sh -e` on `host` (stdin: `input`, or the bytes of `stdin_file`);
    its stdout. Raises HostError naming the host, with the script's stderr, when it fails or
    SSH cannot connect."""
    argv = [*ssh_argv(host, known_hosts), "sh", "-ec", _quote(script)]
    done = run(
        argv,
        timeout=timeout,
        input=input,
        stdin_file=stdin_file,
        install_hint="install the OpenSSH client",
    )
    if not done.ok:
        said = (done.stderr or done.stdout).strip()
        raise HostError(f"on {host.name} ({host.address}): exit {done.returncode}: {said}")
    return done.stdout


def as_root(host: FleetHost) -> str:
    """The prefix of a command that needs root on `host`: nothing when its SSH user is root,
    `sudo -n ` otherwise."""
    return "" if host.user == "root" else "sudo -n "


def sudo_hint(host: FleetHost, said: str) -> str:
    """What to do when `said` (a failed script's complaint) is the SSH user lacking a right
    provisioning gives the deploy user (a sudo rule, or a directory of its own)."""
    if host.user == "root" or ("sudo" not in said and "Permission denied" not in said):
        return ""
    return (
        f" (the SSH user {host.user!r} is not root: `conveyor provision` gives the deploy user "
        "/run/conveyor, /var/lib/conveyor and the sudo rules the fleet needs (on edge hosts, the "
        "edge programs those rules name); see "
        'docs/provision.md, "The deploy user")'
    )


def _quote(script: str) -> str:
    """ssh joins its arguments with spaces for the remote shell: the script is one word."""
    return "'" + script.replace("'", "'\"'\"'") + "'"
