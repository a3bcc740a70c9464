"""router.remote_admin and the app hosts' push script (router.fleet_host): run in a scratch
directory with stub `haproxy` and a stand-in admin socket.

- the edge host's wait after a route (`edge_serves_script`) says `serving` once every named
  backend has a server up in `show stat` (polling until then), `waiting` when the time runs
  out, `silent` when the edge does not answer;
- an app host's reload keeps the running HAProxy's server state when the controller has been
  driving it, and removes a stale one otherwise (a host back from down, a fresh start)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from conveyor.router.fleet_host import host_push_script
from conveyor.router.remote_admin import edge_serves_script
from tests.unit.router.admin_stub import admin_socket

HEADER = "# pxname,svname,qcur,status,\n"


def _stat(rows: list[tuple[str, str, str]]) -> str:
    return HEADER + "".join(f"{p},{s},0,{st},\n" for p, s, st in rows)


def _wait(admin: Path, backends: set[str], within: float) -> str:
    done = subprocess.run(
        ["sh", "-ec", edge_serves_script(str(admin), backends, within)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_the_edge_host_is_waited_for_until_each_backend_has_a_host_up(tmp_path: Path) -> None:
    """Down at the first looks (the edge's checks took the hosts out), then one host up in
    each of web's backends: `serving`, after as many looks; another service's backend and
    the frontend/backend summary rows do not count."""
    looks: list[int] = []

    def answer(command: str) -> str:
        looks.append(1)
        if len(looks) < 3:
            return _stat(
                [
                    ("be_web_8080", "h1", "DOWN"),
                    ("be_web_8080", "BACKEND", "UP"),  # a summary row, not a host
                    ("be_web_9090", "h1", "DOWN"),
                    ("be_db_15432", "h1", "UP"),
                ]
            )
        return _stat(
            [
                ("be_web_8080", "h1", "DOWN"),
                ("be_web_8080", "h2", "UP 1/2"),  # going down, still serving
                ("be_web_9090", "h1", "UP"),
            ]
        )

    admin = tmp_path / "run" / "admin.sock"
    with admin_socket(admin, answer) as got:
        assert _wait(admin, {"be_web_8080", "be_web_9090"}, 30) == "serving"
    assert got == ["show stat"] * 3


def test_the_wait_ends_when_the_time_runs_out_or_the_edge_is_silent(tmp_path: Path) -> None:
    admin = tmp_path / "run" / "admin.sock"
    with admin_socket(admin, lambda _c: _stat([("be_web_8080", "h1", "DOWN")])) as got:
        assert _wait(admin, {"be_web_8080"}, 0.2) == "waiting"
    assert len(got) >= 2  # it looked again before giving up
    assert _wait(admin, {"be_web_8080"}, 5) == "silent"  # nothing answers there now


STATE = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state\n3 be_web 1 web-1-1 10.0.0.1 0\n"
STUB = """#!/bin/sh
echo "haproxy $*" >> "$CALLS"
exit 0
"""


class AppHost:
    """An app host's project directory in a scratch directory, with a stub `haproxy`."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "run/conveyor/shop/haproxy"
        self.netns = root / "netns"
        self.bin = root / "bin"
        self.bin.mkdir()
        (self.bin / "haproxy").write_text(STUB)
        (self.bin / "haproxy").chmod(0o755)
        self.calls = root / "calls"
        self.state = self.dir / "servers.state"

    def push(self, text: str, *, keep_state: bool) -> None:
        script = host_push_script(
            PurePosixPath(self.dir), {}, keep_state=keep_state, netns_dir=str(self.netns)
        )
        subprocess.run(
            ["sh", "-ec", script],
            input=text,
            text=True,
            check=True,
            env={
                **os.environ,
                "PATH": f"{self.bin}:{os.environ['PATH']}",
                "CALLS": str(self.calls),
            },
        )

    def called(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []


@pytest.fixture
def host() -> Iterator[AppHost]:
    # A short root: the script connects to <root>/run/conveyor/shop/haproxy/admin.sock, and a
    # unix socket's path (a link's too) must fit in 108 bytes; pytest's tmp_path under xdist
    # (/tmp/pytest-of-root/pytest-NN/popen-gw0/<test name>) leaves too little room.
    root = Path(tempfile.mkdtemp(prefix="cvh-", dir="/tmp"))
    yield AppHost(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def master(host: AppHost) -> Iterator[subprocess.Popen[bytes]]:
    """A running HAProxy master as far as the script can tell: its pid file names a live
    process (a `sleep` of this test's, which the reload's SIGUSR2 ends)."""
    proc = subprocess.Popen(["sleep", "60"])
    host.dir.mkdir(parents=True, exist_ok=True)
    (host.dir / "haproxy.pid").write_text(str(proc.pid))
    yield proc
    proc.kill()
    proc.wait()


def test_a_driven_hosts_reload_keeps_its_server_state(
    host: AppHost, master: subprocess.Popen[bytes]
) -> None:
    with admin_socket(host.dir / "admin.sock", lambda _c: STATE) as got:
        host.push("cfg v2", keep_state=True)
    assert got == ["show servers state"]
    assert host.state.read_text() == STATE  # where the file's server-state-file points
    assert master.wait(timeout=10) == -signal.SIGUSR2  # then reloaded
    assert (host.dir / "haproxy.cfg").read_text() == "cfg v2"
    assert host.called() == [f"haproxy -c -q -f {host.dir}/haproxy.cfg.new"]


def test_a_host_back_from_down_is_reloaded_without_its_stale_state(
    host: AppHost, master: subprocess.Popen[bytes]
) -> None:
    host.state.write_text(STATE)
    with admin_socket(host.dir / "admin.sock", lambda _c: STATE) as got:
        host.push("cfg v2", keep_state=False)
    assert got == []  # not asked
    assert not host.state.exists()
    assert master.wait(timeout=10) == -signal.SIGUSR2


def test_a_silent_haproxy_or_a_fresh_start_leaves_no_state(
    host: AppHost, master: subprocess.Popen[bytes]
) -> None:
    host.state.write_text(STATE)
    host.push("cfg v2", keep_state=True)  # its admin socket does not answer
    assert not host.state.exists()
    master.kill()
    master.wait()
    host.state.write_text(STATE)
    host.push("cfg v3", keep_state=True)  # nothing runs: started afresh
    assert not host.state.exists()
    assert host.called()[-1].startswith(f"haproxy -W -D -f {host.dir}/haproxy.cfg -S ")
