"""host.ssh_tunnel: the `ssh -N -L` daemon that brings a fleet host's engine socket here."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.deploy.fleet_engines import FleetEngines
from conveyor.errors import ConveyorError, HostError
from conveyor.host.ssh_tunnel import socket_path, tunnel_spec
from conveyor.model.fleet import Fleet, FleetHost

HOST = FleetHost(name="h1", address="10.9.0.11", user="deploy", port=2222, key="/keys/id")


def test_the_tunnel_forwards_a_local_socket_to_the_engine_with_the_hosts_key() -> None:
    spec = tunnel_spec(HOST, Path("/run/cv"))
    argv = list(spec.argv)
    assert argv[0] == "ssh"
    assert argv[-3:] == ["-L", "/run/cv/h1.docker.sock:/var/run/docker.sock", "deploy@10.9.0.11"]
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert argv[argv.index("-p") + 1] == "2222"
    assert "-N" in argv
    assert "ExitOnForwardFailure=yes" in argv
    assert "StrictHostKeyChecking=no" in argv  # no known_hosts given: the inventory is trusted
    assert spec.pid_file == Path("/run/cv/h1.tunnel.pid")
    assert spec.markers == ("/run/cv/h1.docker.sock:/var/run/docker.sock",)


def test_known_hosts_are_checked_when_given() -> None:
    argv = tunnel_spec(HOST, Path("/run/cv"), known_hosts=Path("/etc/cv/known")).argv
    assert "UserKnownHostsFile=/etc/cv/known" in argv
    assert "StrictHostKeyChecking=no" not in argv


def test_a_long_run_dir_gets_a_short_socket_name_or_is_refused() -> None:
    fits = socket_path(HOST.model_copy(update={"name": "h" * 40}), Path("/" + "d" * 80))
    assert len(str(fits)) <= 107
    assert fits.name.endswith(".sock")
    with pytest.raises(HostError, match="choose a shorter run directory"):
        socket_path(HOST, Path("/" + "d" * 100))


def test_an_unknown_host_is_refused(tmp_path: Path) -> None:
    with (
        FleetEngines(Fleet(hosts=(HOST,)), tmp_path) as engines,
        pytest.raises(ConveyorError, match="'h9' is not in the fleet"),
    ):
        engines.engine("h9")
