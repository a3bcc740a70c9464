"""render.nagios: objects, main file and NRPE configuration; every rendered set passes the
real `nagios4 -v` (skipped where Nagios is not installed)."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path

import pytest

from conveyor.host.validate import check
from conveyor.model.checks import Check, ChecksSettings, NagiosObjects, RemoteHost, Thresholds
from conveyor.render.nagios import (
    VALIDATOR,
    NagiosLayout,
    render_main,
    render_nrpe,
    render_objects,
    render_resource,
    url_path,
)

NAGIOS = shutil.which("nagios4")
needs_nagios = pytest.mark.skipif(NAGIOS is None, reason="nagios4 not installed")

SETTINGS = ChecksSettings(interval=10, retry_interval=2, attempts=3)
WEB = Check(
    name="web http 127.0.0.1:18080",
    kind="http",
    service="web",
    address="127.0.0.1",
    port=18080,
    path="/health",
    scope="frontend",
)
ALL = (
    WEB,
    Check(
        name="db tcp 10.213.0.128:5432",
        kind="tcp",
        service="db",
        address="10.213.0.128",
        port=5432,
        scope="address",
    ),
    Check(
        name="web certificate 127.0.0.1:8443",
        kind="certificate",
        service="web",
        address="127.0.0.1",
        port=8443,
        scope="published",
    ),
    Check(name="web haproxy backend", kind="haproxy", service="web", port=18999, backend="be_web"),
    Check(name="docker", kind="docker"),
    Check(name="load", kind="load"),
    Check(name="memory", kind="memory"),
    Check(name="disk /", kind="disk", path="/"),
)


def definitions(text: str, kind: str) -> list[dict[str, str]]:
    """Every `define KIND { key value }` block of an object file."""
    out: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith(f"define {kind} {{"):
            current = {}
        elif line.startswith("}"):
            if current is not None:
                out.append(current)
            current = None
        elif current is not None and line.strip():
            key, _, value = line.strip().partition(" ")
            current[key] = value.strip()
    return out


def services(text: str) -> dict[str, dict[str, str]]:
    return {d["service_description"]: d for d in definitions(text, "service")}


def test_each_check_is_a_service_of_its_host_with_its_arguments() -> None:
    text = render_objects(NagiosObjects(host="box", checks=ALL, settings=SETTINGS))
    found = services(text)
    assert set(found) == {c.name for c in ALL}
    assert {d["host_name"] for d in found.values()} == {"box"}
    commands = {name: d["check_command"] for name, d in found.items()}
    assert commands == {
        "web http 127.0.0.1:18080": "conveyor_http!127.0.0.1!18080!/health",
        "db tcp 10.213.0.128:5432": "conveyor_tcp!10.213.0.128!5432",
        "web certificate 127.0.0.1:8443": "conveyor_certificate!127.0.0.1!8443!30!7",
        "web haproxy backend": "conveyor_haproxy!18999!be_web",
        "docker": "conveyor_docker!/var/run/docker.sock",
        "load": "conveyor_load!4,3,2!8,6,4",
        "memory": "conveyor_memory!10!5",
        "disk /": "conveyor_disk!20!10!/",
    }
    web = found["web http 127.0.0.1:18080"]
    assert (web["_CONVEYOR_SERVICE"], web["_CONVEYOR_KIND"]) == ("web", "http")
    assert found["docker"]["_CONVEYOR_SERVICE"] == "-"  # the host's, no Compose service
    assert (web["check_interval"], web["retry_interval"], web["max_check_attempts"]) == (
        "10",
        "2",
        "3",
    )
    assert (web["notification_interval"], web["contacts"]) == ("0", "conveyor")
    (host,) = definitions(text, "host")
    assert (host["host_name"], host["address"]) == ("box", "127.0.0.1")


def test_thresholds_reach_the_commands() -> None:
    settings = SETTINGS.model_copy(
        update={
            "thresholds": Thresholds(
                disk_warning=30, disk_critical=15, load_warning=(2, 1.5, 1), memory_critical=2
            )
        }
    )
    found = services(render_objects(NagiosObjects(host="box", checks=ALL, settings=settings)))
    assert found["disk /"]["check_command"] == "conveyor_disk!30!15!/"
    assert found["load"]["check_command"] == "conveyor_load!2,1.5,1!8,6,4"
    assert found["memory"]["check_command"] == "conveyor_memory!10!2"


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        (None, "/"),
        ("/health", "/health"),
        ("health", "/health"),
        ("/a b", "/a%20b"),
        ("/x!y$z;w'q", "/x%21y%24z%3Bw%27q"),  # argument separator, macro, comment, quote
        ("/q?a=1&b=2", "/q?a=1&b=2"),
    ],
)
def test_url_paths_cannot_reach_nagios_or_the_shell(path: str | None, sent: str) -> None:
    assert url_path(path) == sent
    check = WEB.model_copy(update={"path": path})
    found = services(render_objects(NagiosObjects(host="box", checks=(check,))))
    assert found[WEB.name]["check_command"].endswith(f"!{sent}")


@pytest.mark.parametrize(
    "bad",
    [
        Check(name="web (main)", kind="docker"),  # parentheses: Nagios refuses them in names
        Check(name="a;b", kind="docker"),
        Check(name="web http", kind="http", address="127.0.0.1"),  # no port
        Check(name="web tcp", kind="tcp", address="1.2.3.4;rm", port=1),
    ],
)
def test_what_nagios_would_misread_is_refused(bad: Check) -> None:
    with pytest.raises(ValueError):
        render_objects(NagiosObjects(host="box", checks=(bad,)))


def test_two_checks_with_one_name_are_refused() -> None:
    with pytest.raises(ValueError, match="two checks are named 'docker'"):
        render_objects(NagiosObjects(host="box", checks=(ALL[4], ALL[4])))


def test_remote_hosts_are_checked_through_nrpe() -> None:
    settings = SETTINGS.model_copy(
        update={"hosts": (RemoteHost(name="db1", address="10.214.0.11", nrpe_port=5667),)}
    )
    text = render_objects(NagiosObjects(host="box", checks=(), settings=settings))
    hosts = {d["host_name"]: d for d in definitions(text, "host")}
    assert hosts["db1"]["address"] == "10.214.0.11"
    assert hosts["db1"]["check_command"] == "conveyor_nrpe_alive!5667"
    remote = {
        (d["host_name"], d["service_description"]): d["check_command"]
        for d in definitions(text, "service")
    }
    assert remote == {
        ("db1", "disk"): "conveyor_nrpe!5667!conveyor_disk",
        ("db1", "load"): "conveyor_nrpe!5667!conveyor_load",
        ("db1", "dockerd"): "conveyor_nrpe!5667!conveyor_dockerd",
    }


def test_an_edge_host_has_its_haproxy_checked_through_nrpe_too() -> None:
    hosts = (
        RemoteHost(name="h1", address="10.214.0.11", edge=True),
        RemoteHost(name="h2", address="10.214.0.12"),
    )
    text = render_objects(
        NagiosObjects(host="box", settings=SETTINGS.model_copy(update={"hosts": hosts}))
    )
    services = {(d["host_name"], d["service_description"]) for d in definitions(text, "service")}
    assert ("h1", "haproxy") in services and ("h2", "haproxy") not in services
    assert {s for s in services if s[0] == "h2"} == {
        ("h2", "disk"),
        ("h2", "load"),
        ("h2", "dockerd"),
    }
    # every host's nrpe.cfg has the command (a host's role may change; Nagios asks the edge's)
    for host in hosts:
        nrpe = render_nrpe(host, SETTINGS, ("127.0.0.1",))
        assert (
            "command[conveyor_haproxy]=/usr/lib/nagios/plugins/check_procs -c 1: -C haproxy" in nrpe
        )


def test_nrpe_configuration_of_a_remote_host() -> None:
    settings = SETTINGS.model_copy(update={"disk_paths": ("/", "/var/lib/docker")})
    text = render_nrpe(
        RemoteHost(name="db1", address="10.214.0.11"), settings, ("10.214.0.1", "127.0.0.1")
    )
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert lines["server_address"] == "10.214.0.11"
    assert lines["server_port"] == "5666"
    assert lines["allowed_hosts"] == "10.214.0.1,127.0.0.1"
    assert lines["dont_blame_nrpe"] == "0"  # no arguments from the network
    assert lines["command[conveyor_disk]"].endswith("-w 20% -c 10% -p / -p /var/lib/docker")
    assert lines["command[conveyor_dockerd]"].endswith("check_procs -c 1: -C dockerd")
    with pytest.raises(ValueError, match="at least one"):
        render_nrpe(RemoteHost(name="db1", address="10.214.0.11"), settings, ())


def layout(base: Path, user: str | None = None) -> NagiosLayout:
    return NagiosLayout(base=base, python="/usr/bin/python3", user=user, group=user)


def test_main_file_runs_every_interval_in_seconds(tmp_path: Path) -> None:
    text = render_main(layout(tmp_path))
    settings = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert settings["interval_length"] == "1"
    assert settings["cfg_file"] == str(tmp_path / "etc" / "objects.cfg")
    assert settings["status_file"] == str(tmp_path / "var" / "status.dat")
    assert settings["command_file"] == str(tmp_path / "rw" / "nagios.cmd")
    assert settings["enable_notifications"] == "1"
    assert "nagios_user" not in settings  # runs as whoever starts it
    with_user = render_main(layout(tmp_path, "nagios"), tmp_path / "candidate.cfg")
    assert "nagios_user=nagios\n" in with_user and "nagios_group=nagios\n" in with_user
    assert f"cfg_file={tmp_path / 'candidate.cfg'}\n" in with_user
    assert render_resource(layout(tmp_path)).splitlines()[1:] == [
        "$USER1$=/usr/lib/nagios/plugins",
        f"$USER2$={tmp_path / 'plugins'}",
        "$USER3$=/usr/bin/python3",
        f"$USER4$={tmp_path / 'notify'}",
    ]


def write(base: Path, objects: str) -> Path:
    # Nagios started by root drops to nagios_user (compiled-in default: nagios), which cannot
    # read pytest's 0700 directories: run it as this user.
    lay = layout(base, getpass.getuser())
    lay.etc.mkdir(parents=True)
    for d in lay.writable:
        d.mkdir(parents=True, exist_ok=True)
    lay.objects_file.write_text(objects)
    lay.resource_file.write_text(render_resource(lay))
    lay.main_file.write_text(render_main(lay))
    return lay.main_file


@needs_nagios
def test_rendered_files_pass_nagios_own_check(tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(
        update={
            "hosts": (
                RemoteHost(name="db1", address="10.214.0.11"),
                RemoteHost(name="h1", address="10.214.0.12", edge=True),
            )
        }
    )
    main = write(tmp_path, render_objects(NagiosObjects(host="box", checks=ALL, settings=settings)))
    verdict = check(VALIDATOR, main)
    assert verdict.ok, verdict.output
    assert "Checked 15 services." in verdict.output  # 8 of this host, 3 of db1, 4 of h1
    assert "Checked 3 hosts." in verdict.output


@needs_nagios
def test_a_rejected_file_gives_nagios_own_messages(tmp_path: Path) -> None:
    text = render_objects(NagiosObjects(host="box", checks=(WEB,)))
    head, _, tail = text.rpartition("host_name                box")  # the service's host
    main = write(tmp_path, f"{head}host_name nobody{tail}")
    verdict = check(VALIDATOR, main)
    assert not verdict.ok
    assert any("Could not find any host matching 'nobody'" in m for m in verdict.messages)
    assert not any(m.startswith("Error:") for m in verdict.messages)  # the prefix is dropped
