"""An app host logged in as a user other than root (a provisioned host's `deploy`): the
router's scripts run exactly the commands provisioning's sudoers drop-in allows, each with
`sudo -n`, and nothing else through sudo; root's scripts have no sudo at all; the project's
HAProxy gives that user its admin socket (docs/provision.md, "The deploy user")."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path, PurePosixPath

import jinja2
import pytest

import conveyor.provision.ansible as ansible_pkg
from conveyor.errors import RouterError
from conveyor.host.ssh_command import as_root, sudo_hint
from conveyor.model.fleet import FleetHost
from conveyor.model.routing import RouterConfig
from conveyor.render.haproxy import render
from conveyor.router.fleet_host import HostHAProxy, app_dir, host_push_script, stop_script

SUDOERS = Path(ansible_pkg.__file__).parent / "playbook/roles/base/templates/sudoers.j2"
# Where sudo's secure_path finds each command on Debian 12 (merged /usr).
PATHS = {"haproxy": "/usr/sbin/haproxy", "ln": "/usr/bin/ln", "mkdir": "/usr/bin/mkdir",
         "kill": "/usr/bin/kill"}  # fmt: skip
LINKS = {
    "cv-shop-web-0123456789ab": "/var/run/docker/netns/5f1c2a3b4d5e",
    "cv-shop-db-ba9876543210": "/var/run/docker/netns/0a1b2c3d4e5f",
}
DEPLOY = FleetHost(name="h1", address="10.0.0.5", user="deploy")
ROOT = FleetHost(name="h1", address="10.0.0.5")


def drop_in(roles: tuple[str, ...] = ("app",)) -> str:
    """The sudoers drop-in as the base role writes it on a host with `roles` (Jinja, as
    Ansible's template module renders it: trim_blocks)."""
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(SUDOERS.read_text()).render(
        ansible_managed="Ansible managed", conveyor_deploy_user="deploy", conveyor_roles=roles
    )


def allowed(roles: tuple[str, ...] = ("app",)) -> list[tuple[str, str]]:
    """(command path, argument pattern) of every command the drop-in lets the deploy user run
    on a host with `roles`: the aliases its `deploy … NOPASSWD:` line names."""
    text = re.sub(r"\\\n\s*", "", drop_in(roles))  # continuation lines joined
    aliases: dict[str, list[tuple[str, str]]] = {}
    granted: list[str] = []
    for line in text.splitlines():
        if found := re.match(r"Cmnd_Alias ([A-Z_]+) = (.*)$", line):
            items = re.split(r"(?<!\\), ", found.group(2))
            aliases[found.group(1)] = [
                (path, args)
                for path, _, args in (i.replace("\\,", ",").strip().partition(" ") for i in items)
            ]
        elif found := re.match(r"deploy ALL=\(root\) NOPASSWD: (.*)$", line):
            granted += [a.strip() for a in found.group(1).split(",")]
    return [item for name in granted for item in aliases[name]]


def sudo_commands(script: str) -> list[list[str]]:
    """Each command the script runs through `sudo -n`, as sudo sees it: `"$(cat …pid)"`
    standing for a PID, redirections left out."""
    script = re.sub(r"\\\n\s*", "", script)
    script = re.sub(r'"\$\(cat [^)]*\)"', "4242", script)
    out = []
    for line in script.splitlines():
        if "sudo -n " not in line:
            continue
        words = shlex.split(line.split("sudo -n ", 1)[1])
        out.append([w for w in words if not w.startswith(("<", ">", "2>"))])
    return out


def permitted(argv: list[str], roles: tuple[str, ...] = ("app",)) -> bool:
    """Whether sudo runs `argv` for the deploy user: `""` allows no arguments at all."""
    path, args = PATHS.get(argv[0], argv[0]), " ".join(argv[1:])
    return any(
        path == p and (args == "" if pattern == '""' else fnmatch.fnmatchcase(args, pattern))
        for p, pattern in allowed(roles)
    )


def test_every_sudo_command_of_the_scripts_is_one_the_drop_in_allows() -> None:
    d = app_dir("shop")
    commands = [*sudo_commands(host_push_script(d, LINKS, keep_state=True, sudo="sudo -n ")),
                *sudo_commands(stop_script(d, "sudo -n "))]  # fmt: skip
    # what needs root: the namespaces' names, HAProxy's check and start, its signals
    assert sorted({c[0] for c in commands}) == ["haproxy", "kill", "ln", "mkdir"]
    assert len([c for c in commands if c[0] == "ln"]) == len(LINKS)
    refused = [c for c in commands if not permitted(c)]
    assert not refused, refused


def test_the_drop_in_refuses_what_the_router_does_not_run() -> None:
    """The patterns are not `ALL`: a link outside Docker's namespaces, HAProxy on another
    file, a signal other than USR2 or TERM are not among them."""
    assert not permitted(["ln", "-sfn", "/etc/shadow", "/var/run/netns/cv-x"])
    assert not permitted(["haproxy", "-f", "/tmp/evil.cfg"])
    assert not permitted(["kill", "-9", "1"])
    assert not permitted(["mkdir", "-p", "/etc/sudoers.d/x"])
    assert permitted(["kill", "-USR2", "4242"])


def test_a_root_login_runs_the_scripts_without_sudo() -> None:
    d = app_dir("shop")
    assert as_root(ROOT) == ""
    assert as_root(DEPLOY) == "sudo -n "
    for script in (
        host_push_script(d, LINKS, keep_state=True, sudo=as_root(ROOT)),
        stop_script(d, as_root(ROOT)),
    ):
        assert "sudo" not in script
    # the same commands, in the same order, with or without the prefix
    with_sudo = host_push_script(d, LINKS, keep_state=True, sudo="sudo -n ")
    assert with_sudo.replace("sudo -n ", "") == host_push_script(d, LINKS, keep_state=True, sudo="")


def test_sudo_refusals_say_what_to_do() -> None:
    said = "on h1 (10.0.0.5): exit 1: sudo: a password is required"
    assert "conveyor provision" in sudo_hint(DEPLOY, said)
    assert "conveyor provision" in sudo_hint(DEPLOY, "mkdir: /run/conveyor: Permission denied")
    assert sudo_hint(ROOT, said) == ""
    assert sudo_hint(DEPLOY, "haproxy: bad config") == ""


def test_the_admin_socket_is_the_ssh_users_when_it_is_not_root() -> None:
    run_dir = Path(str(PurePosixPath("/run/conveyor/shop/haproxy")))
    text = render(RouterConfig(), run_dir, prometheus_exporter=False, socket_user="deploy")
    assert "stats socket /run/conveyor/shop/haproxy/admin.sock mode 600 user deploy " in text
    plain = render(RouterConfig(), run_dir, prometheus_exporter=False)
    assert "admin.sock mode 600 level admin" in plain
    with pytest.raises(RouterError, match="not usable"):
        render(RouterConfig(), run_dir, prometheus_exporter=False, socket_user="x y")


def test_a_deploy_hosts_haproxy_is_rendered_with_its_socket_for_that_user(tmp_path: Path) -> None:
    deploy = HostHAProxy(DEPLOY, tmp_path, remote_dir=app_dir("shop"))
    root = HostHAProxy(ROOT.model_copy(update={"name": "h2"}), tmp_path, remote_dir=app_dir("shop"))
    assert (deploy.socket_user, root.socket_user) == ("deploy", None)
