"""router.fleet_edge: the edge host's script picks systemd's reload where systemd runs and a
`-sf` takeover otherwise, leaves an unchanged running edge alone, and installs nothing that
`haproxy -c` refuses. Run with stub `haproxy` and `systemctl` that record their arguments."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.router.fleet_edge import edge_push_script
from tests.unit.router.admin_stub import admin_socket

STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case " $* " in *" -c "*) [ -z "$FAIL_CHECK" ] || { echo "bad config" >&2; exit 1; } ;; esac
case "$1" in is-active) exit "${ACTIVE:-3}" ;; esac
exit 0
"""


class Host:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir()
        for name in ("haproxy", "systemctl"):
            stub = self.bin / name
            stub.write_text(STUB)
            stub.chmod(0o755)
        self.cfg = root / "etc/haproxy/haproxy.cfg"
        self.run_dir = root / "run/haproxy"
        self.marker = root / "run/systemd/system"
        self.calls = root / "calls"

    def push(self, text: str, **env: str) -> tuple[int, str]:
        script = edge_push_script(str(self.cfg), str(self.run_dir), str(self.marker))
        done = subprocess.run(
            ["sh", "-c", script],
            input=text,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PATH": f"{self.bin}:{os.environ['PATH']}",
                "CALLS": str(self.calls),
                **env,
            },
            check=False,
        )
        return done.returncode, done.stdout.strip()

    def called(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def running(self) -> None:
        """An HAProxy whose pid file names a live process (this test's own)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "haproxy.pid").write_text(str(os.getpid()))


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_without_systemd_it_starts_haproxy(host: Host) -> None:
    assert host.push("edge v1") == (0, "direct")
    assert host.cfg.read_text() == "edge v1"
    assert host.called() == [
        f"haproxy -c -q -f {host.cfg}.new",
        f"haproxy -D -f {host.cfg}",
    ]


def test_without_systemd_a_new_haproxy_takes_over_from_the_running_one(host: Host) -> None:
    host.running()
    host.cfg.parent.mkdir(parents=True)
    host.cfg.write_text("edge v1")
    assert host.push("edge v2") == (0, "direct")
    assert host.cfg.read_text() == "edge v2"
    assert host.called()[-1] == f"haproxy -D -f {host.cfg} -sf {os.getpid()}"
    assert not any(c.startswith("systemctl") for c in host.called())


def test_an_unchanged_running_edge_is_not_reloaded(host: Host) -> None:
    host.running()
    host.cfg.parent.mkdir(parents=True)
    host.cfg.write_text("edge v1")
    assert host.push("edge v1") == (0, "unchanged")
    assert host.called() == [f"haproxy -c -q -f {host.cfg}.new"]


def test_with_systemd_it_reloads_through_the_unit(host: Host) -> None:
    host.marker.mkdir(parents=True)
    host.running()
    assert host.push("edge v1") == (0, "systemd")
    assert host.cfg.read_text() == "edge v1"
    assert host.called()[-1] == "systemctl reload-or-restart haproxy"
    assert not any(c.startswith("haproxy -D") for c in host.called())


def test_with_systemd_an_unchanged_active_edge_is_left_alone(host: Host) -> None:
    host.marker.mkdir(parents=True)
    host.cfg.parent.mkdir(parents=True)
    host.cfg.write_text("edge v1")
    assert host.push("edge v1", ACTIVE="0") == (0, "unchanged")
    assert "systemctl reload-or-restart haproxy" not in host.called()
    # Not active: the same file, but the unit is (re)started.
    assert host.push("edge v1", ACTIVE="3") == (0, "systemd")


def test_a_configuration_haproxy_refuses_is_not_installed(host: Host) -> None:
    host.cfg.parent.mkdir(parents=True)
    host.cfg.write_text("edge v1")
    code, _ = host.push("broken", FAIL_CHECK="1")
    assert code != 0
    assert host.cfg.read_text() == "edge v1"
    assert host.called() == [f"haproxy -c -q -f {host.cfg}.new"]


STATE = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n3 be_web_80 1 h1 10.0.0.1 2\n"


@pytest.fixture
def admin(host: Host) -> Iterator[list[str]]:
    """The running edge's admin socket, answering `show servers state` with STATE; the
    commands it got."""
    with admin_socket(host.run_dir / "admin.sock", lambda _command: STATE) as got:
        yield got


def test_a_takeover_keeps_the_running_edges_server_state(host: Host, admin: list[str]) -> None:
    """The running edge's view of the app hosts is saved where the new file's
    `server-state-file` points before the new HAProxy starts (render.edge_haproxy)."""
    host.running()
    assert host.push("edge v2") == (0, "direct")
    assert admin == ["show servers state"]
    assert (host.run_dir / "servers.state").read_text() == STATE


def test_with_systemd_a_reload_keeps_the_server_state(host: Host, admin: list[str]) -> None:
    host.marker.mkdir(parents=True)
    assert host.push("edge v2", ACTIVE="0") == (0, "systemd")
    assert (host.run_dir / "servers.state").read_text() == STATE


def test_a_fresh_start_or_a_silent_edge_leaves_no_stale_server_state(host: Host) -> None:
    """A state file from an older life is not loaded by a new edge: removed when none runs,
    and when the running one does not answer."""
    host.run_dir.mkdir(parents=True)
    state = host.run_dir / "servers.state"
    state.write_text(STATE)
    assert host.push("edge v1") == (0, "direct")
    assert not state.exists()
    state.write_text(STATE)
    host.running()  # its admin socket does not answer
    assert host.push("edge v2") == (0, "direct")
    assert not state.exists()
