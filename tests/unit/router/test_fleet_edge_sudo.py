"""An edge host logged in as a user other than root (a provisioned host's `deploy`): the
router runs the edge's push and wait as the root-owned programs provisioning installs, with
`sudo -n`, and those programs are the very scripts it runs inline as root; the edge host's
sudoers drop-in allows exactly them, and nothing an app host's router runs
(docs/provision.md, "The deploy user")."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from conveyor.app.provision import provision_inputs
from conveyor.errors import HostError, RouterError
from conveyor.model.fleet import FleetHost
from conveyor.model.provision import EDGE_PUSH_PROGRAM, EDGE_SERVES_PROGRAM
from conveyor.render.ansible_inventory import read_inventory
from conveyor.router import fleet_edge
from conveyor.router.fleet_edge import (
    ADMIN,
    PROGRAM_HEADER,
    EdgeHost,
    edge_programs,
    edge_push_script,
)
from conveyor.router.fleet_host import app_dir, host_push_script, stop_script
from conveyor.router.remote_admin import edge_serves_script
from tests.unit.router.admin_stub import admin_socket
from tests.unit.router.test_fleet_edge import Host
from tests.unit.router.test_fleet_host_sudo import LINKS, drop_in, permitted, sudo_commands

EDGE = ("edge",)
DEPLOY = FleetHost(name="e1", address="10.0.0.9", user="deploy", roles=EDGE)
ROOT = FleetHost(name="e1", address="10.0.0.9", roles=EDGE)
BACKENDS = {"be_web_8080", "be_api_18611"}


class Sent:
    """What EdgeHost runs over SSH (router.fleet_edge.ssh_script stood in for)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: str = "serving\n") -> None:
        self.scripts: list[tuple[str, str | None]] = []
        self.fail: str | None = None

        def ssh_script(host: FleetHost, script: str, *, input: str | None = None,
                       **_: object) -> str:  # fmt: skip
            self.scripts.append((script, input))
            if self.fail is not None:
                raise HostError(f"on {host.name} ({host.address}): exit 1: {self.fail}")
            return answer

        monkeypatch.setattr(fleet_edge, "ssh_script", ssh_script)


def programs() -> dict[str, str]:
    return {p.path: p.text for p in edge_programs()}


def test_the_installed_programs_are_the_scripts_root_runs_inline() -> None:
    push, serves = programs()[EDGE_PUSH_PROGRAM], programs()[EDGE_SERVES_PROGRAM]
    assert push == PROGRAM_HEADER + edge_push_script()
    # the wait: the inline script's command, with the arguments the program is given
    inline = edge_serves_script(ADMIN, BACKENDS, 15)
    arguments = "15 be_api_18611 be_web_8080"
    assert serves.startswith(PROGRAM_HEADER + "exec ") and serves.endswith(' "$@"\n')
    body = serves.removeprefix(PROGRAM_HEADER + "exec ").removesuffix(' "$@"\n')
    assert f"{body} {arguments}\n" == inline
    assert ADMIN == "/run/haproxy/admin.sock"


def test_the_installed_programs_run(tmp_path: Path) -> None:
    """Each program as a file, its host paths moved to a scratch directory: the push
    installs and starts (stub `haproxy`, tests/unit/router/test_fleet_edge.py), the wait
    asks a stand-in admin socket."""
    host = Host(tmp_path)
    moved = {"/etc/haproxy": str(host.cfg.parent), "/run/haproxy": str(host.run_dir),
             "/run/systemd/system": str(host.marker)}  # fmt: skip
    for path, installed in programs().items():
        text = installed
        for old, new in moved.items():  # a whole path, or its start: not inside another
            text = re.sub(rf"(?<![\w/.-]){re.escape(old)}(?=[/\s])", new, text)
        code = "".join(line for line in text.splitlines(True) if not line.startswith("#"))
        assert not re.search(r"(?<![\w/.-])/(etc|run)/", code), code
        program = tmp_path / Path(path).name
        program.write_text(text)
        program.chmod(0o755)
    env = {**os.environ, "PATH": f"{host.bin}:{os.environ['PATH']}", "CALLS": str(host.calls)}
    pushed = subprocess.run([tmp_path / "conveyor-edge-push"], input="edge v1", env=env,
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stdout.split() == ["direct"] and host.cfg.read_text() == "edge v1"
    stat = "# pxname,svname,qcur,status,\nbe_web_8080,h2,0,UP,\n"
    with admin_socket(host.run_dir / "admin.sock", lambda _command: stat):
        waited = subprocess.run([tmp_path / "conveyor-edge-serves", "5", "be_web_8080"],
                                capture_output=True, text=True, check=True)  # fmt: skip
    assert waited.stdout.split() == ["serving"]


def test_provisioning_carries_the_programs_to_the_edge_role(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "hosts:\n  a: {address: 10.0.0.5}\n  e: {address: 10.0.0.9, roles: [edge]}\n"
    )
    inputs = provision_inputs(Path("conveyor.yaml"), [], {}, tmp_path)
    assert inputs.settings.edge_programs == edge_programs()
    carried = read_inventory(inputs.inventory)["all"]["vars"]["conveyor_edge_programs"]
    assert {p["dest"]: p["content"] for p in carried} == programs()
    assert "conveyor_edge_programs: !unsafe" not in inputs.inventory  # a list of files…
    assert "content: !unsafe |" in inputs.inventory  # …each copied byte for byte


def test_as_deploy_the_edge_runs_the_programs_through_sudo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = Sent(monkeypatch)
    edge = EdgeHost(DEPLOY)
    assert edge.serves(BACKENDS, 15) == "serving"
    edge.push("edge v1")
    [(serves, _), (push, given)] = sent.scripts
    assert serves == f"sudo -n {EDGE_SERVES_PROGRAM} 15 be_api_18611 be_web_8080\n"
    assert (push, given) == (f"sudo -n {EDGE_PUSH_PROGRAM}\n", "edge v1")
    commands = sudo_commands(serves + push)
    assert [c[0] for c in commands] == [EDGE_SERVES_PROGRAM, EDGE_PUSH_PROGRAM]
    refused = [c for c in commands if not permitted(c, EDGE)]
    assert not refused, refused


def test_as_root_the_edge_runs_the_scripts_inline_without_sudo(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent = Sent(monkeypatch)
    edge = EdgeHost(ROOT)
    edge.serves(BACKENDS, 15)
    edge.push("edge v1")
    [(serves, _), (push, given)] = sent.scripts
    assert serves == edge_serves_script(ADMIN, BACKENDS, 15)
    assert (push, given) == (edge_push_script(), "edge v1")
    assert "sudo" not in serves + push


def test_the_edge_hosts_drop_in_allows_the_two_programs_and_nothing_else() -> None:
    assert permitted([EDGE_PUSH_PROGRAM], EDGE)
    assert permitted([EDGE_SERVES_PROGRAM, "15", "be_web_8080"], EDGE)
    # the push takes its file on stdin: no argument makes it do anything else
    assert not permitted([EDGE_PUSH_PROGRAM, "/tmp/evil.cfg"], EDGE)
    assert not permitted([EDGE_SERVES_PROGRAM.replace("serves", "shell")], EDGE)
    # an app host's commands are not an edge host's, nor the other way round
    d = app_dir("shop")
    app_commands = [*sudo_commands(host_push_script(d, LINKS, keep_state=True, sudo="sudo -n ")),
                    *sudo_commands(stop_script(d, "sudo -n "))]  # fmt: skip
    assert app_commands and all(permitted(c) for c in app_commands)
    assert not any(permitted(c, EDGE) for c in app_commands)
    assert not permitted([EDGE_PUSH_PROGRAM])
    assert "conveyor-edge" not in drop_in(("app", "monitor"))


def test_the_programs_paths_are_the_ones_the_drop_in_names() -> None:
    text = drop_in(EDGE)
    for path in programs():
        assert f"{path} " in text
    assert all(shlex.quote(p) == p for p in programs())  # run unquoted by the router


def test_a_refused_sudo_on_an_edge_host_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = Sent(monkeypatch)
    sent.fail = f"sudo: {EDGE_PUSH_PROGRAM}: command not found"
    with pytest.raises(RouterError, match="conveyor provision"):
        EdgeHost(DEPLOY).push("edge v1")
    with pytest.raises(RouterError) as info:
        EdgeHost(ROOT).push("edge v1")
    assert "conveyor provision" not in str(info.value)
