"""observe/checks/plugin.py: Conveyor's Nagios plugin decides from what it read (pure
verdicts), and its notification command writes what nagios.py reads back."""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.model.checks import CheckNotification
from conveyor.observe.checks import plugin

HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,"
    "wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,"
    "lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code\n"
)


def stats(*rows: tuple[str, str, str]) -> str:
    """HAProxy's stats CSV with (proxy, server, status) rows (the other columns empty)."""
    out = HEADER
    for px, sv, status in rows:
        out += f"{px},{sv},,,,,,,,,,,,,,,,{status},,,,,,,,,,,,,,,,,,,,\n"
    return out


FRONTEND = ("fe_web", "FRONTEND", "OPEN")


@pytest.mark.parametrize(
    ("servers", "code", "said"),
    [
        (["UP", "UP"], plugin.OK, "be_web: 2/2 servers up"),
        (["UP", "DOWN"], plugin.WARNING, "be_web: 1/2 servers up; down: web-2"),
        (["DOWN", "DOWN"], plugin.CRITICAL, "be_web: no server up (2 servers; down: web-1, web-2)"),
        # a rollout: the old replica drained or in maint, the new one up
        (["MAINT", "UP"], plugin.OK, "be_web: 1/2 servers up"),
        (["DRAIN", "MAINT"], plugin.CRITICAL, "be_web: no server up (2 servers; down: none)"),
        (["UP 1/2", "DOWN 1/2"], plugin.WARNING, "1/2 servers up; down: web-2"),
        ([], plugin.CRITICAL, "be_web: no server up (0 servers; down: none)"),
    ],
)
def test_haproxy_backend_verdicts(servers: list[str], code: int, said: str) -> None:
    rows = [FRONTEND, *((("be_web", f"web-{i}", s)) for i, s in enumerate(servers, 1))]
    rows.append(("be_web", "BACKEND", "UP" if "UP" in servers else "DOWN"))
    rows.append(("be_other", "other-1", "DOWN"))  # another service's backend is not counted
    got_code, text = plugin.haproxy_verdict(stats(*rows), "be_web")
    assert got_code == code
    assert said in text
    assert text.startswith(f"HAPROXY {plugin.STATES[code]} - ")


def test_haproxy_perfdata_counts_servers() -> None:
    csv = stats(("be_web", "a", "UP"), ("be_web", "b", "DOWN"), ("be_web", "BACKEND", "UP"))
    assert plugin.haproxy_verdict(csv, "be_web")[1].endswith("| up=1;;;0;2 down=1;;;0;2")


def test_a_backend_haproxy_does_not_have_is_critical() -> None:
    code, text = plugin.haproxy_verdict(stats(FRONTEND), "be_gone")
    assert code == plugin.CRITICAL
    assert "no backend be_gone" in text


def test_haproxy_not_answering_is_critical() -> None:
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        code, text = plugin.check_haproxy(port, "be_web", timeout=2)
    assert code == plugin.CRITICAL
    assert f"127.0.0.1:{port}/stats;csv do not answer" in text


def test_docker_verdicts() -> None:
    ok = b"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nContent-Length: 2\r\n\r\nOK"
    assert plugin.docker_verdict(ok, None, "/s") == (
        plugin.OK,
        "DOCKER OK - the daemon answers at /s (API 1.41)",
    )
    code, text = plugin.docker_verdict(b"HTTP/1.0 500 Internal\r\n\r\nboom", None, "/s")
    assert code == plugin.CRITICAL and "HTTP/1.0 500 Internal" in text
    code, text = plugin.docker_verdict(None, "Connection refused", "/s")
    assert code == plugin.CRITICAL and "does not answer at /s: Connection refused" in text
    code, text = plugin.docker_verdict(None, "Permission denied", "/s")
    assert code == plugin.UNKNOWN and "docker group" in text


@pytest.fixture
def fake_docker(tmp_path: Path) -> Iterator[Path]:
    """A unix socket answering /_ping as the Docker Engine does."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            request = conn.recv(4096)
            assert request.startswith(b"GET /_ping HTTP/1.0\r\n")
            conn.sendall(b"HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\n\r\nOK")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path
    thread.join(timeout=5)
    server.close()


def test_docker_check_speaks_http_over_the_socket(fake_docker: Path) -> None:
    assert plugin.check_docker(str(fake_docker), timeout=5)[0] == plugin.OK
    missing = fake_docker.with_name("none.sock")
    assert plugin.check_docker(str(missing), timeout=5)[0] == plugin.CRITICAL


MEMINFO = "MemTotal:       24683520 kB\nMemFree:         1000000 kB\nMemAvailable:    {} kB\n"


@pytest.mark.parametrize(
    ("available", "code"),
    [(12341760, plugin.OK), (2468352, plugin.WARNING), (1234176, plugin.CRITICAL)],
)
def test_memory_verdicts(available: int, code: int) -> None:
    got, text = plugin.memory_verdict(MEMINFO.format(available), warning=10, critical=5)
    assert got == code
    assert text.endswith(";10;5;0;100")


def test_memory_without_memavailable_is_unknown() -> None:
    assert plugin.memory_verdict("MemTotal: 10 kB\n", 10, 5)[0] == plugin.UNKNOWN


def test_a_notification_written_by_the_command_reads_back_as_a_model(tmp_path: Path) -> None:
    args = argparse.Namespace(
        type="PROBLEM",
        host="box",
        check="web http 127.0.0.1:18080",
        service="web",
        kind="http",
        state="CRITICAL",
        output="HTTP CRITICAL - 503 Service Unavailable",
        time="1796565870",
        downtime="0",
        attempt="3",
    )
    path = Path(plugin.write_notification(str(tmp_path), plugin.notification_record(args)))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    n = CheckNotification.model_validate(json.loads(path.read_text()))
    assert (n.type, n.check, n.service, n.kind, n.state) == (
        "PROBLEM",
        "web http 127.0.0.1:18080",
        "web",
        "http",
        "CRITICAL",
    )
    assert (n.ts, n.attempt, n.downtime) == (1796565870.0, 3, 0)
    assert n.news


def test_a_host_notification_and_macros_nagios_left_empty(tmp_path: Path) -> None:
    code = plugin.main(
        [
            "notify",
            f"--spool={tmp_path}",
            "--type=RECOVERY",
            "--host=db1",
            "--state=UP",
            "--output=-- looks like an option",
            "--time=1796565870",
            "--downtime=",
            "--attempt=1",
            "--service=$_SERVICECONVEYOR_SERVICE$",
        ]
    )
    assert code == 0
    (file,) = tmp_path.iterdir()
    n = CheckNotification.model_validate(json.loads(file.read_text()))
    assert (n.check, n.service, n.kind, n.subject) == (None, None, None, "host db1")
    assert n.output == "-- looks like an option"
    assert n.news


def test_notification_news() -> None:
    base = {"host": "h", "check": "c", "state": "CRITICAL", "ts": 1.0}
    assert CheckNotification(type="PROBLEM", **base).news
    assert not CheckNotification(type="FLAPPINGSTART", **base).news
    assert not CheckNotification(type="DOWNTIMESTART", **base).news
    assert not CheckNotification(type="PROBLEM", downtime=1, **base).news


def test_bad_arguments_are_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["haproxy", "--port", "x"]) == plugin.UNKNOWN
    assert capsys.readouterr().out.startswith("UNKNOWN - bad arguments")


def test_the_plugin_file_needs_only_the_standard_library() -> None:
    # Nagios runs it with the system's python3, outside Conveyor's virtualenv.
    source = Path(plugin.__file__).read_text()
    imports = [
        line.split()[1]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and "__future__" not in line
    ]
    assert imports and not any(name.split(".")[0] in ("conveyor", "pydantic") for name in imports)
    assert os.access(plugin.__file__, os.R_OK)
